//! Optimizers with PyTorch's exact updates, learning-rate schedules, gradient clipping and
//! accumulation.
//!
//! A training step: `let grads = ParamGrads::from_backward(&model, &loss.backward()?)?;`, optionally
//! `grads.clip_norm(12.0)`, then `optimizer.step(&mut model, &grads)?`. Updates run on the f32
//! buffers directly (no autodiff graph) and replace each parameter by a fresh leaf.

mod adam;
mod grad_scaler;
mod grads;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use grad_scaler::GradScaler;
pub use grads::ParamGrads;
pub use schedule::{CosineWarmup, PolyLr};
pub use sgd::Sgd;

use std::collections::HashMap;

use seg_tensor::{DType, Error, Result, Tensor};

use crate::Module;

/// Updates a module's parameters from their gradients.
pub trait Optimizer {
    /// One update of every parameter that has a gradient in `grads` (others are left alone).
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()>;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// Runs `update(name, values, grad, state)` on every parameter of `module` that has a gradient,
/// with a per-parameter state vector of `state_len(n)` zeros created on first use, and makes the
/// updated values the parameter (a new leaf that tracks gradients).
fn update_parameters(
    module: &mut dyn Module,
    grads: &ParamGrads,
    states: &mut HashMap<String, Vec<f32>>,
    state_len: impl Fn(usize) -> usize,
    mut update: impl FnMut(&mut [f32], &[f32], &mut Vec<f32>),
) -> Result<()> {
    let mut failure = None;
    module.visit_mut(&mut |name, param| {
        let Some(grad) = grads.get(name) else { return };
        let result = (|| {
            if param.dtype() != DType::F32 {
                return Err(Error::DType {
                    op: "optimizer step",
                    expected: "f32 parameters",
                    found: param.dtype(),
                });
            }
            let mut values = param.to_vec::<f32>()?;
            if values.len() != grad.len() {
                return Err(Error::invalid(
                    "optimizer step",
                    format!("{name}: {} values but a gradient of {}", values.len(), grad.len()),
                ));
            }
            let state = states
                .entry(name.to_string())
                .or_insert_with(|| vec![0.0; state_len(values.len())]);
            update(&mut values, grad, state);
            // The update runs on the host; a parameter on a GPU goes back there.
            Ok(Tensor::from_vec(values, param.shape())?
                .to_device(param.device())?
                .requires_grad())
        })();
        match result {
            Ok(t) => *param = t,
            Err(e) => failure = Some(e),
        }
    });
    failure.map_or(Ok(()), Err)
}
