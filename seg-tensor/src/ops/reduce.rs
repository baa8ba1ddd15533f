//! Reductions over any set of axes: sum, mean, var, logsumexp, and max/min (with indices) and argmax
//! over one axis.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::{normalize_dim, normalize_dims};
use seg_kernels::cuda::ReduceKernel;

use crate::ops::{expect_float, on_cuda, tensor_from};
use crate::{with_float, Element, Float, Result, Tensor};

/// The values of `t` arranged as `[kept axes..., reduced axes...]` in row-major order, so that each
/// run of `block` consecutive values is reduced to one output.
struct Blocks<'a, T: Clone> {
    values: Cow<'a, [T]>,
    block: usize,
    /// Input shape with the reduced axes set to 1.
    keep_shape: Vec<usize>,
    /// Input shape with the reduced axes removed.
    drop_shape: Vec<usize>,
}

/// The axes a reduction over `dims` removes (all when empty).
fn reduced_axes(t: &Tensor, op: &'static str, dims: &[isize]) -> Result<Vec<usize>> {
    if dims.is_empty() {
        Ok((0..t.rank()).collect())
    } else {
        normalize_dims(op, dims, t.rank())
    }
}

/// Output shapes of a reduction over `reduced`: (kept as 1, removed), and the reduced count.
fn reduced_shapes(t: &Tensor, reduced: &[usize]) -> (Vec<usize>, Vec<usize>, usize) {
    let keep = (0..t.rank())
        .map(|d| if reduced.contains(&d) { 1 } else { t.shape()[d] })
        .collect();
    let drop = (0..t.rank())
        .filter(|d| !reduced.contains(d))
        .map(|d| t.shape()[d])
        .collect();
    (keep, drop, reduced.iter().map(|&d| t.shape()[d]).product())
}

/// `kernel` on CUDA over `dims` of `t`: the output, the keepdim shape and the reduced count.
fn cuda_reduce(
    t: &Tensor,
    op: &'static str,
    dims: &[isize],
    keepdim: bool,
    kernel: ReduceKernel,
    scale: impl Fn(usize) -> f64,
) -> Result<(Tensor, Vec<usize>, usize)> {
    let reduced = reduced_axes(t, op, dims)?;
    let (keep, drop, count) = reduced_shapes(t, &reduced);
    let out = crate::cuda::reduce(t, &reduced, kernel, scale(count), if keepdim { &keep } else { &drop })?;
    Ok((out, keep, count))
}

fn blocks<'a, T: Element>(t: &'a Tensor, op: &'static str, dims: &[isize]) -> Result<Blocks<'a, T>> {
    let reduced = reduced_axes(t, op, dims)?;
    let kept: Vec<usize> = (0..t.rank()).filter(|d| !reduced.contains(d)).collect();
    let order: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
    let mut keep_shape = t.shape().to_vec();
    for &d in &reduced {
        keep_shape[d] = 1;
    }
    let block = reduced.iter().map(|&d| t.shape()[d]).product();
    let drop_shape = kept.iter().map(|&d| t.shape()[d]).collect();
    // The reduced axes moved last; a gather only when that order is not already dense (size-1
    // axes, such as a batch of one in front of a channel sum, move for free).
    let view = t.layout().permute(&order);
    let data = T::unwrap(t.storage().expect_cpu(op)?).expect("dtype checked by the caller");
    let values = if view.is_contiguous() {
        Cow::Borrowed(&data[view.offset()..view.offset() + view.numel()])
    } else {
        Cow::Owned(view.offsets().map(|o| data[o]).collect())
    };
    Ok(Blocks {
        values,
        block,
        keep_shape,
        drop_shape,
    })
}

impl<T: Element> Blocks<'_, T> {
    /// `f` of each block, in parallel over blocks when there are many values.
    fn map<U: Send>(&self, f: impl Fn(&[T]) -> U + Sync + Send) -> Vec<U> {
        if self.block == 0 {
            return (0..crate::layout::numel(&self.drop_shape)).map(|_| f(&[])).collect();
        }
        if self.values.len() < 1 << 15 {
            self.values.chunks(self.block).map(f).collect()
        } else {
            self.values.par_chunks(self.block).map(f).collect()
        }
    }

    fn out_shape(&self, keepdim: bool) -> &[usize] {
        if keepdim {
            &self.keep_shape
        } else {
            &self.drop_shape
        }
    }
}

fn sum_of<T: Float>(xs: &[T]) -> T {
    T::from_f64(xs.iter().map(|x| x.as_f64()).sum())
}

/// The maximum of a block, NaN if any value is NaN.
fn max_of<T: Float>(xs: &[T]) -> T {
    let mut m = T::neg_infinity();
    for &x in xs {
        if x.is_nan() {
            return x;
        }
        m = m.max(x);
    }
    m
}

/// Index and value of the first maximum (`largest`) or minimum of a block; NaN counts as the
/// extreme, as in PyTorch.
fn arg_extreme<T: Element + PartialOrd>(xs: &[T], largest: bool) -> (i64, T) {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate().skip(1) {
        let current = &xs[best];
        #[allow(clippy::eq_op)]
        let current_nan = current != current;
        if current_nan {
            break;
        }
        #[allow(clippy::eq_op)]
        let better = x != x || if largest { x > current } else { x < current };
        if better {
            best = i;
        }
    }
    (best as i64, xs[best])
}

/// Backward of the smooth reductions; each keeps what its formula needs.
enum ReduceBackward {
    /// `dx = broadcast(dy) * scale`
    Sum {
        keep_shape: Vec<usize>,
        in_shape: Vec<usize>,
        scale: f64,
    },
    /// `dx = broadcast(dy) * 2 (x - mean) / (n - correction)`
    Var {
        x: Tensor,
        mean: Tensor,
        keep_shape: Vec<usize>,
        denom: f64,
    },
    /// `dx = broadcast(dy) * exp(x - lse)`
    LogSumExp {
        x: Tensor,
        lse: Tensor,
        keep_shape: Vec<usize>,
    },
    /// `dx` = `dy` scattered to the selected positions along `dim`.
    Select {
        dim: usize,
        indices: Tensor,
        keep_shape: Vec<usize>,
        in_shape: Vec<usize>,
    },
}

impl Backward for ReduceBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = match *self {
            ReduceBackward::Sum {
                keep_shape,
                in_shape,
                scale,
            } => {
                let g = grad.reshape(&keep_shape)?.broadcast_to(&in_shape)?.contiguous()?;
                if scale == 1.0 {
                    g
                } else {
                    g.mul_scalar(scale)?
                }
            }
            ReduceBackward::Var {
                x,
                mean,
                keep_shape,
                denom,
            } => x
                .sub(&mean)?
                .mul(&grad.reshape(&keep_shape)?)?
                .mul_scalar(2.0 / denom)?,
            ReduceBackward::LogSumExp { x, lse, keep_shape } => x.sub(&lse)?.exp()?.mul(&grad.reshape(&keep_shape)?)?,
            ReduceBackward::Select {
                dim,
                indices,
                keep_shape,
                in_shape,
            } => Tensor::zeros_on(&in_shape, grad.dtype(), grad.device())?.scatter_add(
                dim as isize,
                &indices,
                &grad.reshape(&keep_shape)?,
            )?,
        };
        Ok(vec![Some(dx)])
    }
}

impl Tensor {
    /// Sum over `dims` (all axes when empty), as `torch.sum(x, dims, keepdim)`. Accumulates in f64.
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.scaled_sum("sum", dims, keepdim, false)
    }

    /// Mean over `dims` (all axes when empty).
    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.scaled_sum("mean", dims, keepdim, true)
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    fn scaled_sum(&self, op: &'static str, dims: &[isize], keepdim: bool, mean: bool) -> Result<Tensor> {
        let sum = |t: &[Tensor]| t[0].scaled_sum(op, dims, keepdim, mean);
        if let Some(y) = autocast::dispatch(Policy::Fp32, &[self], sum)? {
            return Ok(y);
        }
        expect_float(op, self)?;
        let (out, keep_shape, count) = if on_cuda(self) {
            let scale = |count: usize| if mean { 1.0 / count as f64 } else { 1.0 };
            cuda_reduce(self, op, dims, keepdim, ReduceKernel::Sum, scale)?
        } else {
            with_float!(self.dtype(), op, T => {
                let b = blocks::<T>(self, op, dims)?;
                let scale = if mean { 1.0 / b.block as f64 } else { 1.0 };
                let sums = b.map(|xs| T::from_f64(sum_of(xs).as_f64() * scale));
                Ok((tensor_from(sums, b.out_shape(keepdim)), b.keep_shape.clone(), b.block))
            })?
        };
        let scale = if mean { 1.0 / count as f64 } else { 1.0 };
        Ok(Tensor::from_op(out, &[self], |_| ReduceBackward::Sum {
            keep_shape,
            in_shape: self.shape().to_vec(),
            scale,
        }))
    }

    /// Variance over `dims` (all axes when empty) with `correction` (1 = unbiased, PyTorch's default).
    pub fn var(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        if let Some(y) = autocast::dispatch(Policy::Fp32, &[self], |t| t[0].var(dims, correction, keepdim))? {
            return Ok(y);
        }
        expect_float("var", self)?;
        // Validate here so that a bad dim is reported as var's, not as the inner mean's.
        normalize_dims("var", dims, self.rank())?;
        let mean = self.detach().mean(dims, true)?;
        let (out, keep_shape, count) = if on_cuda(self) {
            let scale = |count: usize| 1.0 / (count as f64 - correction as f64);
            cuda_reduce(self, "var", dims, keepdim, ReduceKernel::Var, scale)?
        } else {
            with_float!(self.dtype(), "var", T => {
                let b = blocks::<T>(self, "var", dims)?;
                let denom = b.block as f64 - correction as f64;
                let vars = b.map(|xs| {
                    let m = sum_of(xs).as_f64() / xs.len() as f64;
                    T::from_f64(xs.iter().map(|x| (x.as_f64() - m).powi(2)).sum::<f64>() / denom)
                });
                Ok((tensor_from(vars, b.out_shape(keepdim)), b.keep_shape.clone(), b.block))
            })?
        };
        let denom = count as f64 - correction as f64;
        Ok(Tensor::from_op(out, &[self], |_| ReduceBackward::Var {
            x: self.detach(),
            mean,
            keep_shape,
            denom,
        }))
    }

    /// `ln(sum(exp(x)))` over `dims`, computed stably as `m + ln(sum(exp(x - m)))`, `m` the maximum.
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        if let Some(y) = autocast::dispatch(Policy::Fp32, &[self], |t| t[0].logsumexp(dims, keepdim))? {
            return Ok(y);
        }
        expect_float("logsumexp", self)?;
        let (out, keep_shape) = if on_cuda(self) {
            let (out, keep, _) = cuda_reduce(self, "logsumexp", dims, keepdim, ReduceKernel::LogSumExp, |_| 1.0)?;
            (out, keep)
        } else {
            with_float!(self.dtype(), "logsumexp", T => {
            let b = blocks::<T>(self, "logsumexp", dims)?;
            let lse = b.map(|xs| {
                let m = max_of(xs);
                if !m.is_finite() {
                    return m;
                }
                m + T::from_f64(xs.iter().map(|&x| (x - m).as_f64().exp()).sum::<f64>().ln())
            });
            Ok((tensor_from(lse, b.out_shape(keepdim)), b.keep_shape.clone()))
            })?
        };
        let lse = out.reshape(&keep_shape)?;
        Ok(Tensor::from_op(out, &[self], |_| ReduceBackward::LogSumExp {
            x: self.detach(),
            lse,
            keep_shape,
        }))
    }

    fn extreme(&self, op: &'static str, dim: isize, keepdim: bool, largest: bool) -> Result<(Tensor, Tensor)> {
        let select = |t: &[Tensor]| t[0].extreme(op, dim, keepdim, largest);
        if let Some(y) = autocast::dispatch(Policy::Same, &[self], select)? {
            return Ok(y);
        }
        let d = normalize_dim(op, dim, self.rank().max(1))?;
        fn run<T: Element>(
            t: &Tensor,
            op: &'static str,
            d: usize,
            keepdim: bool,
            largest: bool,
        ) -> Result<(Tensor, Tensor, Vec<usize>)> {
            let b = blocks::<T>(t, op, &[d as isize])?;
            if b.block == 0 {
                return Err(crate::Error::invalid(op, format!("cannot reduce the empty axis {d}")));
            }
            let (idx, vals): (Vec<i64>, Vec<T>) = b.map(|xs| arg_extreme(xs, largest)).into_iter().unzip();
            let shape = b.out_shape(keepdim);
            Ok((tensor_from(vals, shape), tensor_from(idx, shape), b.keep_shape.clone()))
        }
        let scalar = self.rank() == 0;
        let x = if scalar { self.reshape(&[1])? } else { self.clone() };
        let (values, indices, keep_shape) = if on_cuda(self) {
            let (keep, drop, count) = reduced_shapes(&x, &[d]);
            if count == 0 {
                return Err(crate::Error::invalid(op, format!("cannot reduce the empty axis {d}")));
            }
            let (values, indices) = crate::cuda::extreme(&x, d, largest, if keepdim { &keep } else { &drop })?;
            (values, indices, keep)
        } else {
            crate::with_comparable!(self.dtype(), op, T => run::<T>(&x, op, d, keepdim, largest))?
        };
        let (values, indices) = if scalar {
            (values.reshape(&[])?, indices.reshape(&[])?)
        } else {
            (values, indices)
        };
        if !self.dtype().is_compute_float() {
            return Ok((values, indices));
        }
        let saved = indices.reshape(&keep_shape)?;
        let values = Tensor::from_op(values, &[&x], |_| ReduceBackward::Select {
            dim: d,
            indices: saved,
            keep_shape,
            in_shape: x.shape().to_vec(),
        });
        Ok((values, indices))
    }

    /// Largest values along `dim` and their (first) indices, as `torch.max(x, dim, keepdim)`. The
    /// gradient goes to the selected element.
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme("max", dim, keepdim, true)
    }

    /// Smallest values along `dim` and their (first) indices, as `torch.min(x, dim, keepdim)`.
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme("min", dim, keepdim, false)
    }

    /// Index (i64) of the first maximum along `dim`, as `torch.argmax`.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(crate::no_grad(|| self.max_dim(dim, keepdim))?.1)
    }

    /// Index (i64) of the first minimum along `dim`, as `torch.argmin`.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(crate::no_grad(|| self.min_dim(dim, keepdim))?.1)
    }
}
