//! Reductions and softmax on CUDA. Each moves the reduced axes last in a view (no copy) and runs one
//! block per row.

use seg_kernels::cuda::{self as k, ReduceKernel};

use super::{on_gpu, strided, tensor};
use crate::layout::{numel, Layout};
use crate::{with_comparable, with_float, Result, Tensor};

/// `x`'s view with the axes `reduced` moved last, and the (rows, cols) it splits into.
fn rows_view(x: &Tensor, reduced: &[usize]) -> (Layout, (usize, usize)) {
    let kept = (0..x.rank()).filter(|d| !reduced.contains(d));
    let order: Vec<usize> = kept.chain(reduced.iter().copied()).collect();
    let cols = reduced.iter().map(|&d| x.shape()[d]).product::<usize>();
    let rows = numel(
        &order
            .iter()
            .filter(|d| !reduced.contains(d))
            .map(|&d| x.shape()[d])
            .collect::<Vec<_>>(),
    );
    (x.layout().permute(&order), (rows, cols))
}

/// `op` over the axes `reduced` of `x` (with `scale`, see `ReduceKernel`), shaped `out_shape`.
pub(crate) fn reduce(
    x: &Tensor,
    reduced: &[usize],
    op: ReduceKernel,
    scale: f64,
    out_shape: &[usize],
) -> Result<Tensor> {
    let (view, dims) = rows_view(x, reduced);
    with_float!(x.dtype(), "reduce", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        Ok(tensor(gpu, k::reduce_rows(gpu, (data, &strided(&view)?), dims, op, scale)?, out_shape))
    })
}

/// Values and (i64) indices of the first extreme along axis `dim`, shaped `out_shape`.
pub(crate) fn extreme(x: &Tensor, dim: usize, largest: bool, out_shape: &[usize]) -> Result<(Tensor, Tensor)> {
    let (view, (rows, cols)) = rows_view(x, &[dim]);
    with_comparable!(x.dtype(), "max", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        let (values, indices) = k::arg_rows(gpu, (data, &strided(&view)?), rows, cols, largest)?;
        Ok((tensor(gpu, values, out_shape), tensor(gpu, indices, out_shape)))
    })
}

/// The view of a dense buffer of `shape` with axis `dim` moved last.
fn dense_rows(shape: &[usize], dim: usize) -> Layout {
    let order: Vec<usize> = (0..shape.len()).filter(|&d| d != dim).chain([dim]).collect();
    Layout::contiguous(shape).permute(&order)
}

/// Softmax (or log-softmax) of `x` along `dim`.
pub(crate) fn softmax(x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
    let (view, (_, cols)) = rows_view(x, &[dim]);
    let out_view = strided(&dense_rows(x.shape(), dim))?;
    with_float!(x.dtype(), "softmax", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        Ok(tensor(gpu, k::softmax(gpu, (data, &strided(&view)?), &out_view, cols, log)?, x.shape()))
    })
}

/// The gradient of softmax (or log-softmax) along `dim` from `grad` and the output `y`.
pub(crate) fn softmax_backward(grad: &Tensor, y: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
    let (g_view, (_, cols)) = rows_view(grad, &[dim]);
    let (y_view, _) = rows_view(y, &[dim]);
    let out_view = strided(&dense_rows(grad.shape(), dim))?;
    with_float!(grad.dtype(), "softmax backward", T => {
        let (gpu, gd) = on_gpu::<T>(grad)?;
        let (_, yd) = on_gpu::<T>(y)?;
        let dx = k::softmax_backward(gpu, (gd, &strided(&g_view)?), (yd, &strided(&y_view)?), &out_view, cols, log)?;
        Ok(tensor(gpu, dx, grad.shape()))
    })
}
