//! Matrix products with `torch.matmul`'s rules, and `linear`.
//!
//! `C[..., i, j] = sum_p A[..., i, p] B[..., p, j]` with the batch axes broadcast; backward
//! `dA = dC B^T`, `dB = A^T dC`, each summed over the axes its operand was broadcast along. Every
//! product runs through `seg_kernels::cpu::gemm` (the `gemm` crate's SIMD micro-kernels), reading
//! transposed and strided operands in place.

use rayon::prelude::*;
use seg_kernels::cpu::gemm::{gemm, MatLayout, MatMut, MatRef};

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::{broadcast_shape, numel, Layout};
use crate::ops::{expect_float, expect_same_kind, tensor_from};
use crate::{with_float, Error, Float, Result, Tensor};

/// Products smaller than this many multiply-adds run one per thread instead of splitting one.
const SMALL_PRODUCT: usize = 1 << 18;

/// Offsets of each broadcast batch matrix of `layout` (seen with `batch` leading axes).
fn matrix_offsets(layout: &Layout, batch: &[usize]) -> Vec<usize> {
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&layout.shape()[layout.rank() - 2..]);
    let l = layout.broadcast_to(&shape);
    let batch_view = Layout::new(batch.to_vec(), l.strides()[..batch.len()].to_vec(), l.offset());
    batch_view.offsets().collect()
}

fn mat_layout(layout: &Layout, offset: usize) -> MatLayout {
    let r = layout.rank();
    MatLayout {
        rows: layout.shape()[r - 2],
        cols: layout.shape()[r - 1],
        offset,
        row_stride: layout.strides()[r - 2],
        col_stride: layout.strides()[r - 1],
    }
}

fn batched_product<T: Float>(a: &Tensor, b: &Tensor, batch: &[usize], m: usize, n: usize) -> Result<Vec<T>> {
    let a_data = T::unwrap(a.storage().expect_cpu("matmul")?).expect("dtype checked");
    let b_data = T::unwrap(b.storage().expect_cpu("matmul")?).expect("dtype checked");
    let a_offsets = matrix_offsets(a.layout(), batch);
    let b_offsets = matrix_offsets(b.layout(), batch);
    let k = a.shape()[a.rank() - 1];
    let mut out = vec![T::zero(); numel(batch) * m * n];
    if m * n == 0 {
        return Ok(out);
    }
    let threads = rayon::current_num_threads();
    let one = |(i, c): (usize, &mut [T]), threads: usize| {
        let a_l = mat_layout(a.layout(), a_offsets[i]);
        let b_l = mat_layout(b.layout(), b_offsets[i]);
        let (a, b) = (
            MatRef {
                data: a_data,
                layout: a_l,
            },
            MatRef {
                data: b_data,
                layout: b_l,
            },
        );
        gemm(
            a,
            b,
            MatMut {
                data: c,
                layout: MatLayout::row_major(m, n, 0),
            },
            T::zero(),
            threads,
        );
    };
    if a_offsets.len() > 1 && m * n * k < SMALL_PRODUCT {
        out.par_chunks_mut(m * n).enumerate().for_each(|job| one(job, 1));
    } else {
        out.chunks_mut(m * n).enumerate().for_each(|job| one(job, threads));
    }
    Ok(out)
}

struct MatmulBackward {
    a: Tensor,
    b: Tensor,
    wants: [bool; 2],
}

impl Backward for MatmulBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let da = if self.wants[0] {
            Some(
                grad.batched_matmul(&self.b.transpose(-1, -2)?)?
                    .sum_to_shape(self.a.shape())?,
            )
        } else {
            None
        };
        let db = if self.wants[1] {
            Some(
                self.a
                    .transpose(-1, -2)?
                    .batched_matmul(grad)?
                    .sum_to_shape(self.b.shape())?,
            )
        } else {
            None
        };
        Ok(vec![da, db])
    }
}

impl Tensor {
    /// The product of two tensors of rank >= 2 with broadcast batch axes.
    fn batched_matmul(&self, other: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), other.rank());
        let (m, k) = (self.shape()[ra - 2], self.shape()[ra - 1]);
        let (k2, n) = (other.shape()[rb - 2], other.shape()[rb - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                expected: format!("a right operand with {k} rows (left is {:?})", self.shape()),
                found: other.shape().to_vec(),
            });
        }
        let batch = broadcast_shape("matmul", &self.shape()[..ra - 2], &other.shape()[..rb - 2])?;
        let mut shape = batch.clone();
        shape.extend([m, n]);
        let out = if crate::ops::on_cuda(self) {
            crate::cuda::batched_matmul(self, other, &batch, &shape)?
        } else {
            with_float!(self.dtype(), "matmul", T => {
                Ok(tensor_from(batched_product::<T>(self, other, &batch, m, n)?, &shape))
            })?
        };
        Ok(Tensor::from_op(out, &[self, other], |_| MatmulBackward {
            a: self.detach(),
            b: other.detach(),
            wants: [self.tracks_grad(), other.tracks_grad()],
        }))
    }

    /// Matrix product with `torch.matmul`'s rules: vectors are promoted to matrices and the added
    /// axis removed again, batch axes broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        if let Some(y) = autocast::dispatch(Policy::Lower, &[self, other], |t| t[0].matmul(&t[1]))? {
            return Ok(y);
        }
        expect_float("matmul", self)?;
        expect_same_kind("matmul", self, other)?;
        match (self.rank(), other.rank()) {
            (0, _) | (_, 0) => Err(Error::invalid("matmul", "both operands need at least one dimension")),
            (1, 1) => self.unsqueeze(0)?.batched_matmul(&other.unsqueeze(1)?)?.reshape(&[]),
            (1, _) => self.unsqueeze(0)?.matmul(other)?.squeeze(-2),
            (_, 1) => self.matmul(&other.unsqueeze(1)?)?.squeeze(-1),
            (ra, 2) if ra > 2 => {
                // Fold the batch axes into the rows: one large product instead of many small ones.
                let k = self.shape()[ra - 1];
                let rows = self.reshape(&[numel(&self.shape()[..ra - 1]), k])?;
                let mut shape = self.shape()[..ra - 1].to_vec();
                shape.push(other.shape()[1]);
                rows.batched_matmul(other)?.reshape(&shape)
            }
            _ => self.batched_matmul(other),
        }
    }

    /// `x W^T + b` over the last axis, as `torch.nn.functional.linear` (weight `(out, in)`).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let inputs = autocast::flat(&[self, weight], &[bias]);
        if let Some(y) = autocast::dispatch(Policy::Lower, &inputs, |t| t[0].linear(&t[1], t.get(2)))? {
            return Ok(y);
        }
        let in_features = self.shape().last().copied().unwrap_or(1);
        if weight.rank() != 2 || weight.shape()[1] != in_features {
            return Err(Error::ShapeMismatch {
                op: "linear",
                expected: format!(
                    "a weight of shape (out, {in_features}) for an input of shape {:?}",
                    self.shape()
                ),
                found: weight.shape().to_vec(),
            });
        }
        let y = self.matmul(&weight.t()?)?;
        match bias {
            Some(b) if b.shape() != [weight.shape()[0]] => Err(Error::ShapeMismatch {
                op: "linear",
                expected: format!("a bias of shape [{}]", weight.shape()[0]),
                found: b.shape().to_vec(),
            }),
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}
