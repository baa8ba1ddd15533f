//! Elementwise ops on CUDA: unary and binary functions with their backward, `where`, comparisons.

use seg_kernels::cuda::{self as k, BinaryKernel, CompareKernel, UnaryKernel};

use super::{broadcast, on_gpu, strided, tensor};
use crate::{with_comparable, with_float, Result, Tensor};

/// `f(x)` for a unary kernel with parameters `(p, q)`.
pub(crate) fn unary(x: &Tensor, op: UnaryKernel, params: (f64, f64)) -> Result<Tensor> {
    with_float!(x.dtype(), "unary", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        Ok(tensor(gpu, k::unary(gpu, data, &strided(x.layout())?, op, params)?, x.shape()))
    })
}

/// `g * f'(x)`.
pub(crate) fn unary_backward(g: &Tensor, x: &Tensor, op: UnaryKernel, params: (f64, f64)) -> Result<Tensor> {
    with_float!(g.dtype(), "unary backward", T => {
        let (gpu, gd) = on_gpu::<T>(g)?;
        let (_, xd) = on_gpu::<T>(x)?;
        let dx = k::unary_backward(gpu, (gd, &strided(g.layout())?), (xd, &strided(x.layout())?), op, params)?;
        Ok(tensor(gpu, dx, g.shape()))
    })
}

/// `f(a, b)` broadcast to `shape`.
pub(crate) fn binary(a: &Tensor, b: &Tensor, shape: &[usize], op: BinaryKernel) -> Result<Tensor> {
    with_float!(a.dtype(), "binary", T => {
        let (gpu, ad) = on_gpu::<T>(a)?;
        let (_, bd) = on_gpu::<T>(b)?;
        let out = k::binary(gpu, (ad, &broadcast(a, shape)?), (bd, &broadcast(b, shape)?), op)?;
        Ok(tensor(gpu, out, shape))
    })
}

/// `g * df/da` (`side` 0) or `g * df/db` (`side` 1), of `g`'s shape (before summing to the operand's).
pub(crate) fn binary_backward(g: &Tensor, a: &Tensor, b: &Tensor, op: BinaryKernel, side: usize) -> Result<Tensor> {
    let shape = g.shape();
    with_float!(g.dtype(), "binary backward", T => {
        let (gpu, gd) = on_gpu::<T>(g)?;
        let (_, ad) = on_gpu::<T>(a)?;
        let (_, bd) = on_gpu::<T>(b)?;
        let (gv, av, bv) = (strided(g.layout())?, broadcast(a, shape)?, broadcast(b, shape)?);
        Ok(tensor(gpu, k::binary_backward(gpu, (gd, &gv), (ad, &av), (bd, &bv), op, side)?, shape))
    })
}

/// `on_true` where `mask` is nonzero, else `on_false`, all broadcast to `shape`.
pub(crate) fn select(mask: &Tensor, on_true: &Tensor, on_false: &Tensor, shape: &[usize]) -> Result<Tensor> {
    with_float!(on_true.dtype(), "where", T => {
        let (gpu, md) = on_gpu::<u8>(mask)?;
        let (_, ad) = on_gpu::<T>(on_true)?;
        let (_, bd) = on_gpu::<T>(on_false)?;
        let (mv, av, bv) = (broadcast(mask, shape)?, broadcast(on_true, shape)?, broadcast(on_false, shape)?);
        Ok(tensor(gpu, k::select(gpu, (md, &mv), (ad, &av), (bd, &bv))?, shape))
    })
}

/// The u8 mask of `a (cmp) b` broadcast to `shape`.
pub(crate) fn compare(a: &Tensor, b: &Tensor, shape: &[usize], cmp: CompareKernel) -> Result<Tensor> {
    with_comparable!(a.dtype(), "compare", T => {
        let (gpu, ad) = on_gpu::<T>(a)?;
        let (_, bd) = on_gpu::<T>(b)?;
        Ok(tensor(gpu, k::compare(gpu, (ad, &broadcast(a, shape)?), (bd, &broadcast(b, shape)?), cmp)?, shape))
    })
}
