//! Launchers of `cuda/interpolate.cu`: nearest and (bi/tri)linear resampling, forward and backward, on
//! dense `(planes, depth, height, width)` buffers with the geometry of `crate::cpu::interpolate` (and
//! its source positions, exactly: the ratios are computed here as the CPU computes them).

use cudarc::driver::{CudaSlice, CudaView, DeviceRepr};

use super::launch::{check_len, launch};
use super::sources::INTERPOLATE;
use super::{CudaError, CudaFloat, Gpu};
use crate::cpu::interpolate::{plain_ratio, InterpGeometry, InterpMode};
use crate::cpu::pool::FloatElement;

/// `InterpParams` of `interpolate.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    planes: i64,
    input: [i64; 3],
    output: [i64; 3],
    ratio: [f64; 3],
    nearest: i64,
    align_corners: i64,
}

// SAFETY: a plain #[repr(C)] struct of i64 and f64, laid out as `InterpParams` in interpolate.cu.
unsafe impl DeviceRepr for Params {}

/// The kernels' parameters: per axis the CPU's ratio `r` (nearest: in f32; linear: in `T`, `(in - 1) /
/// (out - 1)` with `align_corners`, else `1 / scale` or `in / out`).
fn params<T: CudaFloat + FloatElement>(op: &str, g: &InterpGeometry) -> Result<Params, CudaError> {
    g.validate().map_err(|m| CudaError::argument(op, m))?;
    let ratio = std::array::from_fn(|a| {
        let (input, output, scale) = (g.input[a], g.output[a], g.scale[a]);
        match g.mode {
            InterpMode::Nearest => plain_ratio::<f32>(input, output, scale) as f64,
            InterpMode::Linear if g.align_corners => {
                if output > 1 {
                    (T::from_f64((input - 1) as f64) / T::from_f64((output - 1) as f64)).to_f64()
                } else {
                    0.0
                }
            }
            InterpMode::Linear => plain_ratio::<T>(input, output, scale).to_f64(),
        }
    });
    Ok(Params {
        planes: g.planes as i64,
        input: g.input.map(|n| n as i64),
        output: g.output.map(|n| n as i64),
        ratio,
        nearest: i64::from(g.mode == InterpMode::Nearest),
        align_corners: i64::from(g.align_corners),
    })
}

/// `y` of a resampling of `x` (`g.x_len()` values): `interpolate_forward_<t>`.
pub fn interpolate_forward<T: CudaFloat + FloatElement>(
    gpu: &Gpu,
    g: &InterpGeometry,
    x: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "interpolate";
    let p = params::<T>(OP, g)?;
    check_len(OP, "x", x.len(), g.x_len())?;
    let mut y = gpu.alloc::<T>(g.y_len())?;
    if g.y_len() > 0 {
        launch!(gpu, INTERPOLATE, format!("interpolate_forward_{}", T::NAME), Gpu::grid_1d(g.y_len());
            &p, x, &mut y)?;
    }
    Ok(y)
}

/// `dx` of a resampling, the adjoint applied to `dy` (atomic adds into zeros):
/// `interpolate_backward_<t>`.
pub fn interpolate_backward<T: CudaFloat + FloatElement>(
    gpu: &Gpu,
    g: &InterpGeometry,
    dy: &CudaView<T>,
) -> Result<CudaSlice<T>, CudaError> {
    const OP: &str = "interpolate backward";
    let p = params::<T>(OP, g)?;
    check_len(OP, "dy", dy.len(), g.y_len())?;
    let mut dx = gpu.zeros::<T>(g.x_len())?;
    if g.y_len() > 0 {
        launch!(gpu, INTERPOLATE, format!("interpolate_backward_{}", T::NAME), Gpu::grid_1d(g.y_len());
            &p, dy, &mut dx)?;
    }
    Ok(dx)
}
