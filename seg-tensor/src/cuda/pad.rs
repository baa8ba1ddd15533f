//! Axis remaps of CUDA tensors (pad in the reflect, replicate and circular modes, roll, flip): output
//! position `o` on axis `d` reads input position `maps[d][o]` (`cuda/pad.cu`), read through the
//! input's view.

use seg_kernels::cuda::pad as k;

use super::{dense, on_gpu, strided, tensor};
use crate::{with_element, with_float, Element, Result, Tensor};

/// The remap of `x` by `maps` (one per axis), `fill` where a map has `None`.
pub(crate) fn remap(x: &Tensor, maps: &[Vec<Option<usize>>], fill: f64) -> Result<Tensor> {
    let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    let view = strided(x.layout())?;
    with_element!(x.dtype(), T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        Ok(tensor(gpu, k::remap(gpu, (data, &view), maps, T::from_f64(fill))?, &shape))
    })
}

/// The gradient of a remap's input (shape `x_shape`): each output gradient added where it was read.
pub(crate) fn remap_backward(dy: &Tensor, maps: &[Vec<Option<usize>>], x_shape: &[usize]) -> Result<Tensor> {
    let dy = dense(dy)?;
    with_float!(dy.dtype(), "pad backward", T => {
        let (gpu, data) = on_gpu::<T>(&dy)?;
        Ok(tensor(gpu, k::remap_backward(gpu, &data.slice(..dy.numel()), maps, x_shape)?, x_shape))
    })
}
