//! The norms on CUDA, composed of ops that have CUDA kernels (reductions, broadcasting arithmetic):
//! autodiff through those ops is their backward. Same formulas as the fused CPU kernels:
//! `y = (x - mean) / sqrt(var + eps) * weight + bias` with the biased variance.

use crate::{BatchNormStats, Error, Result, Tensor};

/// `(x - mean) / sqrt(var + eps)` over `axes` of `x`, with the (keepdim) mean and biased variance.
fn normalize(x: &Tensor, axes: &[isize], eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let mean = x.mean(axes, true)?;
    let centered = x.sub(&mean)?;
    let var = centered.mul(&centered)?.mean(axes, true)?;
    let xhat = centered.div(&var.add_scalar(eps)?.sqrt()?)?;
    Ok((xhat, mean, var))
}

/// `y * weight + bias` with both seen as `shape` (broadcast over the rest).
fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, shape: &[usize]) -> Result<Tensor> {
    let y = match weight {
        Some(w) => y.mul(&w.reshape(shape)?)?,
        None => y,
    };
    match bias {
        Some(b) => y.add(&b.reshape(shape)?),
        None => Ok(y),
    }
}

/// `(1, C, 1, ...)` for an input `(N, C, ...)`: how a per-channel vector broadcasts.
fn channel_shape(x: &Tensor) -> Vec<usize> {
    (0..x.rank()).map(|d| if d == 1 { x.shape()[1] } else { 1 }).collect()
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
    let n = x.shape()[0];
    let grouped = x.reshape(&[n, groups, x.numel() / (n * groups).max(1)])?;
    let (xhat, _, _) = normalize(&grouped, &[2], eps)?;
    affine(xhat.reshape(x.shape())?, weight, bias, &channel_shape(x))
}

/// Layer norm of `x` over its last `k` axes (checked by the caller).
pub(crate) fn layer_norm(
    x: &Tensor,
    k: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let axes: Vec<isize> = (x.rank() - k..x.rank()).map(|d| d as isize).collect();
    let (xhat, _, _) = normalize(x, &axes, eps)?;
    let mut shape = vec![1; x.rank() - k];
    shape.extend_from_slice(&x.shape()[x.rank() - k..]);
    affine(xhat, weight, bias, &shape)
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
        let shape = channel_shape(x);
        if !self.training {
            let s =
                stats.ok_or_else(|| Error::invalid("batch_norm", "running statistics are required in eval mode"))?;
            let mean = s.running_mean.to_dtype(x.dtype())?.reshape(&shape)?;
            let var = s.running_var.to_dtype(x.dtype())?.reshape(&shape)?;
            let xhat = x.sub(&mean)?.div(&var.add_scalar(self.eps)?.sqrt()?)?;
            return affine(xhat, weight, bias, &shape);
        }
        let axes: Vec<isize> = (0..x.rank()).filter(|&d| d != 1).map(|d| d as isize).collect();
        let (xhat, mean, var) = normalize(x, &axes, self.eps)?;
        if let Some(s) = stats {
            s.num_batches_tracked += 1;
            let m = self.momentum.unwrap_or(1.0 / s.num_batches_tracked as f64);
            let count = x.numel() / x.shape()[1];
            if count > 0 {
                let unbiased = count as f64 / (count - 1) as f64;
                let channels = [x.shape()[1]];
                let update = |old: &Tensor, batch: &Tensor, scale: f64| -> Result<Tensor> {
                    let batch = batch.detach().reshape(&channels)?.mul_scalar(m * scale)?;
                    old.to_dtype(x.dtype())?
                        .mul_scalar(1.0 - m)?
                        .add(&batch)?
                        .to_dtype(old.dtype())
                };
                s.running_mean = update(&s.running_mean, &mean, 1.0)?;
                s.running_var = update(&s.running_var, &var, unbiased)?;
            }
        }
        affine(xhat, weight, bias, &shape)
    }
}
