//! Tensor ops, one file per family; each op's forward and its `Backward` sit side by side.

mod binary;
mod cast;
mod compare;
mod concat;
mod conv;
mod conv_transpose;
mod index;
mod interpolate;
mod matmul;
mod norm;
mod pad;
mod pool;
mod reduce;
mod selective_scan;
mod softmax;
mod unary;
mod view;
mod window_attention;

pub use conv::{ConvOptions, ConvPadding};
pub use conv_transpose::ConvTransposeOptions;
pub use interpolate::{InterpolateMode, InterpolateOptions};
pub use norm::BatchNormStats;
pub use pad::PadMode;
pub use pool::{AvgPoolOptions, MaxPoolOptions};
pub use selective_scan::ScanOptions;
pub use unary::Unary;
pub use window_attention::RelativeBias;

use std::borrow::Cow;

use rayon::prelude::*;

use crate::layout::numel;
use crate::{DType, Element, Result, Tensor};

/// Below this many elements an elementwise loop runs on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Elements per parallel task of an elementwise loop.
const CHUNK: usize = 1 << 14;

/// `out[i] = f(i-th chunk of inputs)` written chunk by chunk into a new vector of `len` elements, on
/// rayon's threads for large inputs. `fill(chunk_index, out_chunk)` must write every element of its
/// chunk; each chunk is a plain loop, so simple functions vectorise.
fn fill_chunks<U: Element>(len: usize, fill: impl Fn(usize, &mut [std::mem::MaybeUninit<U>]) + Sync) -> Vec<U> {
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    if len < PARALLEL_THRESHOLD {
        spare.chunks_mut(CHUNK).enumerate().for_each(|(i, o)| fill(i, o));
    } else {
        spare.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| fill(i, o));
    }
    // SAFETY: the first `len` elements were written above (`fill` writes every element it gets).
    unsafe { out.set_len(len) };
    out
}

/// `f` applied to every element, on rayon's threads for large inputs.
pub(crate) fn map_values<T: Element, U: Element>(xs: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    fill_chunks(xs.len(), |i, out| {
        for (o, &x) in out.iter_mut().zip(&xs[i * CHUNK..]) {
            o.write(f(x));
        }
    })
}

/// `f` applied to pairs of elements of two equally long slices.
pub(crate) fn zip_values<T: Element, U: Element, V: Element>(
    xs: &[T],
    ys: &[U],
    f: impl Fn(T, U) -> V + Sync,
) -> Vec<V> {
    assert_eq!(xs.len(), ys.len(), "zip_values of unequal lengths");
    fill_chunks(xs.len(), |i, out| {
        for ((o, &x), &y) in out.iter_mut().zip(&xs[i * CHUNK..]).zip(&ys[i * CHUNK..]) {
            o.write(f(x, y));
        }
    })
}

/// The elements of `t` broadcast to `shape`, in row-major order (borrowed when nothing moves).
pub(crate) fn broadcast_values<'a, T: Element>(t: &'a Tensor, shape: &[usize]) -> Result<Cow<'a, [T]>> {
    if t.shape() == shape {
        return t.values::<T>();
    }
    let data = T::unwrap(t.storage().expect_cpu("broadcast")?).ok_or(crate::Error::DType {
        op: "broadcast",
        expected: T::DTYPE.name(),
        found: t.dtype(),
    })?;
    // A contiguous tensor whose shape ends `shape` (a bias over rows): whole copies of it.
    if t.is_contiguous() && t.numel() > 0 && shape.ends_with(t.shape()) {
        let own = &data[t.layout().offset()..][..t.numel()];
        return Ok(Cow::Owned(own.repeat(numel(shape) / t.numel())));
    }
    Ok(Cow::Owned(
        t.layout().broadcast_to(shape).offsets().map(|o| data[o]).collect(),
    ))
}

/// A new dense tensor from row-major `data`.
pub(crate) fn tensor_from<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
    Tensor::from_storage(T::wrap(data), shape)
}

/// Fails unless `t` holds f32 or f64 (the types ops compute in).
pub(crate) fn expect_float(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype().is_compute_float() {
        Ok(())
    } else {
        Err(crate::Error::DType {
            op,
            expected: "f32 or f64",
            found: t.dtype(),
        })
    }
}

/// Fails unless `t` holds a dtype that the op's fused kernels take: f32 or f64 on the CPU; f32, f16
/// or bf16 on CUDA (stored so, computed in f32).
pub(crate) fn expect_kernel_float(op: &'static str, t: &Tensor) -> Result<()> {
    match (on_cuda(t), t.dtype()) {
        (false, _) => expect_float(op, t),
        (true, DType::F32 | DType::F16 | DType::BF16) => Ok(()),
        (true, found) => Err(crate::Error::DType {
            op,
            expected: "f32, f16 or bf16 (on CUDA)",
            found,
        }),
    }
}

/// Whether `t` lives on a CUDA device (its op then runs the CUDA path).
pub(crate) fn on_cuda(t: &Tensor) -> bool {
    matches!(t.device(), crate::Device::Cuda(_))
}

/// Fails unless both tensors are on one device.
pub(crate) fn expect_same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device() != b.device() {
        return Err(crate::Error::DeviceMismatch {
            op,
            lhs: a.device(),
            rhs: b.device(),
        });
    }
    Ok(())
}

/// Fails unless both tensors have the same dtype and device.
pub(crate) fn expect_same_kind(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(crate::Error::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        });
    }
    expect_same_device(op, a, b)
}
