//! Batched matrix products on CUDA through cuBLAS.

use seg_kernels::cuda as k;

use super::{dense, on_gpu, tensor};
use crate::layout::numel;
use crate::{with_float, Result, Tensor};

/// The operand's matrices as one dense buffer and the element stride between them: its own when its
/// batch axes are already `batch`, stride 0 when it has a single matrix (broadcast by cuBLAS), else
/// the broadcast batch made dense.
fn operand(t: &Tensor, batch: &[usize]) -> Result<(Tensor, usize)> {
    let r = t.rank();
    let matrix = t.shape()[r - 2] * t.shape()[r - 1];
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&t.shape()[r - 2..]);
    if numel(&t.shape()[..r - 2]) == 1 {
        return Ok((dense(&t.reshape(&t.shape()[r - 2..])?)?, 0));
    }
    Ok((dense(&t.broadcast_to(&shape)?)?, matrix))
}

/// `a @ b` for operands of rank >= 2 with batch axes broadcast to `batch`, shaped `out_shape`.
pub(crate) fn batched_matmul(a: &Tensor, b: &Tensor, batch: &[usize], out_shape: &[usize]) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, kk, n) = (a.shape()[ra - 2], a.shape()[ra - 1], b.shape()[rb - 1]);
    let (a, a_stride) = operand(a, batch)?;
    let (b, b_stride) = operand(b, batch)?;
    with_float!(a.dtype(), "matmul", T => {
        let (gpu, ad) = on_gpu::<T>(&a)?;
        let (_, bd) = on_gpu::<T>(&b)?;
        let c = k::matmul(gpu, (ad, a_stride), (bd, b_stride), numel(batch), (m, kk, n))?;
        Ok(tensor(gpu, c, out_shape))
    })
}
