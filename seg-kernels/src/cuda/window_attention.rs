//! Fused window attention on CUDA (`cuda/window_attention.cu`), forward and backward, with the
//! semantics and layouts of [`crate::cpu::window_attention`]: `qkv` `(windows, N, 3, heads, d)`, the
//! gathered bias `(heads, N, N)`, the optional mask `(nW, N, N)`, the output `(windows, N, heads, d)` in
//! the storage type `T` (f32, f16, bf16), the logsumexp `(windows, heads, N)` in f32. FlashAttention-2's
//! structure (see the kernel source); the bias and mask gradients are f32, accumulated with atomics.

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg};

use super::launch::{
    arg_or_null, check_grid, check_len, grid_stride, launch_args, to_i32, typed_function, StorageFloat,
};
use super::{CudaError, Gpu, WINDOW_ATTENTION};
use crate::cpu::window_attention::WindowAttnShape;

/// Threads per block (`ATTN_THREADS`).
const THREADS: u32 = 128;
/// Shared memory a block may use without opting in.
const SHARED_LIMIT: usize = 48 * 1024;

/// The inputs on the device.
#[derive(Debug)]
pub struct CudaWindowAttnInputs<'a, T> {
    pub qkv: CudaView<'a, T>,
    pub bias: CudaView<'a, T>,
    pub mask: Option<CudaView<'a, T>>,
}

/// Gradients of the backward: `qkv` in the input's layout, `bias` `(heads, N, N)`, `mask` `(nW, N, N)`
/// (when asked for and a mask was given).
#[derive(Debug)]
pub struct CudaWindowAttnGrads<T> {
    pub qkv: CudaSlice<T>,
    pub bias: CudaSlice<f32>,
    pub mask: Option<CudaSlice<f32>>,
}

/// `AttnParams` of the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    windows: i32,
    heads: i32,
    tokens: i32,
    dim: i32,
    mask_windows: i32,
    scale: f32,
    tile: i32,
}

// SAFETY: a plain #[repr(C)] struct of i32 and f32, laid out as `AttnParams` in window_attention.cu.
unsafe impl DeviceRepr for Params {}

/// What a kernel keeps in shared memory: `rows` tiles of `tile x (d + 1)`, `scores` of
/// `tile x (tile + 1)`, `vectors` of `tile` (all f32).
struct SharedUse {
    rows: usize,
    scores: usize,
    vectors: usize,
}

const FORWARD: SharedUse = SharedUse {
    rows: 4,
    scores: 1,
    vectors: 3,
};
const BACKWARD_DQ: SharedUse = SharedUse {
    rows: 5,
    scores: 1,
    vectors: 2,
};
const BACKWARD_DKV: SharedUse = SharedUse {
    rows: 6,
    scores: 2,
    vectors: 2,
};

impl SharedUse {
    fn bytes(&self, tile: usize, d: usize) -> usize {
        4 * (self.rows * tile * (d + 1) + self.scores * tile * (tile + 1) + self.vectors * tile)
    }
}

/// The sizes of a window attention, checked, and its launches.
struct Plan {
    s: WindowAttnShape,
    masked: bool,
}

impl Plan {
    /// Checks the shape and the inputs' lengths (`mask` when there is one).
    fn new(op: &str, s: &WindowAttnShape, qkv: usize, bias: usize, mask: Option<usize>) -> Result<Self, CudaError> {
        let masked = mask.is_some();
        s.validate(masked).map_err(|m| CudaError::argument(op, m))?;
        let (n, d) = (s.tokens, s.head_dim);
        check_len(op, "qkv", qkv, s.windows * n * 3 * s.heads * d)?;
        check_len(op, "bias", bias, s.heads * n * n)?;
        if let Some(m) = mask {
            check_len(op, "mask", m, s.mask_windows * n * n)?;
        }
        to_i32(op, "heads x tokens x tokens", s.heads * n * n)?;
        let plan = Plan { s: *s, masked };
        for use_ in [FORWARD, BACKWARD_DQ, BACKWARD_DKV] {
            plan.tile(op, &use_)?;
        }
        Ok(plan)
    }

    fn qkv_len(&self) -> usize {
        self.s.windows * self.s.tokens * 3 * self.s.heads * self.s.head_dim
    }
    fn out_len(&self) -> usize {
        self.s.windows * self.s.tokens * self.s.heads * self.s.head_dim
    }
    fn lse_len(&self) -> usize {
        self.s.windows * self.s.heads * self.s.tokens
    }

    /// The largest tile (64, 32, 16 or 8 rows, no larger than the window needs) whose shared memory fits.
    fn tile(&self, op: &str, use_: &SharedUse) -> Result<usize, CudaError> {
        let cap = self.s.tokens.next_power_of_two().max(8);
        [64, 32, 16, 8]
            .into_iter()
            .find(|&t| t <= cap && use_.bytes(t, self.s.head_dim) <= SHARED_LIMIT)
            .ok_or_else(|| {
                CudaError::argument(
                    op,
                    format!(
                        "head_dim {} needs more than {SHARED_LIMIT} bytes of shared memory",
                        self.s.head_dim
                    ),
                )
            })
    }

    /// Parameters and grid of a kernel with shared memory `use_`: a block per (window, row tile, head).
    fn launch_of(&self, op: &str, use_: &SharedUse) -> Result<(Params, LaunchConfig), CudaError> {
        let s = &self.s;
        let tile = self.tile(op, use_)?;
        let params = Params {
            windows: to_i32(op, "windows", s.windows)?,
            heads: to_i32(op, "heads", s.heads)?,
            tokens: to_i32(op, "tokens", s.tokens)?,
            dim: to_i32(op, "head_dim", s.head_dim)?,
            mask_windows: if self.masked {
                to_i32(op, "mask windows", s.mask_windows)?
            } else {
                0
            },
            scale: s.scale as f32,
            tile: tile as i32,
        };
        let cfg = LaunchConfig {
            grid_dim: (
                check_grid(
                    op,
                    "the (window, tile) pairs",
                    s.windows * s.tokens.div_ceil(tile),
                    i32::MAX as usize,
                )?,
                check_grid(op, "the heads", s.heads, 65535)?,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: use_.bytes(tile, s.head_dim) as u32,
        };
        Ok((params, cfg))
    }
}

/// The lengths of `qkv`, `bias` and the mask.
type InputLens = (usize, usize, Option<usize>);

impl<T> CudaWindowAttnInputs<'_, T> {
    fn lens(&self) -> InputLens {
        (self.qkv.len(), self.bias.len(), self.mask.as_ref().map(|m| m.len()))
    }
}

/// Checks the forward's arguments; its parameters and launch.
fn plan_forward(
    s: &WindowAttnShape,
    (qkv, bias, mask): InputLens,
    out: usize,
    lse: usize,
) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "window_attention forward (CUDA)";
    let plan = Plan::new(OP, s, qkv, bias, mask)?;
    check_len(OP, "out", out, plan.out_len())?;
    check_len(OP, "lse", lse, plan.lse_len())?;
    plan.launch_of(OP, &FORWARD)
}

/// Checks the backward's arguments; its plan and the launches of its dq and dk/dv kernels.
#[allow(clippy::type_complexity)]
fn plan_backward(
    s: &WindowAttnShape,
    (qkv, bias, mask): InputLens,
    out: usize,
    lse: usize,
    dout: usize,
) -> Result<(Plan, (Params, LaunchConfig), (Params, LaunchConfig)), CudaError> {
    const OP: &str = "window_attention backward (CUDA)";
    let plan = Plan::new(OP, s, qkv, bias, mask)?;
    check_len(OP, "out", out, plan.out_len())?;
    check_len(OP, "dout", dout, plan.out_len())?;
    check_len(OP, "lse", lse, plan.lse_len())?;
    let dq = plan.launch_of(OP, &BACKWARD_DQ)?;
    let dkv = plan.launch_of(OP, &BACKWARD_DKV)?;
    Ok((plan, dq, dkv))
}

/// The forward: `out` `(windows, N, heads, d)` and `lse` `(windows, heads, N)`, which the backward needs.
pub fn window_attention_forward<T: StorageFloat>(
    gpu: &Gpu,
    s: &WindowAttnShape,
    x: &CudaWindowAttnInputs<T>,
    out: &mut CudaViewMut<T>,
    lse: &mut CudaViewMut<f32>,
) -> Result<(), CudaError> {
    let (params, cfg) = plan_forward(s, x.lens(), out.len(), lse.len())?;
    if s.windows == 0 {
        return Ok(());
    }
    let f = typed_function::<T>(gpu, &WINDOW_ATTENTION, "window_attention_forward")?;
    let null = 0u64;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(&params).arg(&x.qkv).arg(&x.bias);
    arg_or_null(&mut args, x.mask.as_ref(), &null);
    args.arg(out).arg(lse);
    // SAFETY: (params, qkv, bias, mask or null, out, lse) as window_attention_forward_<T> takes them;
    // every size was checked against the shape.
    unsafe { launch_args("window_attention_forward", &mut args, cfg) }
}

/// The backward from the forward's `out` and `lse`: gradients of `sum(out * dout)`, the mask's only
/// when `mask_grad` and a mask was given.
pub fn window_attention_backward<T: StorageFloat>(
    gpu: &Gpu,
    s: &WindowAttnShape,
    x: &CudaWindowAttnInputs<T>,
    out: &CudaView<T>,
    lse: &CudaView<f32>,
    dout: &CudaView<T>,
    mask_grad: bool,
) -> Result<CudaWindowAttnGrads<T>, CudaError> {
    let (plan, (dq_params, dq_cfg), (dkv_params, dkv_cfg)) =
        plan_backward(s, x.lens(), out.len(), lse.len(), dout.len())?;
    let stream = gpu.stream();
    let alloc_err = |e| CudaError::call("cuMemAlloc", e);
    let mut grads = CudaWindowAttnGrads {
        qkv: stream.alloc_zeros::<T>(plan.qkv_len()).map_err(alloc_err)?,
        bias: stream
            .alloc_zeros::<f32>(s.heads * s.tokens * s.tokens)
            .map_err(alloc_err)?,
        mask: match (&x.mask, mask_grad) {
            (Some(_), true) => Some(
                stream
                    .alloc_zeros::<f32>(s.mask_windows * s.tokens * s.tokens)
                    .map_err(alloc_err)?,
            ),
            _ => None,
        },
    };
    if s.windows == 0 {
        return Ok(grads);
    }
    let mut dvec = stream.alloc_zeros::<f32>(plan.lse_len()).map_err(alloc_err)?;
    let null = 0u64;

    let f = typed_function::<T>(gpu, &WINDOW_ATTENTION, "window_attention_row_dot")?;
    let mut args = stream.launch_builder(&f);
    args.arg(&dq_params).arg(out).arg(dout).arg(&mut dvec);
    // SAFETY: (params, out, dout, dvec) as window_attention_row_dot_<T> takes them; out and dout hold
    // windows x N x heads x d values, dvec windows x heads x N.
    unsafe { launch_args("window_attention_row_dot", &mut args, grid_stride(plan.lse_len())) }?;
    drop(args);

    let f = typed_function::<T>(gpu, &WINDOW_ATTENTION, "window_attention_backward_dq")?;
    let mut args = stream.launch_builder(&f);
    args.arg(&dq_params).arg(&x.qkv).arg(&x.bias);
    arg_or_null(&mut args, x.mask.as_ref(), &null);
    args.arg(lse)
        .arg(dout)
        .arg(&dvec)
        .arg(&mut grads.qkv)
        .arg(&mut grads.bias);
    arg_or_null(&mut args, grads.mask.as_mut(), &null);
    // SAFETY: the arguments are window_attention_backward_dq_<T>'s in order, absent ones null; every
    // size was checked or allocated for the shape.
    unsafe { launch_args("window_attention_backward_dq", &mut args, dq_cfg) }?;
    drop(args);

    let f = typed_function::<T>(gpu, &WINDOW_ATTENTION, "window_attention_backward_dkv")?;
    let mut args = stream.launch_builder(&f);
    args.arg(&dkv_params).arg(&x.qkv).arg(&x.bias);
    arg_or_null(&mut args, x.mask.as_ref(), &null);
    args.arg(lse).arg(dout).arg(&dvec).arg(&mut grads.qkv);
    // SAFETY: the arguments are window_attention_backward_dkv_<T>'s in order, the mask null when
    // absent; every size was checked or allocated for the shape.
    unsafe { launch_args("window_attention_backward_dkv", &mut args, dkv_cfg) }?;
    drop(args);
    Ok(grads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> WindowAttnShape {
        WindowAttnShape {
            windows: 4,
            heads: 3,
            tokens: 343,
            head_dim: 32,
            mask_windows: 2,
            scale: 32f64.powf(-0.5),
        }
    }

    fn lens(s: &WindowAttnShape) -> InputLens {
        let n = s.tokens;
        (
            s.windows * n * 3 * s.heads * s.head_dim,
            s.heads * n * n,
            Some(s.mask_windows * n * n),
        )
    }

    fn message(err: CudaError) -> String {
        match err {
            CudaError::Argument { message, .. } => message,
            other => panic!("expected an argument error, found {other:?}"),
        }
    }

    #[test]
    fn tiles_fit_the_shared_memory() {
        let s = shape();
        let (out, lse) = (4 * 343 * 3 * 32, 4 * 3 * 343);
        let (p, cfg) = plan_forward(&s, lens(&s), out, lse).unwrap();
        assert_eq!((p.tile, p.mask_windows), (32, 2));
        assert_eq!(cfg.grid_dim, (4 * 11, 3, 1));
        let (_, (dq, _), (dkv, dkv_cfg)) = plan_backward(&s, lens(&s), out, lse, out).unwrap();
        assert_eq!((dq.tile, dkv.tile), (32, 32));
        assert_eq!(dkv_cfg.grid_dim, (4 * 11, 3, 1));
        for (use_, t) in [(FORWARD, p.tile), (BACKWARD_DQ, dq.tile), (BACKWARD_DKV, dkv.tile)] {
            assert!(use_.bytes(t as usize, 32) <= SHARED_LIMIT);
            assert!(t == 64 || use_.bytes(2 * t as usize, 32) > SHARED_LIMIT);
        }
        // A small window takes a small tile; no mask, no mask windows.
        let small = WindowAttnShape { tokens: 5, ..s };
        let (qkv, bias, _) = lens(&small);
        let (p, _) = plan_forward(&small, (qkv, bias, None), 4 * 5 * 3 * 32, 4 * 3 * 5).unwrap();
        assert_eq!((p.tile, p.mask_windows), (8, 0));
    }

    #[test]
    fn bad_arguments_are_reported_before_any_cuda_call() {
        let s = shape();
        let (qkv, bias, mask) = lens(&s);
        let (out, lse) = (4 * 343 * 3 * 32, 4 * 3 * 343);
        let fwd = |l: InputLens, out: usize, lse: usize| message(plan_forward(&s, l, out, lse).unwrap_err());
        assert!(fwd((qkv + 1, bias, mask), out, lse).contains("qkv holds"));
        assert!(fwd((qkv, bias - 1, mask), out, lse).contains("bias holds"));
        assert!(fwd((qkv, bias, Some(7)), out, lse).contains("mask holds 7"));
        assert!(fwd((qkv, bias, mask), 0, lse).contains("out holds 0"));
        assert!(fwd((qkv, bias, mask), out, 1).contains("lse holds 1"));
        let bwd = |dout: usize| message(plan_backward(&s, lens(&s), out, lse, dout).err().unwrap());
        assert!(bwd(out - 1).contains("dout holds"));
        let odd = WindowAttnShape { windows: 3, ..s };
        let (qkv, bias, mask) = lens(&odd);
        let m = message(plan_forward(&odd, (qkv, bias, mask), 0, 0).unwrap_err());
        assert!(m.contains("multiple of the mask's windows"), "{m}");
        let wide = WindowAttnShape { head_dim: 512, ..s };
        let m = message(plan_forward(&wide, lens(&wide), 4 * 343 * 3 * 512, lse).unwrap_err());
        assert!(m.contains("shared memory"), "{m}");
    }
}
