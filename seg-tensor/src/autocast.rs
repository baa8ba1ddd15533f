//! Automatic mixed precision: PyTorch's `torch.autocast(device_type, dtype)` as a scope.
//!
//! ```
//! use seg_tensor::{autocast, DType, Tensor};
//!
//! # fn main() -> seg_tensor::Result<()> {
//! let x = Tensor::randn(&[4, 3], 0, DType::F32)?;
//! let w = Tensor::randn(&[2, 3], 1, DType::F32)?.requires_grad();
//! let loss = autocast(DType::BF16, || {
//!     let y = x.linear(&w, None)?; // bf16: a listed op runs in the autocast dtype
//!     assert_eq!(y.dtype(), DType::BF16);
//!     y.sum_all() // f32: sums promote half inputs to f32
//! })?;
//! assert_eq!(loss.dtype(), DType::F32);
//! // The master weight gets its gradient in f32, through the cast that autocast inserted.
//! assert_eq!(loss.backward()?.get(&w).unwrap().dtype(), DType::F32);
//! # Ok(())
//! # }
//! ```
//!
//! While [`autocast`] runs its closure, every op follows one of PyTorch's autocast policies
//! ("autocast op reference", CUDA lists), by a hook at the op's entry:
//!
//! - **lower precision** (`Policy::Lower`): `conv1d/2d/3d`, `conv_transpose1d/2d/3d`, `matmul`, `linear`
//!   (PyTorch's `mm`, `bmm`, `addmm`, `linear` family) and the fused `window_attention` (PyTorch's
//!   `scaled_dot_product_attention`): every f32 input is cast to the autocast dtype through the
//!   differentiable [`Tensor::to_dtype`], so the output is in that dtype and the gradients reach f32
//!   inputs (the master weights) in f32.
//! - **f32** (`Policy::Fp32`): `layer_norm`, `group_norm` (and here also `instance_norm` and
//!   `batch_norm`, which PyTorch runs in the input type with f32 statistics), `softmax`, `log_softmax`,
//!   `sum`, `mean`, `var`, `logsumexp`, `exp`, `log`, `softplus`, `pow`/`powf`: half inputs are cast to
//!   f32, the output is f32. The losses are built from these ops, so they run in f32 as well.
//! - **promote** (`Policy::Promote`, on or off autocast, as PyTorch's type promotion): the binary
//!   elementwise ops (`add`, `sub`, `mul`, `div`, `maximum`, `minimum`), comparisons, `where_`, `cat`
//!   and `stack`, `scatter_add` and `selective_scan` run in the widest float type of their inputs
//!   (bf16 with f32 is f32, f16 with bf16 is f32).
//! - everything else (`Policy::Same`: the other elementwise functions such as `relu`, `gelu`, `silu`,
//!   pooling, interpolation, `pad`/`roll`/`flip`, `index_select`, `max_dim`/`argmax`, views) runs in
//!   its input's type.
//!
//! f64 inputs are never cast (as in PyTorch), so gradient checks in f64 are unaffected.
//!
//! The kernels compute in f32 (f64): an op whose inputs are f16/bf16 converts them to f32, computes,
//! and rounds the output to the half type once, so its value is "f32 compute on the half-rounded
//! inputs, rounded output" on every device. The fused CUDA kernels of `window_attention` and
//! `selective_scan` take f16/bf16 storage themselves (accumulating in f32: the same value up to
//! summation order). The backward pass runs with autocast off, in the dtypes the forward recorded.
//!
//! Differences from PyTorch: one setting for every device (PyTorch keeps one per device type); and the
//! half-precision backward of a listed op is an f32 backward whose gradients are rounded to the half
//! type.

use std::cell::Cell;

use crate::{DType, Error, Result, Tensor};

thread_local! {
    static AUTOCAST: Cell<Option<DType>> = const { Cell::new(None) };
}

/// The dtype that listed ops run in on this thread, when autocast is on.
pub fn autocast_dtype() -> Option<DType> {
    AUTOCAST.with(Cell::get)
}

/// Runs `f` with autocast on in `dtype` (f16 or bf16; PyTorch's `with torch.autocast(..., dtype)`),
/// restoring the previous setting after (scopes nest; the innermost wins).
pub fn autocast<R>(dtype: DType, f: impl FnOnce() -> Result<R>) -> Result<R> {
    if !matches!(dtype, DType::F16 | DType::BF16) {
        return Err(Error::DType {
            op: "autocast",
            expected: "f16 or bf16",
            found: dtype,
        });
    }
    with_autocast(Some(dtype), f)
}

/// Runs `f` with autocast off (PyTorch's `torch.autocast(..., enabled=False)` inside an autocast
/// region): ops run in their inputs' types.
pub fn no_autocast<R>(f: impl FnOnce() -> R) -> R {
    with_autocast(None, f)
}

/// Runs `f` with the autocast setting `dtype` (`None`: off), restoring the previous one after.
pub(crate) fn with_autocast<R>(dtype: Option<DType>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<DType>);
    impl Drop for Restore {
        fn drop(&mut self) {
            AUTOCAST.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(AUTOCAST.with(|a| a.replace(dtype)));
    f()
}

/// How an op treats its float inputs' precision (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    Lower,
    Fp32,
    Promote,
    Same,
}

fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// PyTorch's promotion of two float types: f64 over f32 over the half types, f16 with bf16 to f32.
fn promote_types(a: DType, b: DType) -> DType {
    match (a, b) {
        _ if a == b => a,
        (DType::F64, _) | (_, DType::F64) => DType::F64,
        _ => DType::F32,
    }
}

/// The dtype `policy` wants the float inputs in, if it wants a change.
fn target(policy: Policy, inputs: &[&Tensor]) -> Option<DType> {
    match policy {
        Policy::Lower => autocast_dtype(),
        Policy::Fp32 => autocast_dtype().map(|_| DType::F32),
        Policy::Promote => {
            let mut floats = inputs.iter().map(|t| t.dtype()).filter(|d| d.is_float());
            let first = floats.next()?;
            let widest = floats.fold(first, promote_types);
            inputs
                .iter()
                .any(|t| t.dtype().is_float() && t.dtype() != widest)
                .then_some(widest)
        }
        Policy::Same => None,
    }
}

/// The inputs cast to what `policy` wants (f64 inputs are left alone unless promoted to), or `None`
/// when nothing changes: the entry of ops that compute on half values natively (`cat`).
pub(crate) fn cast_inputs(policy: Policy, inputs: &[&Tensor]) -> Result<Option<Vec<Tensor>>> {
    let Some(dtype) = target(policy, inputs) else {
        return Ok(None);
    };
    let eligible = |t: &Tensor| t.dtype().is_float() && t.dtype() != dtype && (t.dtype() != DType::F64);
    if !inputs.iter().any(|t| eligible(t)) {
        return Ok(None);
    }
    inputs
        .iter()
        .map(|t| {
            if eligible(t) {
                t.to_dtype(dtype)
            } else {
                Ok((*t).clone())
            }
        })
        .collect::<Result<_>>()
        .map(Some)
}

/// The outputs of an op: rounded to the half type of its inputs when those were computed in f32.
pub(crate) trait Outputs: Sized {
    fn round_to(self, half: DType) -> Result<Self>;
}

impl Outputs for Tensor {
    /// `self` rounded to `half` when it is an f32 result; other outputs (indices, masks) as they are.
    fn round_to(self, half: DType) -> Result<Self> {
        if self.dtype() == DType::F32 {
            self.to_dtype(half)
        } else {
            Ok(self)
        }
    }
}

impl Outputs for (Tensor, Tensor) {
    fn round_to(self, half: DType) -> Result<Self> {
        Ok((self.0.round_to(half)?, self.1.round_to(half)?))
    }
}

/// The entry hook of an op that computes in f32/f64: `None` when it runs as called (f32 and f64
/// inputs, nothing to cast: the fast path is untouched); else its result from `op`, run with autocast
/// off on the inputs cast per `policy` and, where inputs are f16/bf16, on their f32 values with
/// every float output rounded back to the half type. All casts are differentiable.
pub(crate) fn dispatch<O: Outputs>(
    policy: Policy,
    inputs: &[&Tensor],
    op: impl FnOnce(&[Tensor]) -> Result<O>,
) -> Result<Option<O>> {
    dispatch_on(policy, inputs, false, op)
}

/// [`dispatch`] for an op that computes on f16/bf16 storage itself where `native_half` (the fused
/// CUDA kernels, which accumulate in f32): half inputs reach it as they are.
pub(crate) fn dispatch_on<O: Outputs>(
    policy: Policy,
    inputs: &[&Tensor],
    native_half: bool,
    op: impl FnOnce(&[Tensor]) -> Result<O>,
) -> Result<Option<O>> {
    let any_half = |ts: &mut dyn Iterator<Item = &Tensor>| ts.map(Tensor::dtype).find(|&d| is_half(d));
    let inputs: Vec<Tensor> = match cast_inputs(policy, inputs)? {
        Some(cast) => cast,
        None if !native_half && any_half(&mut inputs.iter().copied()).is_some() => {
            inputs.iter().map(|&t| t.clone()).collect()
        }
        None => return Ok(None),
    };
    match any_half(&mut inputs.iter()) {
        Some(half) if !native_half => {
            let wide: Vec<Tensor> = inputs
                .iter()
                .map(|t| {
                    if is_half(t.dtype()) {
                        t.to_dtype(DType::F32)
                    } else {
                        Ok(t.clone())
                    }
                })
                .collect::<Result<_>>()?;
            no_autocast(|| op(&wide))?.round_to(half).map(Some)
        }
        _ => no_autocast(|| op(&inputs)).map(Some),
    }
}

/// The inputs of an op with optional ones, flat for [`dispatch`]: the required, then those of
/// `optional` that are present.
pub(crate) fn flat<'a>(required: &[&'a Tensor], optional: &[Option<&'a Tensor>]) -> Vec<&'a Tensor> {
    required
        .iter()
        .copied()
        .chain(optional.iter().flatten().copied())
        .collect()
}

/// The inverse of [`flat`] for the optional part: `rest` (what follows the required inputs) spread
/// over the places where `like` has a tensor.
pub(crate) fn unflat<'a>(rest: &'a [Tensor], like: &[Option<&Tensor>]) -> Vec<Option<&'a Tensor>> {
    let mut rest = rest.iter();
    like.iter().map(|o| o.and_then(|_| rest.next())).collect()
}
