//! Softmax and log-softmax along one axis, numerically stable (the row maximum is subtracted first).
//!
//! `softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)`, backward `dx = y * (dy - sum(dy * y))`;
//! `log_softmax(x)_i = x_i - m - ln sum_j exp(x_j - m)`, backward `dx = dy - exp(y) * sum(dy)`.

use num_traits::Zero;
use rayon::prelude::*;

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::normalize_dim;
use crate::ops::{expect_float, tensor_from};
use crate::{with_float, Float, Result, Tensor};

/// `(outer, size, inner)` of a dense tensor seen along `dim`: element `(o, k, i)` is at
/// `(o * size + k) * inner + i`.
fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

/// Calls `f(line, aux_line)` on every line along the axis (gathered copies of `size` values of
/// `data` and of `aux`, which is empty or as long as `data`) and writes `line` back. Lines are
/// processed in parallel for large tensors.
fn for_each_line<T: Float>(
    data: &mut [T],
    aux: &[T],
    (outer, size, inner): (usize, usize, usize),
    f: impl Fn(&mut [T], &[T]) + Sync,
) {
    let block = size * inner;
    if block == 0 {
        return;
    }
    let per_outer = |(o, chunk): (usize, &mut [T])| {
        let aux = if aux.is_empty() {
            &[][..]
        } else {
            &aux[o * block..(o + 1) * block]
        };
        let mut line = vec![T::zero(); size];
        let mut aux_line = vec![T::zero(); if aux.is_empty() { 0 } else { size }];
        for i in 0..inner {
            for k in 0..size {
                line[k] = chunk[k * inner + i];
            }
            for (k, a) in aux_line.iter_mut().enumerate() {
                *a = aux[k * inner + i];
            }
            f(&mut line, &aux_line);
            for k in 0..size {
                chunk[k * inner + i] = line[k];
            }
        }
    };
    if outer * block < 1 << 15 {
        data.chunks_mut(block).enumerate().for_each(per_outer);
    } else {
        data.par_chunks_mut(block).enumerate().for_each(per_outer);
    }
}

fn softmax_line<T: Float>(line: &mut [T], log: bool) {
    let m = line.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
    let m = if m.is_finite() { m } else { T::zero() };
    let sum: T = line.iter().fold(T::zero(), |s, &x| s + (x - m).exp());
    if log {
        // (x - m) - ln(sum), not x - (m + ln(sum)): the latter rounds ln(sum) at the magnitude of m.
        let log_sum = sum.ln();
        line.iter_mut().for_each(|x| *x = (*x - m) - log_sum);
    } else {
        line.iter_mut().for_each(|x| *x = (*x - m).exp() / sum);
    }
}

struct SoftmaxBackward {
    y: Tensor,
    dim: usize,
    log: bool,
}

impl Backward for SoftmaxBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        if crate::ops::on_cuda(grad) {
            return Ok(vec![Some(crate::cuda::softmax_backward(
                grad, &self.y, self.dim, self.log,
            )?)]);
        }
        let (dims, log) = (split_at_dim(grad.shape(), self.dim), self.log);
        let dx = with_float!(grad.dtype(), "softmax backward", T => {
            let y = self.y.values::<T>()?;
            let mut dx = grad.to_vec::<T>()?;
            for_each_line(&mut dx, &y, dims, |g, y| {
                if log {
                    let s = g.iter().fold(T::zero(), |s, &g| s + g);
                    g.iter_mut().zip(y).for_each(|(g, &y)| *g -= y.exp() * s);
                } else {
                    let s = g.iter().zip(y).fold(T::zero(), |s, (&g, &y)| s + g * y);
                    g.iter_mut().zip(y).for_each(|(g, &y)| *g = y * (*g - s));
                }
            });
            Ok(tensor_from(dx, grad.shape()))
        })?;
        Ok(vec![Some(dx)])
    }
}

impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        if let Some(y) = autocast::dispatch(Policy::Fp32, &[self], |t| t[0].softmax_impl(dim, log))? {
            return Ok(y);
        }
        let op = if log { "log_softmax" } else { "softmax" };
        expect_float(op, self)?;
        let d = normalize_dim(op, dim, self.rank())?;
        let out = if crate::ops::on_cuda(self) {
            crate::cuda::softmax(self, d, log)?
        } else {
            with_float!(self.dtype(), op, T => {
                let mut data = self.to_vec::<T>()?;
                for_each_line(&mut data, &[], split_at_dim(self.shape(), d), |line, _| softmax_line(line, log));
                Ok(tensor_from(data, self.shape()))
            })?
        };
        Ok(Tensor::from_op(out, &[self], |y| SoftmaxBackward {
            y: y.clone(),
            dim: d,
            log,
        }))
    }

    /// Softmax along `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// Log-softmax along `dim`.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }
}
