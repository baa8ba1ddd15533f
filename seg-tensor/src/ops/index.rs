//! Indexing by integer tensors: gather / scatter_add along an axis, index_select, one_hot.

use crate::autograd::Backward;
use crate::layout::{contiguous_strides, normalize_dim, numel};
use crate::ops::{expect_float, expect_same_kind, on_cuda, tensor_from};
use crate::{with_element, with_float, DType, Element, Error, Result, Tensor};

fn expect_index(op: &'static str, index: &Tensor) -> Result<()> {
    if index.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            expected: "an i64 index tensor",
            found: index.dtype(),
        });
    }
    Ok(())
}

/// Fails unless `index` has the rank of `target_shape` and is no larger off axis `dim`.
fn check_along_dim(op: &'static str, index: &Tensor, dim: usize, target_shape: &[usize]) -> Result<()> {
    if index.rank() != target_shape.len() || (0..index.rank()).any(|d| d != dim && index.shape()[d] > target_shape[d]) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!(
                "an index of rank {} no larger than {target_shape:?} off axis {dim}",
                target_shape.len()
            ),
            found: index.shape().to_vec(),
        });
    }
    Ok(())
}

/// For `gather`/`scatter_add`: the flat offset into a dense tensor of `target_shape` for each
/// position of `index`, with the position's coordinate on `dim` replaced by the index value.
fn along_dim_offsets(op: &'static str, index: &Tensor, dim: usize, target_shape: &[usize]) -> Result<Vec<usize>> {
    check_along_dim(op, index, dim, target_shape)?;
    let idx = index.values::<i64>()?;
    let strides = contiguous_strides(target_shape);
    let index_strides = contiguous_strides(index.shape());
    let size = target_shape[dim] as i64;
    idx.iter()
        .enumerate()
        .map(|(flat, &i)| {
            if !(0..size).contains(&i) {
                return Err(Error::invalid(
                    op,
                    format!("index {i} is out of range for axis {dim} of size {size}"),
                ));
            }
            let mut offset = 0;
            let mut rest = flat;
            for d in 0..index_strides.len() {
                let coord = rest / index_strides[d];
                rest %= index_strides[d];
                offset += if d == dim { i as usize } else { coord } * strides[d];
            }
            Ok(offset)
        })
        .collect()
}

enum IndexBackward {
    /// `dx = scatter_add(zeros, dim, index, dy)`
    Gather {
        dim: usize,
        index: Tensor,
        in_shape: Vec<usize>,
    },
    /// `dself = dy`, `dsrc = gather(dy, dim, index)`
    ScatterAdd { dim: usize, index: Tensor },
    /// `dx = index_add(zeros, dim, index, dy)`
    IndexSelect {
        dim: usize,
        index: Tensor,
        in_shape: Vec<usize>,
    },
}

impl Backward for IndexBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(match *self {
            IndexBackward::Gather { dim, index, in_shape } => {
                vec![Some(
                    Tensor::zeros_on(&in_shape, grad.dtype(), grad.device())?.scatter_add(
                        dim as isize,
                        &index,
                        grad,
                    )?,
                )]
            }
            IndexBackward::ScatterAdd { dim, index } => {
                vec![Some(grad.clone()), Some(grad.gather(dim as isize, &index)?)]
            }
            IndexBackward::IndexSelect { dim, index, in_shape } => {
                let dx = with_float!(grad.dtype(), "index_select backward", T => {
                    let g = grad.values::<T>()?;
                    let idx = index.values::<i64>()?;
                    let inner: usize = in_shape[dim + 1..].iter().product();
                    let (n_in, n_out) = (in_shape[dim], idx.len());
                    let mut dx = vec![<T as num_traits::Zero>::zero(); numel(&in_shape)];
                    for o in 0..in_shape[..dim].iter().product() {
                        for (j, &i) in idx.iter().enumerate() {
                            let src = &g[(o * n_out + j) * inner..][..inner];
                            let dst = &mut dx[(o * n_in + i as usize) * inner..][..inner];
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                        }
                    }
                    Ok(tensor_from(dx, &in_shape))
                })?;
                vec![Some(dx)]
            }
        })
    }
}

impl Tensor {
    /// `out[p] = self[p with axis dim replaced by index[p]]`, as `torch.gather`; `out` has the
    /// index's shape.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        expect_index("gather", index)?;
        crate::ops::expect_same_device("gather", self, index)?;
        let d = normalize_dim("gather", dim, self.rank())?;
        let out = if on_cuda(self) {
            check_along_dim("gather", index, d, self.shape())?;
            crate::cuda::gather(self, d, index)?
        } else {
            let offsets = along_dim_offsets("gather", index, d, self.shape())?;
            with_element!(self.dtype(), T => {
                let x = self.values::<T>()?;
                tensor_from(offsets.iter().map(|&o| x[o]).collect::<Vec<T>>(), index.shape())
            })
        };
        Ok(Tensor::from_op(out, &[self], |_| IndexBackward::Gather {
            dim: d,
            index: index.clone(),
            in_shape: self.shape().to_vec(),
        }))
    }

    /// A copy of `self` with `src[p]` added at `p` with axis `dim` replaced by `index[p]`, as
    /// `torch.scatter_add` (out of place).
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        expect_index("scatter_add", index)?;
        expect_float("scatter_add", self)?;
        expect_same_kind("scatter_add", self, src)?;
        let d = normalize_dim("scatter_add", dim, self.rank())?;
        if src.shape() != index.shape() {
            return Err(Error::ShapeMismatch {
                op: "scatter_add",
                expected: format!("src of the index's shape {:?}", index.shape()),
                found: src.shape().to_vec(),
            });
        }
        crate::ops::expect_same_device("scatter_add", self, index)?;
        let out = if on_cuda(self) {
            check_along_dim("scatter_add", index, d, self.shape())?;
            crate::cuda::scatter_add(self, d, index, src)?
        } else {
            let offsets = along_dim_offsets("scatter_add", index, d, self.shape())?;
            with_float!(self.dtype(), "scatter_add", T => {
            let mut out = self.to_vec::<T>()?;
            for (&o, &s) in offsets.iter().zip(src.values::<T>()?.iter()) {
                out[o] += s;
            }
            Ok(tensor_from(out, self.shape()))
            })?
        };
        Ok(Tensor::from_op(out, &[self, src], |_| IndexBackward::ScatterAdd {
            dim: d,
            index: index.clone(),
        }))
    }

    /// The slices at positions `index` (1-D, i64) along `dim`, as `torch.index_select`.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        expect_index("index_select", index)?;
        crate::ops::expect_same_device("index_select", self, index)?;
        let d = normalize_dim("index_select", dim, self.rank())?;
        if index.rank() != 1 {
            return Err(Error::ShapeMismatch {
                op: "index_select",
                expected: "a 1-D index".into(),
                found: index.shape().to_vec(),
            });
        }
        if on_cuda(self) {
            // A gather by the index broadcast over the output (differentiable through gather).
            let mut shape = self.shape().to_vec();
            shape[d] = index.numel();
            let mut along = vec![1; self.rank()];
            along[d] = index.numel();
            return self.gather(dim, &index.reshape(&along)?.broadcast_to(&shape)?);
        }
        let idx = index.values::<i64>()?;
        let n = self.shape()[d];
        if let Some(bad) = idx.iter().find(|&&i| !(0..n as i64).contains(&i)) {
            return Err(Error::invalid(
                "index_select",
                format!("index {bad} is out of range for axis {d} of size {n}"),
            ));
        }
        let inner: usize = self.shape()[d + 1..].iter().product();
        let mut shape = self.shape().to_vec();
        shape[d] = idx.len();
        let out = with_element!(self.dtype(), T => {
            let x = self.values::<T>()?;
            let mut out: Vec<T> = Vec::with_capacity(numel(&shape));
            for o in 0..self.shape()[..d].iter().product() {
                for &i in idx.iter() {
                    out.extend_from_slice(&x[(o * n + i as usize) * inner..][..inner]);
                }
            }
            tensor_from(out, &shape)
        });
        Ok(Tensor::from_op(out, &[self], |_| IndexBackward::IndexSelect {
            dim: d,
            index: index.clone(),
            in_shape: self.shape().to_vec(),
        }))
    }

    /// `one_hot` on CUDA: `labels[..., None] == [0, 1, ..., classes - 1]` as `dtype`. The range check
    /// reads the labels' extremes back to the host (one synchronisation).
    fn one_hot_cuda(&self, num_classes: Option<usize>, dtype: DType) -> Result<Tensor> {
        let flat = self.reshape(&[self.numel()])?;
        let (low, high) = if self.numel() == 0 {
            (0, -1)
        } else {
            let extreme = |largest: bool| -> Result<i64> {
                let (values, _) = if largest {
                    flat.max_dim(0, false)?
                } else {
                    flat.min_dim(0, false)?
                };
                Ok(values.item()? as i64)
            };
            (extreme(false)?, extreme(true)?)
        };
        let classes = num_classes.unwrap_or((high.max(-1) + 1) as usize);
        if low < 0 || high >= classes as i64 {
            let bad = if low < 0 { low } else { high };
            return Err(Error::invalid(
                "one_hot",
                format!("label {bad} is outside 0..{classes}"),
            ));
        }
        let class_ids = Tensor::arange(0.0, classes as f64, 1.0, DType::I64)?.to_device(self.device())?;
        self.unsqueeze(-1)?.eq(&class_ids)?.to_dtype(dtype)
    }

    /// Class labels (i64) to one-hot vectors along a new last axis, as
    /// `torch.nn.functional.one_hot`; `num_classes` of `None` means `max(label) + 1`. The result has
    /// `dtype` (PyTorch returns i64; losses want a float).
    pub fn one_hot(&self, num_classes: Option<usize>, dtype: DType) -> Result<Tensor> {
        expect_index("one_hot", self)?;
        if crate::ops::on_cuda(self) {
            return self.one_hot_cuda(num_classes, dtype);
        }
        let labels = self.values::<i64>()?;
        let classes = match num_classes {
            Some(c) => c,
            None => labels.iter().max().map_or(0, |&m| m.max(-1) + 1) as usize,
        };
        if let Some(bad) = labels.iter().find(|&&l| !(0..classes as i64).contains(&l)) {
            return Err(Error::invalid(
                "one_hot",
                format!("label {bad} is outside 0..{classes}"),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.push(classes);
        with_element!(dtype, T => {
            let mut out = vec![<T as Element>::from_f64(0.0); labels.len() * classes];
            for (i, &l) in labels.iter().enumerate() {
                out[i * classes + l as usize] = <T as Element>::from_f64(1.0);
            }
            Ok(tensor_from(out, &shape))
        })
    }
}
