//! Mamba's selective scan on CUDA (`cuda/selective_scan.cu`), forward and backward, with the
//! semantics of [`crate::cpu::selective_scan`] (shapes of [`ScanShape`]). `u`, `delta`, `B`, `C`, `z` and
//! the outputs `y`, `du`, `ddelta`, `dz` are in the storage type `T` (f32, f16, bf16); `A`, `D`,
//! `delta_bias`, the state and the gradients shared between channels or samples (`dA`, `dB`, `dC`,
//! `dD`, `ddelta_bias`) are f32. One warp per channel, a chunked warp-shuffle scan along the sequence;
//! the backward recomputes the states (see the kernel source).

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg};

use super::launch::{arg_or_null, check_grid, check_len, launch_args, to_i32, typed_function, StorageFloat};
use super::{CudaError, Gpu, SELECTIVE_SCAN};
use crate::cpu::selective_scan::ScanShape;

/// Channels per block (warps), as `SCAN_WARPS` in the kernel.
const WARPS: usize = 4;
/// Positions per chunk (`SCAN_CHUNK`: 4 per lane).
const CHUNK: usize = 128;
/// The largest state the kernels' shared memory takes (two rows per warp in the backward).
pub const MAX_STATE: usize = 1024;

/// The inputs on the device (shapes of [`ScanShape`]).
#[derive(Debug)]
pub struct CudaScanInputs<'a, T> {
    pub u: CudaView<'a, T>,
    pub delta: CudaView<'a, T>,
    pub a: CudaView<'a, f32>,
    pub b: CudaView<'a, T>,
    pub c: CudaView<'a, T>,
    pub d: Option<CudaView<'a, f32>>,
    pub z: Option<CudaView<'a, T>>,
    pub delta_bias: Option<CudaView<'a, f32>>,
}

/// Gradients of the backward; those of absent optional inputs are `None`.
#[derive(Debug)]
pub struct CudaScanGrads<T> {
    pub u: CudaSlice<T>,
    pub delta: CudaSlice<T>,
    pub a: CudaSlice<f32>,
    pub b: CudaSlice<f32>,
    pub c: CudaSlice<f32>,
    pub d: Option<CudaSlice<f32>>,
    pub z: Option<CudaSlice<T>>,
    pub delta_bias: Option<CudaSlice<f32>>,
}

/// `ScanParams` of the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    batch: i32,
    dim: i32,
    len: i32,
    state: i32,
    groups: i32,
    softplus: i32,
}

// SAFETY: a plain #[repr(C)] struct of i32, laid out as `ScanParams` in selective_scan.cu.
unsafe impl DeviceRepr for Params {}

/// The lengths of the inputs: what the checks look at.
#[derive(Clone, Copy, Debug)]
struct InputLens {
    u: usize,
    delta: usize,
    a: usize,
    b: usize,
    c: usize,
    d: Option<usize>,
    z: Option<usize>,
    delta_bias: Option<usize>,
}

impl<T: StorageFloat> CudaScanInputs<'_, T> {
    /// Pushes the inputs in the kernels' order `(u, delta, A, B, C, D, z, delta_bias)`, absent ones as
    /// `null`.
    fn push<'a>(&'a self, args: &mut LaunchArgs<'a>, null: &'a u64) {
        args.arg(&self.u)
            .arg(&self.delta)
            .arg(&self.a)
            .arg(&self.b)
            .arg(&self.c);
        arg_or_null(args, self.d.as_ref(), null);
        arg_or_null(args, self.z.as_ref(), null);
        arg_or_null(args, self.delta_bias.as_ref(), null);
    }

    fn lens(&self) -> InputLens {
        InputLens {
            u: self.u.len(),
            delta: self.delta.len(),
            a: self.a.len(),
            b: self.b.len(),
            c: self.c.len(),
            d: self.d.as_ref().map(|v| v.len()),
            z: self.z.as_ref().map(|v| v.len()),
            delta_bias: self.delta_bias.as_ref().map(|v| v.len()),
        }
    }
}

/// Checks the shape and every input's size for `op`; returns the kernel parameters and launch grid.
fn check(op: &str, s: &ScanShape, x: &InputLens) -> Result<(Params, LaunchConfig), CudaError> {
    s.validate().map_err(|m| CudaError::argument(op, m))?;
    if s.state == 0 || s.state > MAX_STATE {
        return Err(CudaError::argument(
            op,
            format!("the state size must be in 1..={MAX_STATE}, found {}", s.state),
        ));
    }
    let bdl = s.batch * s.dim * s.len;
    let gnl = s.batch * s.groups * s.state * s.len;
    check_len(op, "u", x.u, bdl)?;
    check_len(op, "delta", x.delta, bdl)?;
    check_len(op, "A", x.a, s.dim * s.state)?;
    check_len(op, "B", x.b, gnl)?;
    check_len(op, "C", x.c, gnl)?;
    if let Some(d) = x.d {
        check_len(op, "D", d, s.dim)?;
    }
    if let Some(z) = x.z {
        check_len(op, "z", z, bdl)?;
    }
    if let Some(v) = x.delta_bias {
        check_len(op, "delta_bias", v, s.dim)?;
    }
    to_i32(op, "state x len", s.state * s.len.div_ceil(CHUNK) * CHUNK)?;
    let p = Params {
        batch: to_i32(op, "batch", s.batch)?,
        dim: to_i32(op, "dim", s.dim)?,
        len: to_i32(op, "len", s.len)?,
        state: to_i32(op, "state", s.state)?,
        groups: to_i32(op, "groups", s.groups)?,
        softplus: s.delta_softplus as i32,
    };
    let cfg = LaunchConfig {
        grid_dim: (
            check_grid(op, "the channel groups", s.dim.div_ceil(WARPS), i32::MAX as usize)?,
            check_grid(op, "the batch", s.batch, 65535)?,
            1,
        ),
        block_dim: ((WARPS * 32) as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    Ok((p, cfg))
}

/// Checks the forward's arguments; its parameters and grid (with its shared memory).
fn plan_forward(s: &ScanShape, x: &InputLens, y: usize, last: usize) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "selective_scan forward (CUDA)";
    let (p, cfg) = check(OP, s, x)?;
    check_len(OP, "y", y, s.batch * s.dim * s.len)?;
    check_len(OP, "last_state", last, s.batch * s.dim * s.state)?;
    let shared_mem_bytes = (WARPS * s.state * 4) as u32;
    Ok((
        p,
        LaunchConfig {
            shared_mem_bytes,
            ..cfg
        },
    ))
}

/// Checks the backward's arguments; its parameters and grid (with its shared memory).
fn plan_backward(
    s: &ScanShape,
    x: &InputLens,
    gy: usize,
    g_last: Option<usize>,
) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "selective_scan backward (CUDA)";
    let (p, cfg) = check(OP, s, x)?;
    check_len(OP, "gy", gy, s.batch * s.dim * s.len)?;
    if let Some(g) = g_last {
        check_len(OP, "g_last", g, s.batch * s.dim * s.state)?;
    }
    let shared_mem_bytes = (2 * WARPS * s.state * 4) as u32;
    Ok((
        p,
        LaunchConfig {
            shared_mem_bytes,
            ..cfg
        },
    ))
}

/// The forward: `y` `(batch, dim, len)` and `last_state` `(batch, dim, state)` (both overwritten).
pub fn scan_forward<T: StorageFloat>(
    gpu: &Gpu,
    s: &ScanShape,
    x: &CudaScanInputs<T>,
    y: &mut CudaViewMut<T>,
    last_state: &mut CudaViewMut<f32>,
) -> Result<(), CudaError> {
    let (p, cfg) = plan_forward(s, &x.lens(), y.len(), last_state.len())?;
    if s.batch * s.dim == 0 {
        return Ok(());
    }
    let f = typed_function::<T>(gpu, &SELECTIVE_SCAN, "selective_scan_forward")?;
    let null = 0u64;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(&p);
    x.push(&mut args, &null);
    args.arg(y).arg(last_state);
    // SAFETY: the arguments are selective_scan_forward_<T>'s, in order, absent inputs null; every
    // size was checked against the shape.
    unsafe { launch_args("selective_scan_forward", &mut args, cfg) }
}

/// The backward, recomputing the states: gradients of `sum(y * gy) + sum(last_state * g_last)`.
pub fn scan_backward<T: StorageFloat>(
    gpu: &Gpu,
    s: &ScanShape,
    x: &CudaScanInputs<T>,
    gy: &CudaView<T>,
    g_last: Option<&CudaView<f32>>,
) -> Result<CudaScanGrads<T>, CudaError> {
    let (p, cfg) = plan_backward(s, &x.lens(), gy.len(), g_last.map(|g| g.len()))?;
    let bdl = s.batch * s.dim * s.len;
    let stream = gpu.stream();
    let zeros = |n: usize| {
        stream
            .alloc_zeros::<f32>(n)
            .map_err(|e| CudaError::call("cuMemAlloc", e))
    };
    let zeros_t = |n: usize| stream.alloc_zeros::<T>(n).map_err(|e| CudaError::call("cuMemAlloc", e));
    let mut g = CudaScanGrads {
        u: zeros_t(bdl)?,
        delta: zeros_t(bdl)?,
        a: zeros(s.dim * s.state)?,
        b: zeros(x.b.len())?,
        c: zeros(x.c.len())?,
        d: x.d.as_ref().map(|_| zeros(s.dim)).transpose()?,
        z: x.z.as_ref().map(|_| zeros_t(bdl)).transpose()?,
        delta_bias: x.delta_bias.as_ref().map(|_| zeros(s.dim)).transpose()?,
    };
    if s.batch * s.dim == 0 {
        return Ok(g);
    }
    let mut starts = zeros(s.batch * s.dim * s.len.div_ceil(CHUNK) * s.state)?;
    let f = typed_function::<T>(gpu, &SELECTIVE_SCAN, "selective_scan_backward")?;
    let null = 0u64;
    let mut args = stream.launch_builder(&f);
    args.arg(&p);
    x.push(&mut args, &null);
    args.arg(gy);
    arg_or_null(&mut args, g_last, &null);
    args.arg(&mut starts).arg(&mut g.u).arg(&mut g.delta);
    arg_or_null(&mut args, g.z.as_mut(), &null);
    args.arg(&mut g.a).arg(&mut g.b).arg(&mut g.c);
    arg_or_null(&mut args, g.d.as_mut(), &null);
    arg_or_null(&mut args, g.delta_bias.as_mut(), &null);
    // SAFETY: the arguments are selective_scan_backward_<T>'s, in order, absent ones null; every
    // input size was checked against the shape and every output allocated for it.
    unsafe { launch_args("selective_scan_backward", &mut args, cfg) }?;
    drop(args);
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ScanShape {
        ScanShape {
            batch: 2,
            dim: 6,
            len: 37,
            state: 5,
            groups: 3,
            delta_softplus: true,
        }
    }

    fn lens(s: &ScanShape) -> InputLens {
        let bdl = s.batch * s.dim * s.len;
        let gnl = s.batch * s.groups * s.state * s.len;
        InputLens {
            u: bdl,
            delta: bdl,
            a: s.dim * s.state,
            b: gnl,
            c: gnl,
            d: Some(s.dim),
            z: Some(bdl),
            delta_bias: None,
        }
    }

    fn message(err: CudaError) -> String {
        match err {
            CudaError::Argument { message, .. } => message,
            other => panic!("expected an argument error, found {other:?}"),
        }
    }

    #[test]
    fn good_arguments_plan_a_grid() {
        let s = shape();
        let (p, cfg) = plan_forward(&s, &lens(&s), 2 * 6 * 37, 2 * 6 * 5).unwrap();
        assert_eq!((p.len, p.groups, p.softplus), (37, 3, 1));
        assert_eq!((cfg.grid_dim, cfg.shared_mem_bytes), ((2, 2, 1), 4 * 5 * 4));
        let (_, cfg) = plan_backward(&s, &lens(&s), 2 * 6 * 37, Some(2 * 6 * 5)).unwrap();
        assert_eq!(cfg.shared_mem_bytes, 2 * 4 * 5 * 4);
    }

    #[test]
    fn bad_arguments_are_reported_before_any_cuda_call() {
        let s = shape();
        let (y, last) = (2 * 6 * 37, 2 * 6 * 5);
        let bad = |f: fn(&mut InputLens)| {
            let mut x = lens(&s);
            f(&mut x);
            message(plan_forward(&s, &x, y, last).unwrap_err())
        };
        assert!(bad(|x| x.u -= 1).contains("u holds"));
        assert!(bad(|x| x.delta += 1).contains("delta holds"));
        assert!(bad(|x| x.a = 5).contains("A holds 5 values, expected 30"));
        assert!(bad(|x| x.b = 0).contains("B holds"));
        assert!(bad(|x| x.c = 1).contains("C holds"));
        assert!(bad(|x| x.d = Some(5)).contains("D holds"));
        assert!(bad(|x| x.z = Some(3)).contains("z holds"));
        assert!(bad(|x| x.delta_bias = Some(2)).contains("delta_bias holds"));
        assert!(message(plan_forward(&s, &lens(&s), y + 1, last).unwrap_err()).contains("y holds"));
        assert!(message(plan_forward(&s, &lens(&s), y, 0).unwrap_err()).contains("last_state holds 0"));
        assert!(message(plan_backward(&s, &lens(&s), 1, None).unwrap_err()).contains("gy holds 1"));
        assert!(message(plan_backward(&s, &lens(&s), y, Some(1)).unwrap_err()).contains("g_last holds 1"));
        let grouped = ScanShape { groups: 4, ..s };
        assert!(message(plan_forward(&grouped, &lens(&grouped), y, last).unwrap_err()).contains("groups"));
        let big = ScanShape {
            state: MAX_STATE + 1,
            ..s
        };
        assert!(message(plan_forward(&big, &lens(&big), y, 0).unwrap_err()).contains("state size"));
    }
}
