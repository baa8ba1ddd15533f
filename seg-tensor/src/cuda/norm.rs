//! The norms on CUDA through the fused kernels of `cuda/norm.cu`, forward and backward, with the
//! formulas of the CPU kernels (`seg_kernels::cpu::norm`): per statistics group the mean and biased
//! variance, `y = (x - mean) / sqrt(var + eps) * weight + bias`; the backward recomputes `xhat` from
//! the saved moments.

use seg_kernels::cpu::norm::{NormGeometry, RowGeometry, StatsOver};
use seg_kernels::cuda::norm::{norm_apply, norm_backward, norm_moments, NormLayout, NormMoments};
use seg_kernels::cuda::CudaSlice;

use super::{dense, on_gpu, tensor};
use crate::autograd::Backward;
use crate::storage::gpu;
use crate::{with_float, BatchNormStats, DType, Device, Error, Result, Tensor};

/// The optional affine parameters of a norm and the shape they have.
struct Affine<'a> {
    weight: Option<&'a Tensor>,
    bias: Option<&'a Tensor>,
    shape: Vec<usize>,
}

struct CudaNormBackward {
    layout: NormLayout,
    x: Tensor,
    weight: Option<Tensor>,
    has_bias: bool,
    moments: NormMoments,
    eps: f64,
    constant: bool,
    affine_shape: Vec<usize>,
    wants: [bool; 3],
}

impl Backward for CudaNormBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dy = dense(grad)?;
        let (dx, dw, db) = with_float!(dy.dtype(), "norm backward", T => {
            let (gpu, x) = on_gpu::<T>(&self.x)?;
            let w = self.weight.as_ref().map(|w| Ok::<_, Error>(on_gpu::<T>(w)?.1)).transpose()?;
            let g = norm_backward(
                gpu,
                (x, on_gpu::<T>(&dy)?.1),
                &self.layout,
                &self.moments,
                self.eps,
                w,
                self.constant,
                self.wants,
            )?;
            let affine = |d: Option<CudaSlice<T>>| d.map(|d| tensor(gpu, d, &self.affine_shape));
            Ok((g.dx.map(|d| tensor(gpu, d, self.x.shape())), affine(g.dweight), affine(g.dbias)))
        })?;
        let mut grads = vec![dx];
        if self.weight.is_some() {
            grads.push(dw);
        }
        if self.has_bias {
            grads.push(db);
        }
        Ok(grads)
    }
}

/// The mean and biased variance of each statistics group of the dense `x`.
fn moments(x: &Tensor, layout: &NormLayout) -> Result<NormMoments> {
    with_float!(x.dtype(), "norm", T => {
        let (gpu, data) = on_gpu::<T>(x)?;
        Ok(norm_moments(gpu, data, layout)?)
    })
}

/// The norm of `x` with the given moments (`constant`: they are not functions of `x`), recorded for
/// autodiff.
fn apply(
    x: &Tensor,
    layout: NormLayout,
    moments: NormMoments,
    constant: bool,
    affine: Affine,
    eps: f64,
) -> Result<Tensor> {
    let xd = dense(x)?;
    let (weight, bias) = (
        affine.weight.map(dense).transpose()?,
        affine.bias.map(dense).transpose()?,
    );
    let y = with_float!(x.dtype(), "norm", T => {
        let (gpu, data) = on_gpu::<T>(&xd)?;
        let w = weight.as_ref().map(|w| Ok::<_, Error>(on_gpu::<T>(w)?.1)).transpose()?;
        let b = bias.as_ref().map(|b| Ok::<_, Error>(on_gpu::<T>(b)?.1)).transpose()?;
        Ok(tensor(gpu, norm_apply(gpu, data, &layout, &moments, eps, w, b)?, x.shape()))
    })?;
    let mut inputs = vec![x];
    inputs.extend(affine.weight);
    inputs.extend(affine.bias);
    Ok(Tensor::from_op(y, &inputs, |_| CudaNormBackward {
        layout,
        x: xd.detach(),
        weight: weight.as_ref().map(Tensor::detach),
        has_bias: affine.bias.is_some(),
        moments,
        eps,
        constant,
        affine_shape: affine.shape,
        wants: [
            x.tracks_grad(),
            affine.weight.is_some_and(Tensor::tracks_grad),
            affine.bias.is_some_and(Tensor::tracks_grad),
        ],
    }))
}

/// The channel-norm layout of `x` `(N, C, ...)`.
fn channel_layout(x: &Tensor, stats: StatsOver) -> NormLayout {
    NormLayout::channels(&NormGeometry {
        batch: x.shape()[0],
        channels: x.shape()[1],
        spatial: x.shape()[2..].iter().product(),
        stats,
    })
}

/// Group norm of `x` `(N, C, ...)` (checked by the caller): statistics per sample and group of
/// `C / groups` consecutive channels.
pub(crate) fn group_norm(
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let layout = channel_layout(x, StatsOver::Groups(groups));
    let affine = Affine {
        weight,
        bias,
        shape: vec![x.shape()[1]],
    };
    apply(x, layout, moments(&dense(x)?, &layout)?, false, affine, eps)
}

/// Layer norm of `x` over its last `k` axes (checked by the caller).
pub(crate) fn layer_norm(
    x: &Tensor,
    k: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let normalized = &x.shape()[x.rank() - k..];
    let layout = NormLayout::rows(&RowGeometry {
        rows: x.shape()[..x.rank() - k].iter().product(),
        len: normalized.iter().product(),
    });
    let affine = Affine {
        weight,
        bias,
        shape: normalized.to_vec(),
    };
    apply(x, layout, moments(&dense(x)?, &layout)?, false, affine, eps)
}

/// Batch norm's mode (see `Tensor::batch_norm`).
pub(crate) struct BatchNorm {
    pub training: bool,
    pub momentum: Option<f64>,
    pub eps: f64,
}

impl BatchNorm {
    /// Batch norm of `x` `(N, C, ...)` (checked by the caller); the running statistics, on `x`'s
    /// device, are read in eval mode and updated in training.
    pub(crate) fn run(
        &self,
        x: &Tensor,
        stats: Option<&mut BatchNormStats>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let layout = channel_layout(x, StatsOver::Channels);
        let channels = x.shape()[1];
        let affine = Affine {
            weight,
            bias,
            shape: vec![channels],
        };
        let as_f64 = |t: &Tensor| -> Result<CudaSlice<f64>> {
            let t = dense(&t.to_dtype(DType::F64)?.to_device(x.device())?)?;
            Ok(on_gpu::<f64>(&t)?.1.clone())
        };
        if !self.training {
            let s =
                stats.ok_or_else(|| Error::invalid("batch_norm", "running statistics are required in eval mode"))?;
            let running = NormMoments {
                mean: as_f64(&s.running_mean)?,
                var: as_f64(&s.running_var)?,
            };
            return apply(x, layout, running, true, affine, self.eps);
        }
        let batch = moments(&dense(x)?, &layout)?;
        if let Some(s) = stats {
            s.num_batches_tracked += 1;
            let m = self.momentum.unwrap_or(1.0 / s.num_batches_tracked as f64);
            let count = x.numel() / channels;
            if count > 0 {
                let Device::Cuda(ordinal) = x.device() else {
                    return Err(Error::Unsupported {
                        op: "a CUDA kernel",
                        device: x.device(),
                    });
                };
                let gpu = gpu(ordinal)?;
                let unbiased = count as f64 / (count - 1) as f64;
                let update = |old: &Tensor, batch: &CudaSlice<f64>, scale: f64| -> Result<Tensor> {
                    let batch = tensor(&gpu, batch.clone(), &[channels]).mul_scalar(m * scale)?;
                    old.to_device(x.device())?
                        .to_dtype(DType::F64)?
                        .mul_scalar(1.0 - m)?
                        .add(&batch)?
                        .to_dtype(old.dtype())
                };
                s.running_mean = update(&s.running_mean, &batch.mean, 1.0)?;
                s.running_var = update(&s.running_var, &batch.var, unbiased)?;
            }
        }
        apply(x, layout, batch, false, affine, self.eps)
    }
}
