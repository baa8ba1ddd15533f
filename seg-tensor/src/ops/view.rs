//! Views: ops that reinterpret a tensor's layout without copying (reshape copies only when the
//! layout cannot express the new shape), and `contiguous`.

use crate::autograd::Backward;
use crate::layout::{broadcast_shape, normalize_dim, normalize_dims, numel, Layout};
use crate::ops::tensor_from;
use crate::{Element, Error, Result, Tensor};

/// Backward of a view: the gradient reshaped, permuted, summed or padded back to the input.
enum ViewBackward {
    Reshape(Vec<usize>),
    Permute(Vec<isize>),
    SumTo(Vec<usize>),
    Narrow { dim: usize, start: usize, size: usize },
    Identity,
}

impl Backward for ViewBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = match *self {
            ViewBackward::Reshape(shape) => grad.reshape(&shape)?,
            ViewBackward::Permute(inverse) => grad.permute(&inverse)?,
            ViewBackward::SumTo(shape) => grad.sum_to_shape(&shape)?,
            ViewBackward::Narrow { dim, start, size } => embed(grad, dim, start, size)?,
            ViewBackward::Identity => grad.clone(),
        };
        Ok(vec![Some(g)])
    }
}

/// The adjoint of `narrow(dim, start, len)` on an axis of `size`: `grad` copied into zeros at
/// `start..start + len` along `dim`, one block copy per index of the axes before `dim`.
fn embed(grad: &Tensor, dim: usize, start: usize, size: usize) -> Result<Tensor> {
    let mut shape = grad.shape().to_vec();
    let len = shape[dim];
    shape[dim] = size;
    let inner: usize = shape[dim + 1..].iter().product();
    if let crate::Device::Cuda(ordinal) = grad.device() {
        let mut starts = vec![0; shape.len()];
        starts[dim] = start;
        return crate::cuda::assemble(ordinal, &shape, grad.dtype(), 0.0, &[(grad, starts)]);
    }
    crate::with_element!(grad.dtype(), T => {
        let g = grad.values::<T>()?;
        let mut out = vec![T::from_f64(0.0); numel(&shape)];
        if len * inner > 0 {
            for (o, block) in g.chunks(len * inner).enumerate() {
                out[(o * size + start) * inner..][..len * inner].copy_from_slice(block);
            }
        }
        Ok(tensor_from(out, &shape))
    })
}

/// Resolves one `-1` in a requested shape against `numel`.
fn infer_shape(requested: &[isize], numel_in: usize, found: &[usize]) -> Result<Vec<usize>> {
    let unknown: Vec<usize> = requested
        .iter()
        .enumerate()
        .filter(|(_, &d)| d == -1)
        .map(|(i, _)| i)
        .collect();
    let bad = || Error::ShapeMismatch {
        op: "reshape",
        expected: format!("a shape with {numel_in} elements, got {requested:?}"),
        found: found.to_vec(),
    };
    if unknown.len() > 1 || requested.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    let known: usize = requested.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
    let mut shape: Vec<usize> = requested.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(&i) = unknown.first() {
        if known == 0 || !numel_in.is_multiple_of(known) {
            return Err(bad());
        }
        shape[i] = numel_in / known;
    }
    if numel(&shape) != numel_in {
        return Err(bad());
    }
    Ok(shape)
}

impl Tensor {
    fn view_op(&self, layout: Layout, backward: ViewBackward) -> Tensor {
        Tensor::from_op(self.view_with(layout), &[self], |_| backward)
    }

    /// The same elements with `shape` (row-major order); a view when the layout allows, else a copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                expected: format!("{} elements for shape {shape:?}", numel(shape)),
                found: self.shape().to_vec(),
            });
        }
        let source = self.contiguous()?;
        let layout = Layout::new(
            shape.to_vec(),
            crate::layout::contiguous_strides(shape),
            source.layout().offset(),
        );
        Ok(source.view_op(layout, ViewBackward::Reshape(self.shape().to_vec())))
    }

    /// `reshape` with PyTorch's `-1` for one inferred dimension.
    pub fn view(&self, shape: &[isize]) -> Result<Tensor> {
        self.reshape(&infer_shape(shape, self.numel(), self.shape())?)
    }

    /// Dimensions `start..=end` merged into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let s = normalize_dim("flatten", start, self.rank())?;
        let e = normalize_dim("flatten", end, self.rank())?;
        if s > e {
            return Err(Error::invalid(
                "flatten",
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut shape = self.shape()[..s].to_vec();
        shape.push(numel(&self.shape()[s..=e]));
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape(&shape)
    }

    /// Axes reordered: axis `i` of the result is axis `dims[i]` of `self` (a view).
    pub fn permute(&self, dims: &[isize]) -> Result<Tensor> {
        if dims.len() != self.rank() {
            return Err(Error::invalid(
                "permute",
                format!("{dims:?} does not name all {} axes", self.rank()),
            ));
        }
        let dims = normalize_dims("permute", dims, self.rank())?;
        let mut inverse = vec![0isize; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            inverse[d] = i as isize;
        }
        Ok(self.view_op(self.layout().permute(&dims), ViewBackward::Permute(inverse)))
    }

    /// Axes `a` and `b` swapped (a view).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_dim("transpose", a, self.rank())?;
        let b = normalize_dim("transpose", b, self.rank())?;
        let mut dims: Vec<isize> = (0..self.rank() as isize).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// The matrix transpose of a rank-2 tensor (PyTorch's `.t()`).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::ShapeMismatch {
                op: "t",
                expected: "a rank-2 tensor".into(),
                found: self.shape().to_vec(),
            });
        }
        self.transpose(0, 1)
    }

    /// Elements `start..start + len` along `dim` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = normalize_dim("narrow", dim, self.rank())?;
        let size = self.shape()[d];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::invalid(
                "narrow",
                format!("start {start} and length {len} reach outside 0..{size} on dim {d}"),
            ));
        }
        let l = self.layout();
        let mut shape = l.shape().to_vec();
        shape[d] = len;
        let layout = Layout::new(shape, l.strides().to_vec(), l.offset() + start * l.strides()[d]);
        Ok(self.view_op(layout, ViewBackward::Narrow { dim: d, start, size }))
    }

    /// The tensor broadcast to `shape` under NumPy's rules (a view with stride 0 on repeated axes).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if broadcast_shape("broadcast_to", self.shape(), shape)? != shape {
            return Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(self.view_op(
            self.layout().broadcast_to(shape),
            ViewBackward::SumTo(self.shape().to_vec()),
        ))
    }

    /// PyTorch's `expand`: `broadcast_to` where `-1` keeps a size.
    pub fn expand(&self, shape: &[isize]) -> Result<Tensor> {
        let pad = shape.len().checked_sub(self.rank()).ok_or_else(|| {
            Error::invalid(
                "expand",
                format!("cannot expand shape {:?} to fewer axes {shape:?}", self.shape()),
            )
        })?;
        let target: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &s)| match s {
                -1 if i >= pad => Ok(self.shape()[i - pad]),
                s if s >= 0 => Ok(s as usize),
                _ => Err(Error::invalid(
                    "expand",
                    format!(
                        "size {s} at position {i} of {shape:?} (only -1, and only on an existing axis of {:?}, keeps a size)",
                        self.shape()
                    ),
                )),
            })
            .collect::<Result<_>>()?;
        self.broadcast_to(&target)
    }

    /// A size-1 axis inserted at `dim` (a view).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("unsqueeze", dim, self.rank() + 1)?;
        let mut shape = self.shape().to_vec();
        shape.insert(d, 1);
        self.reshape(&shape)
    }

    /// Axis `dim` removed if it has size 1 (as PyTorch, a no-op otherwise).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("squeeze", dim, self.rank())?;
        if self.shape()[d] != 1 {
            return Ok(self.clone());
        }
        let mut shape = self.shape().to_vec();
        shape.remove(d);
        self.reshape(&shape)
    }

    /// A dense row-major copy, or `self` when it already is one.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = if crate::ops::on_cuda(self) {
            crate::cuda::contiguous(self)?
        } else {
            crate::with_element!(self.dtype(), T => tensor_from(self.to_vec::<T>()?, self.shape()))
        };
        Ok(Tensor::from_op(out, &[self], |_| ViewBackward::Identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn views_share_storage_and_read_right() {
        let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
            .unwrap()
            .reshape(&[2, 3, 4])
            .unwrap();
        let p = x.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert!(std::sync::Arc::ptr_eq(p.storage(), x.storage()));
        assert_eq!(p.to_vec::<f32>().unwrap()[..6], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
        let n = x.narrow(2, 1, 2).unwrap();
        assert_eq!(
            n.to_vec::<f32>().unwrap(),
            vec![1., 2., 5., 6., 9., 10., 13., 14., 17., 18., 21., 22.]
        );
        let e = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1])
            .unwrap()
            .expand(&[-1, 3])
            .unwrap();
        assert_eq!(e.to_vec::<f32>().unwrap(), vec![1., 1., 1., 2., 2., 2.]);
        assert_eq!(x.view(&[-1, 4]).unwrap().shape(), &[6, 4]);
        assert!(x.view(&[-1, 5]).is_err());
        assert_eq!(x.unsqueeze(-1).unwrap().shape(), &[2, 3, 4, 1]);
        assert_eq!(x.unsqueeze(-1).unwrap().squeeze(3).unwrap().shape(), &[2, 3, 4]);
        assert_eq!(x.flatten(1, -1).unwrap().shape(), &[2, 12]);
    }
}
