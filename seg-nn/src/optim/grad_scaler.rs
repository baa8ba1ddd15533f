//! `torch.amp.GradScaler`: dynamic loss scaling for f16 training.
//!
//! A step with f16 autocast:
//!
//! ```text
//! let loss = seg_tensor::autocast(DType::F16, || loss_of(&model))?;
//! let scaled = scaler.scale(&loss)?;
//! let mut grads = ParamGrads::from_backward(&model, &scaled.backward()?)?;
//! scaler.step(&mut optimizer, &mut model, &mut grads)?; // unscales; skips on inf/NaN
//! scaler.update()?;
//! ```
//!
//! The loss is multiplied by the scale `S` before the backward pass, so that small f16 gradients do
//! not flush to zero; the gradients are divided by `S` again (in f32, by `1 / S` rounded to f32)
//! before the optimizer sees them. When any of them is inf or NaN the step is skipped and `S` is
//! multiplied by `backoff_factor`; after `growth_interval` steps in a row without one, `S` is
//! multiplied by `growth_factor` (when the result is finite in f32). `S` is held in f32, as PyTorch's
//! scale tensor.

use seg_tensor::{DType, Error, Result, Tensor};

use super::{Optimizer, ParamGrads};
use crate::Module;

/// Dynamic loss scaling with PyTorch's rules and defaults (module doc).
#[derive(Clone, Debug)]
pub struct GradScaler {
    /// The factor `S` grows by after `growth_interval` good steps (PyTorch: 2).
    pub growth_factor: f64,
    /// The factor `S` shrinks by after a step with inf/NaN gradients (PyTorch: 0.5).
    pub backoff_factor: f64,
    /// Good steps in a row before `S` grows (PyTorch: 2000).
    pub growth_interval: usize,
    scale: f32,
    enabled: bool,
    growth_tracker: usize,
    /// This iteration's inf/NaN check, once the gradients were unscaled (until `update`).
    found_inf: Option<bool>,
}

impl Default for GradScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl GradScaler {
    /// PyTorch's defaults: initial scale 2^16, growth factor 2, backoff factor 0.5, growth interval
    /// 2000.
    pub fn new() -> Self {
        Self::with_init_scale(65536.0)
    }

    /// The defaults with another initial scale.
    pub fn with_init_scale(init_scale: f64) -> Self {
        Self {
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            scale: init_scale as f32,
            enabled: true,
            growth_tracker: 0,
            found_inf: None,
        }
    }

    /// PyTorch's `enabled=False`: `scale` and `unscale` do nothing and `step` always steps (bf16
    /// and f32 training need no scaling).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::new()
        }
    }

    /// The current scale `S` (1 when disabled).
    pub fn get_scale(&self) -> f64 {
        if self.enabled {
            f64::from(self.scale)
        } else {
            1.0
        }
    }

    /// Good steps since the scale last changed.
    pub fn growth_tracker(&self) -> usize {
        self.growth_tracker
    }

    /// `loss * S`, in f32 for a half-precision loss (as PyTorch's f32 scale tensor promotes it).
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        if !self.enabled {
            return Ok(loss.clone());
        }
        let loss = match loss.dtype() {
            DType::F16 | DType::BF16 => loss.to_dtype(DType::F32)?,
            _ => loss.clone(),
        };
        loss.mul_scalar(f64::from(self.scale))
    }

    /// PyTorch's `unscale_`: divides the gradients by `S` (multiplies by `1 / S` in f32) and records
    /// whether any is inf or NaN. Once per iteration: a second call before [`GradScaler::update`] is
    /// an error.
    pub fn unscale(&mut self, grads: &mut ParamGrads) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.found_inf.is_some() {
            return Err(Error::invalid(
                "GradScaler::unscale",
                "unscale has already been called since the last update()",
            ));
        }
        let inv_scale = (1.0 / f64::from(self.scale)) as f32;
        grads.scale(inv_scale)?;
        // The 2-norm (summed in f64, where squares of finite f32 values cannot overflow) is finite
        // exactly when every gradient is.
        self.found_inf = Some(!grads.norm()?.is_finite());
        Ok(())
    }

    /// PyTorch's `step`: unscales the gradients unless [`GradScaler::unscale`] already did, then runs
    /// the optimizer's step unless a gradient is inf or NaN. Returns whether the step ran.
    pub fn step(
        &mut self,
        optimizer: &mut dyn Optimizer,
        module: &mut dyn Module,
        grads: &mut ParamGrads,
    ) -> Result<bool> {
        if !self.enabled {
            optimizer.step(module, grads)?;
            return Ok(true);
        }
        if self.found_inf.is_none() {
            self.unscale(grads)?;
        }
        if self.found_inf == Some(true) {
            return Ok(false);
        }
        optimizer.step(module, grads)?;
        Ok(true)
    }

    /// PyTorch's `update`: after an iteration whose gradients had inf/NaN, `S *= backoff_factor`
    /// and the count of good steps restarts; else the count grows, and at `growth_interval`
    /// `S *= growth_factor` (kept only when finite in f32) and the count restarts. An error unless
    /// this iteration's gradients were unscaled (by `unscale` or `step`).
    pub fn update(&mut self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let found_inf = self.found_inf.take().ok_or_else(|| {
            Error::invalid(
                "GradScaler::update",
                "no inf checks were recorded: call unscale() or step() first",
            )
        })?;
        if found_inf {
            self.scale *= self.backoff_factor as f32;
            self.growth_tracker = 0;
            return Ok(());
        }
        self.growth_tracker += 1;
        if self.growth_tracker >= self.growth_interval {
            let grown = self.scale * self.growth_factor as f32;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Layer, Linear};
    use crate::optim::Sgd;

    /// A linear layer, the gradients of `sum(layer(x) * factor)` scaled by `scaler`, and the layer.
    fn gradients(scaler: &GradScaler, factor: f64) -> (Linear, ParamGrads) {
        let layer = Linear::new(3, 2, true, 0).unwrap();
        let layer = Linear {
            weight: layer.weight.requires_grad(),
            bias: layer.bias.map(|b| b.requires_grad()),
        };
        let x = Tensor::from_vec(vec![1.0f32, -2.0, 0.5], &[1, 3]).unwrap();
        let loss = layer
            .forward(&x)
            .unwrap()
            .mul_scalar(factor)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = ParamGrads::from_backward(&layer, &scaler.scale(&loss).unwrap().backward().unwrap()).unwrap();
        (layer, grads)
    }

    fn values(layer: &Linear) -> Vec<f32> {
        layer.weight.to_vec::<f32>().unwrap()
    }

    #[test]
    fn defaults_are_pytorchs() {
        let s = GradScaler::new();
        assert_eq!(s.get_scale(), 65536.0);
        assert_eq!((s.growth_factor, s.backoff_factor, s.growth_interval), (2.0, 0.5, 2000));
        assert_eq!(GradScaler::disabled().get_scale(), 1.0);
    }

    #[test]
    fn scale_multiplies_the_loss_and_unscale_divides_the_gradients() {
        let scaler = GradScaler::with_init_scale(1024.0);
        let (_, plain) = gradients(&GradScaler::disabled(), 1.0);
        let (_, mut scaled) = gradients(&scaler, 1.0);
        let name = "weight";
        let host = |g: &ParamGrads| g.get(name).unwrap().host().unwrap().into_owned();
        let expected: Vec<f32> = host(&plain).iter().map(|g| g * 1024.0).collect();
        assert_eq!(host(&scaled), expected);
        let mut scaler = scaler;
        scaler.unscale(&mut scaled).unwrap();
        assert_eq!(host(&scaled), host(&plain));
        assert!(scaler.unscale(&mut scaled).is_err(), "twice in one iteration");
        let half_loss = Tensor::from_vec(vec![3.0f32], &[])
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let scaled_loss = scaler.scale(&half_loss).unwrap();
        assert_eq!((scaled_loss.dtype(), scaled_loss.item().unwrap()), (DType::F32, 3072.0));
    }

    #[test]
    fn a_step_with_inf_or_nan_gradients_is_skipped_and_the_scale_backs_off() {
        for bad in [f64::INFINITY, f64::NAN] {
            let mut scaler = GradScaler::new();
            let (mut layer, mut grads) = gradients(&scaler, bad);
            let before = values(&layer);
            let mut sgd = Sgd::new(0.1);
            assert!(!scaler.step(&mut sgd, &mut layer, &mut grads).unwrap());
            assert_eq!(values(&layer), before, "parameters untouched");
            scaler.update().unwrap();
            assert_eq!(scaler.get_scale(), 32768.0);
            assert_eq!(scaler.growth_tracker(), 0);
        }
    }

    #[test]
    fn a_good_step_runs_on_the_unscaled_gradients() {
        let mut scaler = GradScaler::new();
        let (mut layer, mut grads) = gradients(&scaler, 1.0);
        let (mut plain_layer, plain) = gradients(&GradScaler::disabled(), 1.0);
        assert!(scaler.step(&mut Sgd::new(0.1), &mut layer, &mut grads).unwrap());
        Sgd::new(0.1).step(&mut plain_layer, &plain).unwrap();
        assert_eq!(values(&layer), values(&plain_layer));
        scaler.update().unwrap();
        assert_eq!((scaler.get_scale(), scaler.growth_tracker()), (65536.0, 1));
    }

    #[test]
    fn the_scale_grows_after_growth_interval_good_steps() {
        let mut scaler = GradScaler {
            growth_interval: 3,
            ..GradScaler::new()
        };
        for step in 1..=7 {
            let (mut layer, mut grads) = gradients(&scaler, 1.0);
            scaler.step(&mut Sgd::new(0.0), &mut layer, &mut grads).unwrap();
            scaler.update().unwrap();
            let grown = [65536.0, 65536.0, 131072.0, 131072.0, 131072.0, 262144.0, 262144.0][step - 1];
            assert_eq!(scaler.get_scale(), grown, "after step {step}");
            assert_eq!(scaler.growth_tracker(), step % 3);
        }
    }

    #[test]
    fn growth_stops_where_f32_overflows() {
        let mut scaler = GradScaler {
            growth_interval: 1,
            ..GradScaler::with_init_scale(f64::from(f32::MAX) / 1.5)
        };
        let before = scaler.get_scale();
        let (mut layer, mut grads) = gradients(&GradScaler::disabled(), 1.0);
        scaler.step(&mut Sgd::new(0.0), &mut layer, &mut grads).unwrap();
        scaler.update().unwrap();
        assert_eq!(scaler.get_scale(), before);
        assert_eq!(scaler.growth_tracker(), 0);
    }

    #[test]
    fn update_needs_an_inf_check_first() {
        let mut scaler = GradScaler::new();
        assert!(scaler.update().is_err());
        let mut disabled = GradScaler::disabled();
        let (mut layer, mut grads) = gradients(&disabled, f64::NAN);
        assert!(
            disabled.step(&mut Sgd::new(0.1), &mut layer, &mut grads).unwrap(),
            "no checks when disabled"
        );
        disabled.update().unwrap();
    }
}
