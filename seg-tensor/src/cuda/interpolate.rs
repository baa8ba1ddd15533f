//! Resampling of CUDA tensors (nearest, linear modes): seg-kernels' launchers
//! (`cuda/interpolate.cu`) on dense buffers, with the geometry the CPU op builds.

use seg_kernels::cpu::interpolate::InterpGeometry;
use seg_kernels::cuda::interpolate as k;

use super::{dense, on_gpu, tensor};
use crate::{with_float, Result, Tensor};

/// The resampling of `x`, shaped `shape`.
pub(crate) fn interpolate(g: &InterpGeometry, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let x = dense(x)?;
    with_float!(x.dtype(), "interpolate", T => {
        let (gpu, data) = on_gpu::<T>(&x)?;
        Ok(tensor(gpu, k::interpolate_forward(gpu, g, &data.slice(..x.numel()))?, shape))
    })
}

/// The gradient of a resampling's input, shaped `x_shape`.
pub(crate) fn interpolate_backward(g: &InterpGeometry, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    let dy = dense(dy)?;
    with_float!(dy.dtype(), "interpolate backward", T => {
        let (gpu, data) = on_gpu::<T>(&dy)?;
        Ok(tensor(gpu, k::interpolate_backward(gpu, g, &data.slice(..dy.numel()))?, x_shape))
    })
}
