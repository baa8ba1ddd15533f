//! Launchers of `cuda/elementwise.cu`: copies between views, fills, casts, and the elementwise
//! functions of one and two tensors (with their derivatives), comparisons and `where`.

use cudarc::driver::CudaSlice;

use super::launch::launch;
use super::sources::ELEMENTWISE;
use super::{CudaElement, CudaError, CudaFloat, Gpu, Strided};

/// The elementwise functions of one tensor, numbered as the kernels' enum; `unary`'s `p`, `q` are
/// their parameters (slope; beta, threshold; min, max; exponent; scale, shift).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryKernel {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Relu,
    LeakyRelu,
    Gelu,
    GeluTanh,
    Silu,
    Sigmoid,
    Softplus,
    Tanh,
    Clamp,
    Powf,
    Affine,
}

/// The elementwise functions of two tensors, numbered as the kernels' enum.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKernel {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
}

/// The comparisons, numbered as the kernels' enum.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareKernel {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `dst[to(i)] = src[from(i)]` for every element `i` of the views (same shape): `copy_b*`.
pub fn copy<T: CudaElement>(
    gpu: &Gpu,
    src: &CudaSlice<T>,
    from: &Strided,
    dst: &mut CudaSlice<T>,
    to: &Strided,
) -> Result<(), CudaError> {
    let n = from.numel() as i64;
    if n == 0 {
        return Ok(());
    }
    launch!(gpu, ELEMENTWISE, format!("copy_b{}", T::BITS), Gpu::grid_1d(n as usize); src, from, dst, to, &n)
}

/// The view `from` of `src` as a new dense buffer.
pub fn gather<T: CudaElement>(gpu: &Gpu, src: &CudaSlice<T>, from: &Strided) -> Result<CudaSlice<T>, CudaError> {
    let mut out = gpu.alloc::<T>(from.numel())?;
    copy(gpu, src, from, &mut out, &from.dense())?;
    Ok(out)
}

/// `len` copies of `value`: `fill_b*`.
pub fn fill<T: CudaElement>(gpu: &Gpu, len: usize, value: T) -> Result<CudaSlice<T>, CudaError> {
    let mut out = gpu.alloc::<T>(len)?;
    if len > 0 {
        let (bits, n) = (value.to_bits(), len as i64);
        launch!(gpu, ELEMENTWISE, format!("fill_b{}", T::BITS), Gpu::grid_1d(len); &mut out, &bits, &n)?;
    }
    Ok(out)
}

/// The view `from` of `src` converted to `U`, dense: `cast_<a>_<b>` (`U::from_f64(x.as_f64())`).
pub fn cast<T: CudaElement, U: CudaElement>(
    gpu: &Gpu,
    src: &CudaSlice<T>,
    from: &Strided,
) -> Result<CudaSlice<U>, CudaError> {
    let n = from.numel();
    let mut out = gpu.alloc::<U>(n)?;
    if n > 0 {
        let (name, count) = (format!("cast_{}_{}", T::NAME, U::NAME), n as i64);
        launch!(gpu, ELEMENTWISE, name, Gpu::grid_1d(n); src, from, &mut out, &count)?;
    }
    Ok(out)
}

/// `f(x)` over the view `from` of `x`, dense: `unary_<t>`.
pub fn unary<T: CudaFloat>(
    gpu: &Gpu,
    x: &CudaSlice<T>,
    from: &Strided,
    op: UnaryKernel,
    (p, q): (f64, f64),
) -> Result<CudaSlice<T>, CudaError> {
    let n = from.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let (n, op, p, q) = (n as i64, op as i32, T::of(p), T::of(q));
        launch!(gpu, ELEMENTWISE, format!("unary_{}", T::NAME), Gpu::grid_1d(n as usize);
            x, from, &mut out, &n, &op, &p, &q)?;
    }
    Ok(out)
}

/// `g * f'(x)` over two views of one shape, dense: `unary_backward_<t>`.
pub fn unary_backward<T: CudaFloat>(
    gpu: &Gpu,
    (g, g_view): (&CudaSlice<T>, &Strided),
    (x, x_view): (&CudaSlice<T>, &Strided),
    op: UnaryKernel,
    (p, q): (f64, f64),
) -> Result<CudaSlice<T>, CudaError> {
    let n = g_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let (n, op, p, q) = (n as i64, op as i32, T::of(p), T::of(q));
        launch!(gpu, ELEMENTWISE, format!("unary_backward_{}", T::NAME), Gpu::grid_1d(n as usize);
            g, g_view, x, x_view, &mut out, &n, &op, &p, &q)?;
    }
    Ok(out)
}

/// `f(a, b)` over two views broadcast to one shape, dense: `binary_<t>`.
pub fn binary<T: CudaFloat>(
    gpu: &Gpu,
    (a, a_view): (&CudaSlice<T>, &Strided),
    (b, b_view): (&CudaSlice<T>, &Strided),
    op: BinaryKernel,
) -> Result<CudaSlice<T>, CudaError> {
    let n = a_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let (n, op) = (n as i64, op as i32);
        launch!(gpu, ELEMENTWISE, format!("binary_{}", T::NAME), Gpu::grid_1d(n as usize);
            a, a_view, b, b_view, &mut out, &n, &op)?;
    }
    Ok(out)
}

/// `g * df/da` (`side` 0) or `g * df/db` (`side` 1) over views of one shape, dense:
/// `binary_backward_<t>`.
pub fn binary_backward<T: CudaFloat>(
    gpu: &Gpu,
    (g, g_view): (&CudaSlice<T>, &Strided),
    (a, a_view): (&CudaSlice<T>, &Strided),
    (b, b_view): (&CudaSlice<T>, &Strided),
    op: BinaryKernel,
    side: usize,
) -> Result<CudaSlice<T>, CudaError> {
    let n = g_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let (n, op, side) = (n as i64, op as i32, side as i32);
        launch!(gpu, ELEMENTWISE, format!("binary_backward_{}", T::NAME), Gpu::grid_1d(n as usize);
            g, g_view, a, a_view, b, b_view, &mut out, &n, &op, &side)?;
    }
    Ok(out)
}

/// `a if mask != 0 else b` over three views broadcast to one shape, dense: `select_<t>`.
pub fn select<T: CudaFloat>(
    gpu: &Gpu,
    (mask, mask_view): (&CudaSlice<u8>, &Strided),
    (a, a_view): (&CudaSlice<T>, &Strided),
    (b, b_view): (&CudaSlice<T>, &Strided),
) -> Result<CudaSlice<T>, CudaError> {
    let n = mask_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let n = n as i64;
        launch!(gpu, ELEMENTWISE, format!("select_{}", T::NAME), Gpu::grid_1d(n as usize);
            mask, mask_view, a, a_view, b, b_view, &mut out, &n)?;
    }
    Ok(out)
}

/// The u8 mask of `a (cmp) b` over two views broadcast to one shape: `compare_<t>` (f32, f64, i64, u8).
pub fn compare<T: CudaElement>(
    gpu: &Gpu,
    (a, a_view): (&CudaSlice<T>, &Strided),
    (b, b_view): (&CudaSlice<T>, &Strided),
    cmp: CompareKernel,
) -> Result<CudaSlice<u8>, CudaError> {
    let n = a_view.numel();
    let mut out = gpu.alloc::<u8>(n)?;
    if n > 0 {
        let (n, cmp) = (n as i64, cmp as i32);
        launch!(gpu, ELEMENTWISE, format!("compare_{}", T::NAME), Gpu::grid_1d(n as usize);
            a, a_view, b, b_view, &mut out, &n, &cmp)?;
    }
    Ok(out)
}
