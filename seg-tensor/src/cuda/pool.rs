//! Pooling of CUDA tensors: seg-kernels' launchers (`cuda/pool.cu`) on dense buffers (the first
//! `numel` values of each: a dense tensor may sit at the start of a longer buffer), with the
//! geometries the CPU op builds (`seg_kernels::cpu::pool`).

use seg_kernels::cpu::pool::{AdaptiveGeometry, AvgDivisor, PoolGeometry};
use seg_kernels::cuda::pool as k;

use super::{dense, on_gpu, tensor};
use crate::{with_float, Result, Tensor};

/// `(y, argmax)` of a max pooling, both shaped `shape`.
pub(crate) fn max_pool(g: &PoolGeometry, x: &Tensor, shape: &[usize]) -> Result<(Tensor, Tensor)> {
    let x = dense(x)?;
    with_float!(x.dtype(), "max_pool", T => {
        let (gpu, data) = on_gpu::<T>(&x)?;
        let (y, argmax) = k::max_pool_forward(gpu, g, &data.slice(..x.numel()))?;
        Ok((tensor(gpu, y, shape), tensor(gpu, argmax, shape)))
    })
}

/// The gradient of a max pooling's input, shaped `x_shape`.
pub(crate) fn max_pool_backward(g: &PoolGeometry, dy: &Tensor, argmax: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    let (dy, argmax) = (dense(dy)?, dense(argmax)?);
    with_float!(dy.dtype(), "max_pool backward", T => {
        let (gpu, data) = on_gpu::<T>(&dy)?;
        let (_, indices) = on_gpu::<i64>(&argmax)?;
        Ok(tensor(gpu, k::max_pool_backward(gpu, g, &data.slice(..dy.numel()), &indices.slice(..argmax.numel()))?, x_shape))
    })
}

/// An average pooling, shaped `shape`.
pub(crate) fn avg_pool(g: &PoolGeometry, divisor: AvgDivisor, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let x = dense(x)?;
    with_float!(x.dtype(), "avg_pool", T => {
        let (gpu, data) = on_gpu::<T>(&x)?;
        Ok(tensor(gpu, k::avg_pool_forward(gpu, g, divisor, &data.slice(..x.numel()))?, shape))
    })
}

/// The gradient of an average pooling's input, shaped `x_shape`.
pub(crate) fn avg_pool_backward(
    g: &PoolGeometry,
    divisor: AvgDivisor,
    dy: &Tensor,
    x_shape: &[usize],
) -> Result<Tensor> {
    let dy = dense(dy)?;
    with_float!(dy.dtype(), "avg_pool backward", T => {
        let (gpu, data) = on_gpu::<T>(&dy)?;
        Ok(tensor(gpu, k::avg_pool_backward(gpu, g, divisor, &data.slice(..dy.numel()))?, x_shape))
    })
}

/// An adaptive average pooling, shaped `shape`.
pub(crate) fn adaptive_avg_pool(g: &AdaptiveGeometry, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let x = dense(x)?;
    with_float!(x.dtype(), "adaptive_avg_pool", T => {
        let (gpu, data) = on_gpu::<T>(&x)?;
        Ok(tensor(gpu, k::adaptive_avg_pool_forward(gpu, g, &data.slice(..x.numel()))?, shape))
    })
}

/// The gradient of an adaptive average pooling's input, shaped `x_shape`.
pub(crate) fn adaptive_avg_pool_backward(g: &AdaptiveGeometry, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    let dy = dense(dy)?;
    with_float!(dy.dtype(), "adaptive_avg_pool backward", T => {
        let (gpu, data) = on_gpu::<T>(&dy)?;
        Ok(tensor(gpu, k::adaptive_avg_pool_backward(gpu, g, &data.slice(..dy.numel()))?, x_shape))
    })
}
