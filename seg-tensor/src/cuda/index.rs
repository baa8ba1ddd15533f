//! gather and scatter_add along one axis on CUDA (shapes checked by the caller).

use seg_kernels::cuda::{self as k, Strided};

use super::{on_gpu, strided, tensor};
use crate::layout::contiguous_strides;
use crate::{with_element, with_float, Result, Tensor};

/// The view of a tensor with `strides` from `offset` over the index's shape, axis `dim`'s stride set
/// to 0, and that stride.
fn along(index: &Tensor, dim: usize, strides: &[usize], offset: usize) -> Result<(Strided, usize)> {
    let mut strides = strides.to_vec();
    let stride_dim = std::mem::replace(&mut strides[dim], 0);
    Ok((Strided::new(index.shape(), &strides, offset)?, stride_dim))
}

/// `out[p] = x[p with axis dim replaced by index[p]]`.
pub(crate) fn gather(x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor> {
    let (view, stride_dim) = along(index, dim, x.layout().strides(), x.layout().offset())?;
    let size = x.shape()[dim];
    with_element!(x.dtype(), T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        let (_, idx) = on_gpu::<i64>(index)?;
        let out = k::gather_along(gpu, (data, &view), (stride_dim, size), (idx, &strided(index.layout())?))?;
        Ok(tensor(gpu, out, index.shape()))
    })
}

/// A copy of `x` with `src[p]` added at `p` with axis `dim` replaced by `index[p]`.
pub(crate) fn scatter_add(x: &Tensor, dim: usize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
    let (view, stride_dim) = along(index, dim, &contiguous_strides(x.shape()), 0)?;
    let size = x.shape()[dim];
    with_float!(x.dtype(), "scatter_add", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        let (_, idx) = on_gpu::<i64>(index)?;
        let (_, values) = on_gpu::<T>(src)?;
        let mut out = k::gather(gpu, data, &strided(x.layout())?)?;
        let (index_view, src_view) = (strided(index.layout())?, strided(src.layout())?);
        k::scatter_add_along(gpu, (&mut out, &view), (stride_dim, size), (idx, &index_view), (values, &src_view))?;
        Ok(tensor(gpu, out, x.shape()))
    })
}
