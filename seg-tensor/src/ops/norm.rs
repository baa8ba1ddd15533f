//! Normalisation with PyTorch's meaning: `instance_norm`, `group_norm`, `layer_norm` and `batch_norm`
//! (training mode with batch statistics and running-statistic updates, eval mode with the running
//! statistics). The math and the fused kernels are in `seg_kernels::cpu::norm`.

use seg_kernels::cpu::norm::{
    layer_norm_backward, layer_norm_forward, norm_backward, norm_forward, norm_forward_training, row_moments, Moments,
    NormGeometry, NormGrads, RowGeometry, StatsOver,
};

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::ops::{expect_float, expect_same_kind, on_cuda, tensor_from};
use crate::{with_float, DType, Element, Error, Result, Tensor};

/// The running statistics of a batch norm, owned by the caller: PyTorch's `running_mean`,
/// `running_var` and `num_batches_tracked` buffers of `BatchNorm1d/2d/3d` (same names in a
/// `state_dict`).
///
/// [`Tensor::batch_norm`] reads them in eval mode and, in training mode, replaces them with
/// `running_mean = (1 - m) running_mean + m mean` and `running_var = (1 - m) running_var + m var_u`
/// (`mean` and the *unbiased* variance `var_u` of the batch, per channel) and adds one to
/// `num_batches_tracked`, as `torch.nn.BatchNorm3d.forward` does. The momentum `m` is the op's
/// `momentum`, or with `None` the cumulative average `1 / num_batches_tracked` (PyTorch's
/// `momentum=None`). The tensors never track gradients and keep their dtype.
#[derive(Clone, Debug)]
pub struct BatchNormStats {
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: u64,
}

impl BatchNormStats {
    /// PyTorch's initial buffers for `channels` channels: mean 0, variance 1, no batch seen.
    pub fn new(channels: usize, dtype: DType) -> Self {
        Self {
            running_mean: Tensor::zeros(&[channels], dtype),
            running_var: Tensor::ones(&[channels], dtype),
            num_batches_tracked: 0,
        }
    }

    /// Running statistics from given tensors (a checkpoint's buffers), each of shape `(C)` and a
    /// floating dtype; they are detached.
    pub fn from_tensors(running_mean: &Tensor, running_var: &Tensor, num_batches_tracked: u64) -> Result<Self> {
        for t in [running_mean, running_var] {
            if !t.dtype().is_float() {
                return Err(Error::DType {
                    op: "batch_norm",
                    expected: "a floating dtype for the running statistics",
                    found: t.dtype(),
                });
            }
        }
        if running_mean.rank() != 1 || running_var.shape() != running_mean.shape() {
            return Err(Error::ShapeMismatch {
                op: "batch_norm",
                expected: format!(
                    "running_mean and running_var of one shape (C), running_mean is {:?}",
                    running_mean.shape()
                ),
                found: running_var.shape().to_vec(),
            });
        }
        Ok(Self {
            running_mean: running_mean.detach(),
            running_var: running_var.detach(),
            num_batches_tracked,
        })
    }

    fn channels(&self) -> &[usize] {
        self.running_mean.shape()
    }
}

/// Which kernel family an op uses.
#[derive(Clone, Copy)]
enum Kind {
    /// Channel norms; `true`: the statistics are constants (batch norm in eval mode).
    Channel(NormGeometry, bool),
    Rows(RowGeometry),
}

struct NormBackward {
    kind: Kind,
    x: Tensor,
    weight: Option<Tensor>,
    affine_shape: Vec<usize>,
    has_bias: bool,
    mean: Vec<f64>,
    rstd: Vec<f64>,
    wants: [bool; 3],
}

impl Backward for NormBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let affine_len: usize = self.affine_shape.iter().product();
        let (dx, dw, db) = with_float!(grad.dtype(), "norm backward", T => {
            let (dy, x) = (grad.values::<T>()?, self.x.values::<T>()?);
            let w = self.weight.as_ref().map(|w| w.values::<T>()).transpose()?;
            let zero = T::from_f64(0.0);
            let mut dx = self.wants[0].then(|| vec![zero; x.len()]);
            let mut dw = (self.weight.is_some() && self.wants[1]).then(|| vec![zero; affine_len]);
            let mut db = (self.has_bias && self.wants[2]).then(|| vec![zero; affine_len]);
            let grads = NormGrads {
                dx: dx.as_deref_mut(),
                dweight: dw.as_deref_mut(),
                dbias: db.as_deref_mut(),
            };
            match self.kind {
                Kind::Channel(g, constant) => {
                    norm_backward(&g, &x, &dy, &self.mean, &self.rstd, w.as_deref(), constant, grads)
                }
                Kind::Rows(g) => layer_norm_backward(&g, &x, &dy, &self.mean, &self.rstd, w.as_deref(), grads),
            }
            let affine = |v: Vec<T>| tensor_from(v, &self.affine_shape);
            Ok((dx.map(|v| tensor_from(v, self.x.shape())), dw.map(affine), db.map(affine)))
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

/// Fails unless the optional `weight`/`bias` `t` has `x`'s dtype and the given shape.
fn check_affine(op: &'static str, x: &Tensor, t: Option<&Tensor>, what: &str, shape: &[usize]) -> Result<()> {
    if let Some(t) = t {
        expect_same_kind(op, x, t)?;
        if t.shape() != shape {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("a {what} of shape {shape:?}"),
                found: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// Fails unless `x` has at least `min` dims, described by `what`.
fn check_rank(op: &'static str, x: &Tensor, min: usize, what: &str) -> Result<()> {
    if x.rank() < min {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("an input {what}"),
            found: x.shape().to_vec(),
        });
    }
    Ok(())
}

/// The weight and bias among the tensors `autocast::dispatch` passed (`t[0]` is the input).
fn affine_parts<'a>(t: &'a [Tensor], affine: &[Option<&Tensor>; 2]) -> [Option<&'a Tensor>; 2] {
    let parts = autocast::unflat(&t[1..], affine);
    [parts[0], parts[1]]
}

impl Tensor {
    /// The checked geometry of a channel norm of `self` `(N, C, ...)` with `weight`/`bias` `(C)`.
    fn channel_geometry(
        &self,
        op: &'static str,
        stats: StatsOver,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<NormGeometry> {
        expect_float(op, self)?;
        check_rank(op, self, 2, "(N, C, ...)")?;
        let channels = self.shape()[1];
        check_affine(op, self, weight, "weight", &[channels])?;
        check_affine(op, self, bias, "bias", &[channels])?;
        let g = NormGeometry {
            batch: self.shape()[0],
            channels,
            spatial: self.shape()[2..].iter().product(),
            stats,
        };
        g.validate().map_err(|msg| Error::invalid(op, msg))?;
        Ok(g)
    }

    /// A channel norm of `self` `(N, C, ...)`: statistics from the input (`running: None`), or the
    /// given per-channel mean and variance (batch norm in eval mode). Returns the output and the
    /// statistics used.
    fn channel_norm(
        &self,
        op: &'static str,
        stats: StatsOver,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        running: Option<Moments>,
    ) -> Result<(Tensor, Moments)> {
        let g = self.channel_geometry(op, stats, weight, bias)?;
        let channels = g.channels;
        let constant = running.is_some();
        let (y, moments, rstd) = with_float!(self.dtype(), op, T => {
            let x = self.values::<T>()?;
            let (w, b) = (weight.map(|t| t.values::<T>()).transpose()?, bias.map(|t| t.values::<T>()).transpose()?);
            let mut y = vec![T::from_f64(0.0); g.len()];
            let moments = match running {
                Some(moments) => {
                    norm_forward(&g, &x, &moments.mean, &moments.rstd(eps), w.as_deref(), b.as_deref(), &mut y);
                    moments
                }
                None => norm_forward_training(&g, &x, eps, w.as_deref(), b.as_deref(), &mut y),
            };
            let rstd = moments.rstd(eps);
            Ok((tensor_from(y, self.shape()), moments, rstd))
        })?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let y = Tensor::from_op(y, &inputs, |_| NormBackward {
            kind: Kind::Channel(g, constant),
            x: self.detach(),
            weight: weight.map(Tensor::detach),
            affine_shape: vec![channels],
            has_bias: bias.is_some(),
            mean: moments.mean.clone(),
            rstd,
            wants: [
                self.tracks_grad(),
                weight.is_some_and(Tensor::tracks_grad),
                bias.is_some_and(Tensor::tracks_grad),
            ],
        });
        Ok((y, moments))
    }

    /// `torch.nn.functional.instance_norm` without running statistics: each `(n, c)` plane of `self`
    /// `(N, C, *spatial)` (at least one spatial axis, more than one spatial element) normalised by its
    /// own mean and biased variance, then `y = xhat weight[c] + bias[c]` (`weight`, `bias`: `(C)`).
    pub fn instance_norm(&self, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let affine = [weight, bias];
        let norm = |t: &[Tensor]| {
            let [w, b] = affine_parts(t, &affine);
            t[0].instance_norm(w, b, eps)
        };
        if let Some(y) = autocast::dispatch(Policy::Fp32, &autocast::flat(&[self], &affine), norm)? {
            return Ok(y);
        }
        check_rank("instance_norm", self, 3, "(N, C, *spatial) with a spatial axis")?;
        if self.shape()[2..].iter().product::<usize>() == 1 {
            return Err(Error::invalid(
                "instance_norm",
                format!(
                    "expected more than 1 spatial element when training, got input size {:?}",
                    self.shape()
                ),
            ));
        }
        let groups = StatsOver::Groups(self.shape()[1]);
        if on_cuda(self) {
            self.channel_geometry("instance_norm", groups, weight, bias)?;
            return crate::cuda::group_norm(self, self.shape()[1], weight, bias, eps);
        }
        Ok(self.channel_norm("instance_norm", groups, weight, bias, eps, None)?.0)
    }

    /// `torch.nn.functional.group_norm`: the channels of `self` `(N, C, ...)` split into `num_groups`
    /// groups of `C / num_groups` consecutive channels, each `(n, group)` normalised by its mean and
    /// biased variance, then `y = xhat weight[c] + bias[c]` (`weight`, `bias`: `(C)`).
    pub fn group_norm(
        &self,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let affine = [weight, bias];
        let norm = |t: &[Tensor]| {
            let [w, b] = affine_parts(t, &affine);
            t[0].group_norm(num_groups, w, b, eps)
        };
        if let Some(y) = autocast::dispatch(Policy::Fp32, &autocast::flat(&[self], &affine), norm)? {
            return Ok(y);
        }
        let groups = StatsOver::Groups(num_groups);
        if on_cuda(self) {
            self.channel_geometry("group_norm", groups, weight, bias)?;
            return crate::cuda::group_norm(self, num_groups, weight, bias, eps);
        }
        Ok(self.channel_norm("group_norm", groups, weight, bias, eps, None)?.0)
    }

    /// `torch.nn.functional.layer_norm`: normalises `self` over its trailing dims, which must equal
    /// `normalized_shape` (not empty), by each leading index's mean and biased variance, then
    /// `y = xhat * weight + bias` elementwise (`weight`, `bias` of shape `normalized_shape`).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let affine = [weight, bias];
        let norm = |t: &[Tensor]| {
            let [w, b] = affine_parts(t, &affine);
            t[0].layer_norm(normalized_shape, w, b, eps)
        };
        if let Some(y) = autocast::dispatch(Policy::Fp32, &autocast::flat(&[self], &affine), norm)? {
            return Ok(y);
        }
        const OP: &str = "layer_norm";
        expect_float(OP, self)?;
        let k = normalized_shape.len();
        if k == 0 {
            return Err(Error::invalid(OP, "normalized_shape must have at least one dim"));
        }
        if self.rank() < k || self.shape()[self.rank() - k..] != *normalized_shape {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!(
                    "an input of shape [*, {normalized_shape:?}] for normalized_shape={normalized_shape:?}"
                ),
                found: self.shape().to_vec(),
            });
        }
        check_affine(OP, self, weight, "weight", normalized_shape)?;
        check_affine(OP, self, bias, "bias", normalized_shape)?;
        if on_cuda(self) {
            return crate::cuda::layer_norm(self, k, weight, bias, eps);
        }
        let len: usize = normalized_shape.iter().product();
        let g = RowGeometry {
            rows: self.shape()[..self.rank() - k].iter().product(),
            len,
        };
        let (y, mean, rstd) = with_float!(self.dtype(), OP, T => {
            let x = self.values::<T>()?;
            let moments = row_moments(&g, &x);
            let rstd = moments.rstd(eps);
            let (w, b) = (weight.map(|t| t.values::<T>()).transpose()?, bias.map(|t| t.values::<T>()).transpose()?);
            let mut y = vec![T::from_f64(0.0); x.len()];
            layer_norm_forward(&g, &x, &moments.mean, &rstd, w.as_deref(), b.as_deref(), &mut y);
            Ok((tensor_from(y, self.shape()), moments.mean, rstd))
        })?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        Ok(Tensor::from_op(y, &inputs, |_| NormBackward {
            kind: Kind::Rows(g),
            x: self.detach(),
            weight: weight.map(Tensor::detach),
            affine_shape: normalized_shape.to_vec(),
            has_bias: bias.is_some(),
            mean,
            rstd,
            wants: [
                self.tracks_grad(),
                weight.is_some_and(Tensor::tracks_grad),
                bias.is_some_and(Tensor::tracks_grad),
            ],
        }))
    }

    /// `torch.nn.functional.batch_norm` on `self` `(N, C, ...)`, `y = (x - mean) / sqrt(var + eps) *
    /// weight[c] + bias[c]` per channel `c`:
    ///
    /// - `training`: `mean` and the biased `var` of the batch over `(N, ...)` (more than one value per
    ///   channel needed); the gradient flows through them. With `stats`, the running statistics are
    ///   updated as [`BatchNormStats`] describes (`momentum`: PyTorch's, `None` for the cumulative
    ///   average).
    /// - eval (`!training`): the running statistics of `stats` (required), constants for the gradient.
    ///
    /// `stats: None` in training is PyTorch's `running_mean=None, running_var=None`
    /// (`track_running_stats=False`).
    pub fn batch_norm(
        &self,
        stats: Option<&mut BatchNormStats>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: Option<f64>,
        eps: f64,
    ) -> Result<Tensor> {
        let affine = [weight, bias];
        let inputs = autocast::flat(&[self], &affine);
        // The closure takes `stats` only when it runs: keep it reachable for the plain path.
        let mut stats = stats;
        let norm = |t: &[Tensor]| {
            let [w, b] = affine_parts(t, &affine);
            t[0].batch_norm(stats.as_deref_mut(), w, b, training, momentum, eps)
        };
        if let Some(y) = autocast::dispatch(Policy::Fp32, &inputs, norm)? {
            return Ok(y);
        }
        const OP: &str = "batch_norm";
        check_rank(OP, self, 2, "(N, C, ...)")?;
        let channels = self.shape()[1];
        if let Some(s) = &stats {
            if s.channels() != [channels] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    expected: format!("running statistics of shape [{channels}]"),
                    found: s.channels().to_vec(),
                });
            }
        }
        let count = self.numel().checked_div(channels).unwrap_or(0);
        if on_cuda(self) {
            self.channel_geometry(OP, StatsOver::Channels, weight, bias)?;
            if training && count == 1 {
                return Err(Error::invalid(
                    OP,
                    "expected more than 1 value per channel when training",
                ));
            }
            let norm = crate::cuda::BatchNorm {
                training,
                momentum,
                eps,
            };
            return norm.run(self, stats, weight, bias);
        }
        if !training {
            let Some(s) = stats else {
                return Err(Error::invalid(OP, "running statistics are required in eval mode"));
            };
            let running = Moments {
                mean: s.running_mean.to_vec_f64(),
                var: s.running_var.to_vec_f64(),
            };
            return Ok(self
                .channel_norm(OP, StatsOver::Channels, weight, bias, eps, Some(running))?
                .0);
        }
        if count == 1 {
            return Err(Error::invalid(
                OP,
                format!(
                    "expected more than 1 value per channel when training, got input size {:?}",
                    self.shape()
                ),
            ));
        }
        let (y, moments) = self.channel_norm(OP, StatsOver::Channels, weight, bias, eps, None)?;
        if let Some(s) = stats {
            s.num_batches_tracked += 1;
            let m = momentum.unwrap_or(1.0 / s.num_batches_tracked as f64);
            if count > 0 {
                let unbiased = count as f64 / (count - 1) as f64;
                let update = |old: &Tensor, batch: &[f64], scale: f64| -> Result<Tensor> {
                    let values: Vec<f64> = old
                        .to_vec_f64()
                        .iter()
                        .zip(batch)
                        .map(|(r, b)| (1.0 - m) * r + m * b * scale)
                        .collect();
                    Tensor::from_vec(values, &[channels])?.to_dtype(old.dtype())
                };
                s.running_mean = update(&s.running_mean, &moments.mean, 1.0)?;
                s.running_var = update(&s.running_var, &moments.var, unbiased)?;
            }
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck;

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, seed, DType::F64).unwrap()
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    /// Mean and biased variance of each of `groups` equal consecutive runs of `v`.
    fn run_moments(v: &[f64], groups: usize) -> Vec<(f64, f64)> {
        v.chunks(v.len() / groups)
            .map(|c| {
                let m = c.iter().sum::<f64>() / c.len() as f64;
                (m, c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / c.len() as f64)
            })
            .collect()
    }

    #[test]
    fn instance_norm_normalises_each_plane() {
        let x = randn(&[2, 3, 4, 5], 1)
            .mul_scalar(3.0)
            .unwrap()
            .add_scalar(2.0)
            .unwrap();
        let y = x.instance_norm(None, None, 0.0).unwrap();
        for (m, v) in run_moments(&y.to_vec_f64(), 6) {
            assert!(m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12, "{m} {v}");
        }
        // Affine: y = xhat w[c] + b[c].
        let (w, b) = (randn(&[3], 2), randn(&[3], 3));
        let ya = x.instance_norm(Some(&w), Some(&b), 0.0).unwrap().to_vec_f64();
        let (wv, bv) = (w.to_vec_f64(), b.to_vec_f64());
        let want: Vec<f64> = y
            .to_vec_f64()
            .iter()
            .enumerate()
            .map(|(i, v)| v * wv[i / 20 % 3] + bv[i / 20 % 3])
            .collect();
        assert_close(&ya, &want, 1e-12);
    }

    #[test]
    fn group_norm_matches_instance_norm_of_regrouped_channels() {
        // group_norm with G groups on (N, C, S) == instance norm on (N, G, C/G * S).
        let x = randn(&[2, 6, 3, 2], 4);
        let y = x.group_norm(3, None, None, 1e-5).unwrap();
        let z = x.reshape(&[2, 3, 12]).unwrap().instance_norm(None, None, 1e-5).unwrap();
        assert_close(&y.to_vec_f64(), &z.to_vec_f64(), 1e-12);
    }

    #[test]
    fn layer_norm_normalises_trailing_dims() {
        let x = randn(&[3, 4, 5], 5);
        let y = x.layer_norm(&[4, 5], None, None, 0.0).unwrap();
        for (m, v) in run_moments(&y.to_vec_f64(), 3) {
            assert!(m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12);
        }
        let (w, b) = (randn(&[5], 6), randn(&[5], 7));
        let y1 = x.layer_norm(&[5], Some(&w), Some(&b), 1e-5).unwrap().to_vec_f64();
        let xv = x.to_vec_f64();
        let want: Vec<f64> = xv
            .chunks(5)
            .flat_map(|row| {
                let (m, v) = run_moments(row, 1)[0];
                let (w, b) = (w.to_vec_f64(), b.to_vec_f64());
                (0..5)
                    .map(|k| (row[k] - m) / (v + 1e-5).sqrt() * w[k] + b[k])
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_close(&y1, &want, 1e-12);
    }

    #[test]
    fn batch_norm_updates_and_uses_running_statistics() {
        // Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 holds 0, 0, 2, 2.
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 0.0, 0.0, 3.0, 4.0, 2.0, 2.0], &[2, 2, 2]).unwrap();
        let mut stats = BatchNormStats::new(2, DType::F32);
        let y = x
            .batch_norm(Some(&mut stats), None, None, true, Some(0.1), 0.0)
            .unwrap();
        let s = 1.0 / 1.25f64.sqrt();
        let want = [-1.5 * s, -0.5 * s, -1.0, -1.0, 0.5 * s, 1.5 * s, 1.0, 1.0];
        assert_close(&y.to_vec_f64(), &want, 1e-6);
        assert_close(&stats.running_mean.to_vec_f64(), &[0.25, 0.1], 1e-7);
        assert_close(
            &stats.running_var.to_vec_f64(),
            &[0.9 + 0.1 * 5.0 / 3.0, 0.9 + 0.1 * 4.0 / 3.0],
            1e-7,
        );
        assert_eq!((stats.num_batches_tracked, stats.running_mean.dtype()), (1, DType::F32));
        // Eval: the running statistics, not the batch's.
        let y = x
            .batch_norm(Some(&mut stats), None, None, false, Some(0.1), 1e-5)
            .unwrap();
        let (m, v) = (stats.running_mean.to_vec_f64(), stats.running_var.to_vec_f64());
        let want: Vec<f64> = x
            .to_vec_f64()
            .iter()
            .enumerate()
            .map(|(i, x)| (x - m[i / 2 % 2]) / (v[i / 2 % 2] + 1e-5).sqrt())
            .collect();
        assert_close(&y.to_vec_f64(), &want, 1e-6);
        assert_eq!(stats.num_batches_tracked, 1, "eval mode leaves the statistics alone");
        // momentum None: the cumulative average (the second batch weighs 1/2).
        let mut stats = BatchNormStats::new(2, DType::F32);
        x.batch_norm(Some(&mut stats), None, None, true, None, 0.0).unwrap();
        assert_close(&stats.running_mean.to_vec_f64(), &[2.5, 1.0], 1e-7);
        x.mul_scalar(3.0)
            .unwrap()
            .batch_norm(Some(&mut stats), None, None, true, None, 0.0)
            .unwrap();
        assert_close(&stats.running_mean.to_vec_f64(), &[5.0, 2.0], 1e-6);
    }

    #[test]
    fn gradients_of_instance_norm() {
        let f = |t: &[Tensor]| t[0].instance_norm(Some(&t[1]), Some(&t[2]), 1e-5);
        gradcheck::check(f, &[randn(&[2, 3, 2, 3, 2], 10), randn(&[3], 11), randn(&[3], 12)]).unwrap();
        let f = |t: &[Tensor]| t[0].instance_norm(None, None, 1e-3);
        gradcheck::check(f, &[randn(&[2, 2, 7], 13)]).unwrap();
    }

    #[test]
    fn gradients_of_group_norm() {
        let f = |t: &[Tensor]| t[0].group_norm(2, Some(&t[1]), Some(&t[2]), 1e-5);
        gradcheck::check(f, &[randn(&[2, 6, 2, 3], 14), randn(&[6], 15), randn(&[6], 16)]).unwrap();
        // Weight without bias, one group, no spatial axes.
        let f = |t: &[Tensor]| t[0].group_norm(1, Some(&t[1]), None, 1e-5);
        gradcheck::check(f, &[randn(&[3, 4], 17), randn(&[4], 18)]).unwrap();
    }

    #[test]
    fn gradients_of_layer_norm() {
        let f = |t: &[Tensor]| t[0].layer_norm(&[3, 4], Some(&t[1]), Some(&t[2]), 1e-5);
        gradcheck::check(f, &[randn(&[2, 3, 3, 4], 19), randn(&[3, 4], 20), randn(&[3, 4], 21)]).unwrap();
        let f = |t: &[Tensor]| t[0].layer_norm(&[6], None, Some(&t[1]), 1e-5);
        gradcheck::check(f, &[randn(&[5, 6], 22), randn(&[6], 23)]).unwrap();
    }

    #[test]
    fn gradients_of_batch_norm_in_training_and_eval() {
        let f = |t: &[Tensor]| t[0].batch_norm(None, Some(&t[1]), Some(&t[2]), true, Some(0.1), 1e-5);
        gradcheck::check(f, &[randn(&[3, 2, 2, 3], 24), randn(&[2], 25), randn(&[2], 26)]).unwrap();
        let stats = BatchNormStats::from_tensors(
            &randn(&[2], 27),
            &randn(&[2], 28).abs().unwrap().add_scalar(0.5).unwrap(),
            0,
        )
        .unwrap();
        let f = |t: &[Tensor]| {
            let mut s = stats.clone();
            t[0].batch_norm(Some(&mut s), Some(&t[1]), Some(&t[2]), false, Some(0.1), 1e-5)
        };
        gradcheck::check(f, &[randn(&[3, 2, 4], 29), randn(&[2], 30), randn(&[2], 31)]).unwrap();
        // Training with running statistics to update: the gradient is the batch-statistics one.
        let f = |t: &[Tensor]| {
            let mut s = stats.clone();
            t[0].batch_norm(Some(&mut s), None, None, true, Some(0.3), 1e-5)
        };
        gradcheck::check(f, &[randn(&[3, 2, 3], 32)]).unwrap();
    }

    #[test]
    fn f32_matches_f64() {
        let x = randn(&[2, 4, 3, 5], 33);
        let (w, b) = (randn(&[4], 34), randn(&[4], 35));
        let run = |dt: DType| {
            let (x, w, b) = (
                x.to_dtype(dt).unwrap().requires_grad(),
                w.to_dtype(dt).unwrap().requires_grad(),
                b.to_dtype(dt).unwrap().requires_grad(),
            );
            let y = x.group_norm(2, Some(&w), Some(&b), 1e-5).unwrap();
            let g = y.mul(&y).unwrap().sum_all().unwrap().backward().unwrap();
            [
                y,
                g.get(&x).unwrap().clone(),
                g.get(&w).unwrap().clone(),
                g.get(&b).unwrap().clone(),
            ]
            .map(|t| t.to_vec_f64())
        };
        for (a, b) in run(DType::F32).iter().zip(run(DType::F64)) {
            assert_close(a, &b, 1e-4);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = randn(&[2, 6, 3], 36);
        let msg = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert!(msg(x.group_norm(4, None, None, 1e-5)).contains("4 groups"));
        assert!(x.group_norm(0, None, None, 1e-5).is_err());
        assert!(msg(x.instance_norm(Some(&randn(&[5], 37)), None, 1e-5)).contains("weight of shape [6]"));
        assert!(msg(x.instance_norm(None, Some(&randn(&[6, 1], 38)), 1e-5)).contains("bias of shape [6]"));
        assert!(
            randn(&[2, 6], 39).instance_norm(None, None, 1e-5).is_err(),
            "no spatial axis"
        );
        assert!(msg(randn(&[2, 6, 1, 1], 40).instance_norm(None, None, 1e-5)).contains("more than 1 spatial element"));
        assert!(randn(&[6], 41).group_norm(1, None, None, 1e-5).is_err(), "rank 1");
        assert!(msg(x.layer_norm(&[6], None, None, 1e-5)).contains("normalized_shape=[6]"));
        assert!(x.layer_norm(&[], None, None, 1e-5).is_err());
        assert!(
            x.layer_norm(&[1, 2, 6, 3], None, None, 1e-5).is_err(),
            "longer than the input"
        );
        assert!(x.layer_norm(&[3], Some(&randn(&[6], 42)), None, 1e-5).is_err());
        let one = randn(&[1, 6], 43);
        assert!(msg(one.batch_norm(None, None, None, true, Some(0.1), 1e-5)).contains("more than 1 value per channel"));
        assert!(msg(x.batch_norm(None, None, None, false, Some(0.1), 1e-5)).contains("eval mode"));
        let mut wrong = BatchNormStats::new(5, DType::F64);
        assert!(x
            .batch_norm(Some(&mut wrong), None, None, true, Some(0.1), 1e-5)
            .is_err());
        assert!(BatchNormStats::from_tensors(&randn(&[6], 44), &randn(&[5], 45), 0).is_err());
        let ints = Tensor::zeros(&[2, 6, 3], DType::I64);
        assert!(ints.instance_norm(None, None, 1e-5).is_err());
        assert!(
            x.group_norm(2, Some(&Tensor::ones(&[6], DType::F32)), None, 1e-5)
                .is_err(),
            "dtype mismatch"
        );
        // Eval mode with one value per channel is fine, as in PyTorch.
        let mut stats = BatchNormStats::new(6, DType::F64);
        let y = one
            .batch_norm(Some(&mut stats), None, None, false, Some(0.1), 0.0)
            .unwrap();
        assert_close(&y.to_vec_f64(), &one.to_vec_f64(), 1e-12);
    }
}
