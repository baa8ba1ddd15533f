//! Launchers of `cuda/pool.cu`: max, average and adaptive average pooling, forward and backward, on
//! dense `(planes, depth, height, width)` buffers with the geometries of `crate::cpu::pool` (and its
//! semantics, which the kernels' doc states). Indices are i64 throughout (no 32-bit limit).

use cudarc::driver::{CudaSlice, CudaView, DeviceRepr};

use super::launch::{check_len, launch};
use super::sources::POOL;
use super::{CudaError, CudaFloat, Gpu};
use crate::cpu::pool::{AdaptiveGeometry, AvgDivisor, PoolGeometry};

/// `PoolParams` of `pool.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    planes: i64,
    input: [i64; 3],
    output: [i64; 3],
    kernel: [i64; 3],
    stride: [i64; 3],
    padding: [i64; 3],
    dilation: [i64; 3],
    /// `> 0`: the override; 0: `count_include_pad`; -1: the clipped window's size.
    divisor: i64,
    adaptive: i64,
}

// SAFETY: a plain #[repr(C)] struct of i64, laid out as `PoolParams` in pool.cu.
unsafe impl DeviceRepr for Params {}

fn axes(v: [usize; 3]) -> [i64; 3] {
    v.map(|n| n as i64)
}

/// The kernels' parameters of a window pooling (checked as the CPU op checks it).
fn window_params(op: &str, g: &PoolGeometry, divisor: AvgDivisor) -> Result<Params, CudaError> {
    g.validate().map_err(|m| CudaError::argument(op, m))?;
    Ok(Params {
        planes: g.planes as i64,
        input: axes(g.input),
        output: axes(g.output()),
        kernel: axes(g.kernel),
        stride: axes(g.stride),
        padding: axes(g.padding),
        dilation: axes(g.dilation),
        divisor: match divisor {
            AvgDivisor::Override(d) => d as i64,
            AvgDivisor::IncludePad => 0,
            AvgDivisor::ExcludePad => -1,
        },
        adaptive: 0,
    })
}

/// The kernels' parameters of an adaptive pooling: windows from the sizes, divisor the window's size.
fn adaptive_params(op: &str, g: &AdaptiveGeometry) -> Result<Params, CudaError> {
    g.validate().map_err(|m| CudaError::argument(op, m))?;
    Ok(Params {
        planes: g.planes as i64,
        input: axes(g.input),
        output: axes(g.output),
        kernel: [1; 3],
        stride: [1; 3],
        padding: [0; 3],
        dilation: [1; 3],
        divisor: -1,
        adaptive: 1,
    })
}

/// `(y, argmax)` of a max pooling of `x` (`g.x_len()` values): `max_pool_forward_<t>`.
pub fn max_pool_forward<T: CudaFloat>(
    gpu: &Gpu,
    g: &PoolGeometry,
    x: &CudaView<T>,
) -> Result<(CudaSlice<T>, CudaSlice<i64>), CudaError> {
    const OP: &str = "max_pool";
    let p = window_params(OP, g, AvgDivisor::IncludePad)?;
    check_len(OP, "x", x.len(), g.x_len())?;
    let (mut y, mut argmax) = (gpu.alloc::<T>(g.y_len())?, gpu.alloc::<i64>(g.y_len())?);
    if g.y_len() > 0 {
        launch!(gpu, POOL, format!("max_pool_forward_{}", T::NAME), Gpu::grid_1d(g.y_len());
            &p, x, &mut y, &mut argmax)?;
    }
    Ok((y, argmax))
}

/// `dx` of a max pooling: `dy` gathered from the outputs whose `argmax` is each input position:
/// `max_pool_backward_<t>`.
pub fn max_pool_backward<T: CudaFloat>(
    gpu: &Gpu,
    g: &PoolGeometry,
    dy: &CudaView<T>,
    argmax: &CudaView<i64>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "max_pool backward";
    let p = window_params(OP, g, AvgDivisor::IncludePad)?;
    check_len(OP, "dy", dy.len(), g.y_len())?;
    check_len(OP, "argmax", argmax.len(), g.y_len())?;
    let mut dx = gpu.alloc::<T>(g.x_len())?;
    if g.x_len() > 0 {
        launch!(gpu, POOL, format!("max_pool_backward_{}", T::NAME), Gpu::grid_1d(g.x_len());
            &p, dy, argmax, &mut dx)?;
    }
    Ok(dx)
}

/// The forward `avg_pool_forward_<t>` under `p` from `x_len` inputs to `y_len` outputs.
fn average_forward<T: CudaFloat>(
    gpu: &Gpu,
    op: &str,
    p: &Params,
    (x_len, y_len): (usize, usize),
    x: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    check_len(op, "x", x.len(), x_len)?;
    let mut y = gpu.alloc::<T>(y_len)?;
    if y_len > 0 {
        launch!(gpu, POOL, format!("avg_pool_forward_{}", T::NAME), Gpu::grid_1d(y_len); p, x, &mut y)?;
    }
    Ok(y)
}

/// The backward `avg_pool_backward_<t>` under `p` from `y_len` output gradients to `x_len` inputs.
fn average_backward<T: CudaFloat>(
    gpu: &Gpu,
    op: &str,
    p: &Params,
    (x_len, y_len): (usize, usize),
    dy: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    check_len(op, "dy", dy.len(), y_len)?;
    let mut dx = gpu.alloc::<T>(x_len)?;
    if x_len > 0 {
        launch!(gpu, POOL, format!("avg_pool_backward_{}", T::NAME), Gpu::grid_1d(x_len); p, dy, &mut dx)?;
    }
    Ok(dx)
}

/// `y` of an average pooling (dilation 1): `avg_pool_forward_<t>`.
pub fn avg_pool_forward<T: CudaFloat>(
    gpu: &Gpu,
    g: &PoolGeometry,
    divisor: AvgDivisor,
    x: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "avg_pool";
    let p = window_params(OP, g, divisor)?;
    average_forward(gpu, OP, &p, (g.x_len(), g.y_len()), x)
}

/// `dx` of an average pooling: `avg_pool_backward_<t>`.
pub fn avg_pool_backward<T: CudaFloat>(
    gpu: &Gpu,
    g: &PoolGeometry,
    divisor: AvgDivisor,
    dy: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "avg_pool backward";
    let p = window_params(OP, g, divisor)?;
    average_backward(gpu, OP, &p, (g.x_len(), g.y_len()), dy)
}

/// `y` of an adaptive average pooling: `avg_pool_forward_<t>` with adaptive windows.
pub fn adaptive_avg_pool_forward<T: CudaFloat>(
    gpu: &Gpu,
    g: &AdaptiveGeometry,
    x: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "adaptive_avg_pool";
    let p = adaptive_params(OP, g)?;
    average_forward(gpu, OP, &p, (g.x_len(), g.y_len()), x)
}

/// `dx` of an adaptive average pooling: `avg_pool_backward_<t>` with adaptive windows.
pub fn adaptive_avg_pool_backward<T: CudaFloat>(
    gpu: &Gpu,
    g: &AdaptiveGeometry,
    dy: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "adaptive_avg_pool backward";
    let p = adaptive_params(OP, g)?;
    average_backward(gpu, OP, &p, (g.x_len(), g.y_len()), dy)
}
