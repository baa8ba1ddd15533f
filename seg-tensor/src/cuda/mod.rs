//! The CUDA side of the ops: each op's forward (and backward) calls into here when its operands
//! live on a CUDA device. Functions take and return tensors; the kernels are seg-kernels' launchers
//! over device buffers, reading operands through their views (no copy to make them dense first).

mod conv;
mod elementwise;
mod index;
mod interpolate;
mod matmul;
mod norm;
mod pad;
mod pool;
mod reduce;
mod selective_scan;
mod window_attention;

use std::borrow::Cow;
use std::sync::Arc;

pub(crate) use conv::{conv_backward_data, conv_backward_weight, conv_forward};
pub(crate) use elementwise::{binary, binary_backward, compare, select, unary, unary_backward};
pub(crate) use index::{gather, scatter_add};
pub(crate) use interpolate::{interpolate, interpolate_backward};
pub(crate) use matmul::batched_matmul;
pub(crate) use norm::{group_norm, layer_norm, BatchNorm};
pub(crate) use pad::{remap, remap_backward};
pub(crate) use pool::{
    adaptive_avg_pool, adaptive_avg_pool_backward, avg_pool, avg_pool_backward, max_pool, max_pool_backward,
};
pub(crate) use reduce::{extreme, reduce, softmax, softmax_backward};
use seg_kernels::cuda::{self as k, CudaSlice, CudaView, Gpu, Strided};
pub(crate) use selective_scan::selective_scan;
pub(crate) use window_attention::window_attention;

use crate::layout::Layout;
use crate::storage::{gpu, Storage};
use crate::{DType, Device, Element, Error, Result, Tensor};

/// Runs `$body` with `$T` bound to the storage type of `$dtype` that the fused CUDA kernels take
/// (f32, f16, bf16; they compute in f32), or fails naming `$op` and the dtype found.
macro_rules! with_storage_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F16 => {
                type $T = $crate::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = $crate::half::bf16;
                $body
            }
            found => Err($crate::Error::DType {
                op: $op,
                expected: "f32, f16 or bf16 (on CUDA)",
                found,
            }),
        }
    };
}
use with_storage_float;

/// The GPU and the typed device buffer of a CUDA tensor (`None` for a CPU tensor).
pub(crate) fn buffer<T: Element>(t: &Tensor) -> Result<Option<(&Arc<Gpu>, &CudaSlice<T>)>> {
    let Some(buffer) = t.storage().cuda() else {
        return Ok(None);
    };
    let data = T::unwrap_cuda(&buffer.data).ok_or(Error::DType {
        op: "cuda buffer",
        expected: T::DTYPE.name(),
        found: t.dtype(),
    })?;
    Ok(Some((&buffer.gpu, data)))
}

/// The GPU and buffer of a tensor the caller knows to be on CUDA.
fn on_gpu<T: Element>(t: &Tensor) -> Result<(&Arc<Gpu>, &CudaSlice<T>)> {
    buffer::<T>(t)?.ok_or(Error::Unsupported {
        op: "a CUDA kernel",
        device: Device::Cpu,
    })
}

/// The device buffer of a dense CUDA tensor (see [`dense`]), exactly its elements.
fn elements<T: Element>(t: &Tensor) -> Result<CudaView<'_, T>> {
    Ok(on_gpu::<T>(t)?.1.slice(..t.numel()))
}

/// `t` converted to `dtype` on its device, unless it already is.
fn to_dtype(t: Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t)
    } else {
        cast(&t, dtype)
    }
}

/// The kernel view of a layout.
fn strided(layout: &Layout) -> Result<Strided> {
    Ok(Strided::new(layout.shape(), layout.strides(), layout.offset())?)
}

/// The kernel view of `t`, broadcast to `shape`.
fn broadcast(t: &Tensor, shape: &[usize]) -> Result<Strided> {
    strided(&t.layout().broadcast_to(shape))
}

/// A dense CUDA tensor of `shape` owning `data`.
fn tensor<T: Element>(gpu: &Arc<Gpu>, data: CudaSlice<T>, shape: &[usize]) -> Tensor {
    debug_assert_eq!(data.len(), crate::layout::numel(shape));
    Tensor::with_storage(Storage::new_cuda(gpu.clone(), T::wrap_cuda(data)), shape)
}

/// The elements of a CUDA tensor in row-major order, copied to the host (waits for the device).
pub(crate) fn download<T: Element>(t: &Tensor) -> Result<Cow<'static, [T]>> {
    let (gpu, data) = on_gpu::<T>(t)?;
    let layout = t.layout();
    let values = if layout.is_contiguous() && layout.offset() == 0 && data.len() == layout.numel() {
        gpu.download(data)?
    } else {
        gpu.download(&k::gather(gpu, data, &strided(layout)?)?)?
    };
    Ok(Cow::Owned(values))
}

/// `t` (on any device) copied to CUDA device `ordinal`.
pub(crate) fn upload(t: &Tensor, ordinal: usize) -> Result<Tensor> {
    let gpu = gpu(ordinal)?;
    crate::with_element!(t.dtype(), T => {
        let data = gpu.upload::<T>(&t.values::<T>()?)?;
        Ok(tensor(&gpu, data, t.shape()))
    })
}

/// `t` itself when its elements are its whole buffer in row-major order, else a dense copy.
fn dense(t: &Tensor) -> Result<Tensor> {
    let whole = t.storage().cuda().is_some_and(|b| b.data.len() == t.numel());
    if whole && t.is_contiguous() && t.layout().offset() == 0 {
        Ok(t.clone())
    } else {
        contiguous(t)
    }
}

/// A dense copy of a CUDA view.
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    crate::with_element!(t.dtype(), T => {
        let (gpu, data) = on_gpu::<T>(t)?;
        Ok(tensor(gpu, k::gather(gpu, data, &strided(t.layout())?)?, t.shape()))
    })
}

/// A CUDA tensor of `shape` with every element `value` (converted to `dtype` on the host).
pub(crate) fn full(ordinal: usize, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
    let gpu = gpu(ordinal)?;
    let n = crate::layout::numel(shape);
    crate::with_element!(dtype, T => Ok(tensor(&gpu, k::fill(&gpu, n, T::from_f64(value))?, shape)))
}

/// A CUDA tensor converted to `dtype`.
pub(crate) fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    crate::with_element!(t.dtype(), T => {
        let (gpu, data) = on_gpu::<T>(t)?;
        let view = strided(t.layout())?;
        crate::with_element!(dtype, U => Ok(tensor(gpu, k::cast::<T, U>(gpu, data, &view)?, t.shape())))
    })
}

/// A dense CUDA tensor of `shape` and `dtype` on CUDA device `ordinal`, filled with `fill`, with each
/// part copied into the window of its shape that starts at the given index (per axis): cat, the
/// adjoint of narrow, constant padding.
pub(crate) fn assemble(
    ordinal: usize,
    shape: &[usize],
    dtype: DType,
    fill: f64,
    parts: &[(&Tensor, Vec<usize>)],
) -> Result<Tensor> {
    let gpu = gpu(ordinal)?;
    let dense = Layout::contiguous(shape);
    crate::with_element!(dtype, T => {
        let mut data = k::fill(&gpu, dense.numel(), T::from_f64(fill))?;
        for (part, starts) in parts {
            if part.device() != Device::Cuda(ordinal) {
                return Err(Error::DeviceMismatch { op: "assemble", lhs: Device::Cuda(ordinal), rhs: part.device() });
            }
            let offset = starts.iter().zip(dense.strides()).map(|(s, st)| s * st).sum();
            let window = Layout::new(part.shape().to_vec(), dense.strides().to_vec(), offset);
            k::copy(&gpu, on_gpu::<T>(part)?.1, &strided(part.layout())?, &mut data, &strided(&window)?)?;
        }
        Ok(tensor(&gpu, data, shape))
    })
}
