//! Convolution of CUDA tensors: seg-kernels' implicit-GEMM launchers (`cuda/conv.cu`) on dense f32
//! buffers, with the geometry and layouts of the CPU path (`seg_kernels::cpu::conv`).

use seg_kernels::cpu::conv::ConvGeometry;
use seg_kernels::cuda as k;

use super::{dense, on_gpu, tensor};
use crate::{DType, Error, Result, Tensor};

/// Fails unless `t` is f32: the CUDA convolution computes in f32 (f64 stays on the CPU).
fn expect_f32(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::Unsupported { op, device: t.device() });
    }
    Ok(())
}

/// `conv(x, w) + bias`, shaped `shape`.
pub(crate) fn conv_forward(
    g: &ConvGeometry,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    shape: &[usize],
) -> Result<Tensor> {
    expect_f32("conv (f64)", x)?;
    let (x, w, bias) = (dense(x)?, dense(w)?, bias.map(dense).transpose()?);
    let (gpu, xd) = on_gpu::<f32>(&x)?;
    let (_, wd) = on_gpu::<f32>(&w)?;
    let bd = bias.as_ref().map(|b| on_gpu::<f32>(b).map(|(_, d)| d)).transpose()?;
    let mut y = gpu.alloc::<f32>(g.y_len())?;
    k::conv::conv_forward(
        gpu,
        g,
        &xd.slice(..g.x_len()),
        &wd.slice(..g.w_len()),
        bd.map(|b| b.slice(..g.out_channels)).as_ref(),
        &mut y.slice_mut(..),
    )?;
    Ok(tensor(gpu, y, shape))
}

/// The gradient in the input, shaped like `x_shape`.
pub(crate) fn conv_backward_data(g: &ConvGeometry, dy: &Tensor, w: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    expect_f32("conv backward (f64)", dy)?;
    let (dy, w) = (dense(dy)?, dense(w)?);
    let (gpu, dyd) = on_gpu::<f32>(&dy)?;
    let (_, wd) = on_gpu::<f32>(&w)?;
    let mut dx = gpu.alloc::<f32>(g.x_len())?;
    k::conv::conv_backward_data(
        gpu,
        g,
        &dyd.slice(..g.y_len()),
        &wd.slice(..g.w_len()),
        &mut dx.slice_mut(..),
    )?;
    Ok(tensor(gpu, dx, x_shape))
}

/// The gradient in the weight, shaped like `w_shape`.
pub(crate) fn conv_backward_weight(g: &ConvGeometry, x: &Tensor, dy: &Tensor, w_shape: &[usize]) -> Result<Tensor> {
    expect_f32("conv backward (f64)", dy)?;
    let (x, dy) = (dense(x)?, dense(dy)?);
    let (gpu, xd) = on_gpu::<f32>(&x)?;
    let (_, dyd) = on_gpu::<f32>(&dy)?;
    let mut dw = gpu.alloc::<f32>(g.w_len())?;
    k::conv::conv_backward_weight(
        gpu,
        g,
        &xd.slice(..g.x_len()),
        &dyd.slice(..g.y_len()),
        &mut dw.slice_mut(..),
    )?;
    Ok(tensor(gpu, dw, w_shape))
}
