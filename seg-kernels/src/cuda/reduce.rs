//! Launchers of `cuda/reduce.cu` and `cuda/softmax.cu`: row reductions, first extremes with their
//! indices, softmax and its backward. Each input view is arranged so that its last `cols` elements
//! (row-major) form one row.

use cudarc::driver::CudaSlice;

use super::launch::launch;
use super::sources::{REDUCE, SOFTMAX};
use super::{CudaElement, CudaError, CudaFloat, Gpu, Strided};

/// The row reductions, numbered as the kernels' enum.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKernel {
    /// `T(T(sum) * scale)`, the sum accumulated in f64.
    Sum,
    /// The maximum, NaN if any element is NaN.
    Max,
    /// The minimum, NaN if any element is NaN.
    Min,
    /// `m + ln sum exp(x - m)`, `m` the maximum.
    LogSumExp,
    /// `sum (x - mean)^2 * scale`.
    Var,
}

/// One value per row of the view `x_view` (`rows` rows of `cols` elements, `cols` may be 0):
/// `reduce_rows_<t>`.
pub fn reduce_rows<T: CudaFloat>(
    gpu: &Gpu,
    (x, x_view): (&CudaSlice<T>, &Strided),
    (rows, cols): (usize, usize),
    op: ReduceKernel,
    scale: f64,
) -> Result<CudaSlice<T>, CudaError> {
    let mut out = gpu.alloc::<T>(rows)?;
    if rows > 0 {
        let (r, c, op) = (rows as i64, cols as i64, op as i32);
        launch!(gpu, REDUCE, format!("reduce_rows_{}", T::NAME), Gpu::grid_rows(rows);
            x, x_view, &mut out, &r, &c, &op, &scale)?;
    }
    Ok(out)
}

/// The first maximum (`largest`) or minimum of each row and its index in the row: `arg_rows_<t>`
/// (f32, f64, i64, u8). `cols` must be at least 1.
pub fn arg_rows<T: CudaElement>(
    gpu: &Gpu,
    (x, x_view): (&CudaSlice<T>, &Strided),
    rows: usize,
    cols: usize,
    largest: bool,
) -> Result<(CudaSlice<T>, CudaSlice<i64>), CudaError> {
    if cols == 0 {
        return Err(CudaError::Unsupported("an extreme of an empty row".into()));
    }
    let mut values = gpu.alloc::<T>(rows)?;
    let mut indices = gpu.alloc::<i64>(rows)?;
    if rows > 0 {
        let (r, c, largest) = (rows as i64, cols as i64, i32::from(largest));
        launch!(gpu, REDUCE, format!("arg_rows_{}", T::NAME), Gpu::grid_rows(rows);
            x, x_view, &mut values, &mut indices, &r, &c, &largest)?;
    }
    Ok((values, indices))
}

/// Softmax (or log-softmax) of each row of the view `x_view`, written through `y_view` (a view of a
/// dense buffer of `x_view.numel()` elements): `softmax_<t>`.
pub fn softmax<T: CudaFloat>(
    gpu: &Gpu,
    (x, x_view): (&CudaSlice<T>, &Strided),
    y_view: &Strided,
    cols: usize,
    log: bool,
) -> Result<CudaSlice<T>, CudaError> {
    let n = x_view.numel();
    let mut y = gpu.alloc::<T>(n)?;
    let rows = n.checked_div(cols).unwrap_or(0);
    if rows > 0 {
        let (r, c, log) = (rows as i64, cols as i64, i32::from(log));
        launch!(gpu, SOFTMAX, format!("softmax_{}", T::NAME), Gpu::grid_rows(rows);
            x, x_view, &mut y, y_view, &r, &c, &log)?;
    }
    Ok(y)
}

/// The gradient of softmax (or log-softmax) from `g` and the output `y`, written through `dx_view`
/// (a view of a dense buffer): `softmax_backward_<t>`.
pub fn softmax_backward<T: CudaFloat>(
    gpu: &Gpu,
    (g, g_view): (&CudaSlice<T>, &Strided),
    (y, y_view): (&CudaSlice<T>, &Strided),
    dx_view: &Strided,
    cols: usize,
    log: bool,
) -> Result<CudaSlice<T>, CudaError> {
    let n = g_view.numel();
    let mut dx = gpu.alloc::<T>(n)?;
    let rows = n.checked_div(cols).unwrap_or(0);
    if rows > 0 {
        let (r, c, log) = (rows as i64, cols as i64, i32::from(log));
        launch!(gpu, SOFTMAX, format!("softmax_backward_{}", T::NAME), Gpu::grid_rows(rows);
            g, g_view, y, y_view, &mut dx, dx_view, &r, &c, &log)?;
    }
    Ok(dx)
}
