//! Joining and splitting along an axis: cat, stack, split, chunk.

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::normalize_dim;
use crate::ops::tensor_from;
use crate::{with_element, Element, Error, Result, Tensor};

struct CatBackward {
    dim: usize,
    sizes: Vec<usize>,
}

impl Backward for CatBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(self.sizes.len());
        for &size in &self.sizes {
            grads.push(Some(grad.narrow(self.dim as isize, start, size)?.contiguous()?));
            start += size;
        }
        Ok(grads)
    }
}

fn cat_values<T: Element>(tensors: &[&Tensor], dim: usize, shape: &[usize]) -> Result<Tensor> {
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let parts: Vec<_> = tensors.iter().map(|t| t.values::<T>()).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(crate::layout::numel(shape));
    for o in 0..outer {
        for (t, part) in tensors.iter().zip(&parts) {
            let block = t.shape()[dim] * inner;
            out.extend_from_slice(&part[o * block..(o + 1) * block]);
        }
    }
    Ok(tensor_from(out, shape))
}

impl Tensor {
    /// The tensors joined along `dim`; all other axes must agree (`torch.cat`).
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("cat", "no tensors to join"))?;
        if let Some(promoted) = autocast::cast_inputs(Policy::Promote, tensors)? {
            return Tensor::cat(&promoted.iter().collect::<Vec<_>>(), dim);
        }
        let d = normalize_dim("cat", dim, first.rank())?;
        let mut shape = first.shape().to_vec();
        shape[d] = 0;
        for t in tensors {
            crate::ops::expect_same_kind("cat", first, t)?;
            let same_rest =
                t.rank() == first.rank() && (0..t.rank()).all(|i| i == d || t.shape()[i] == first.shape()[i]);
            if !same_rest {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    expected: format!("the shape {:?} on every axis but {d}", first.shape()),
                    found: t.shape().to_vec(),
                });
            }
            shape[d] += t.shape()[d];
        }
        let out = match first.device() {
            crate::Device::Cuda(ordinal) => {
                let mut start = 0;
                let parts: Vec<_> = tensors
                    .iter()
                    .map(|&t| {
                        let mut starts = vec![0; shape.len()];
                        starts[d] = start;
                        start += t.shape()[d];
                        (t, starts)
                    })
                    .collect();
                crate::cuda::assemble(ordinal, &shape, first.dtype(), 0.0, &parts)?
            }
            _ => with_element!(first.dtype(), T => cat_values::<T>(tensors, d, &shape))?,
        };
        let sizes = tensors.iter().map(|t| t.shape()[d]).collect();
        Ok(Tensor::from_op(out, tensors, |_| CatBackward { dim: d, sizes }))
    }

    /// The tensors (all of one shape) stacked along a new axis `dim` (`torch.stack`).
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "no tensors to stack"))?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::ShapeMismatch {
                op: "stack",
                expected: format!("{:?}", first.shape()),
                found: t.shape().to_vec(),
            });
        }
        let unsqueezed: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(dim)).collect::<Result<_>>()?;
        Tensor::cat(&unsqueezed.iter().collect::<Vec<_>>(), dim)
    }

    /// Views of consecutive pieces along `dim` with the given sizes, which must add up to the axis
    /// (`torch.split` with a list).
    pub fn split_sizes(&self, sizes: &[usize], dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim("split", dim, self.rank())?;
        if sizes.iter().sum::<usize>() != self.shape()[d] {
            return Err(Error::invalid(
                "split",
                format!("sizes {sizes:?} do not add up to {} on axis {d}", self.shape()[d]),
            ));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&s| {
                let piece = self.narrow(d as isize, start, s);
                start += s;
                piece
            })
            .collect()
    }

    /// Views of pieces of `size` along `dim`, the last one possibly smaller (`torch.split` with an int).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim("split", dim, self.rank())?;
        if size == 0 {
            return Err(Error::invalid("split", "split size must be positive"));
        }
        let n = self.shape()[d];
        let sizes: Vec<usize> = (0..n.div_ceil(size)).map(|i| size.min(n - i * size)).collect();
        self.split_sizes(&sizes, dim)
    }

    /// At most `chunks` views along `dim` of size `ceil(n / chunks)` (`torch.chunk`).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(Error::invalid("chunk", "the number of chunks must be positive"));
        }
        let n = self.dim(dim)?;
        self.split(n.div_ceil(chunks).max(1), dim)
    }
}
