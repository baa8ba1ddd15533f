//! Optimizers with PyTorch's exact updates, learning-rate schedules, gradient clipping and
//! accumulation.
//!
//! A training step: `let grads = ParamGrads::from_backward(&model, &loss.backward()?)?;`, optionally
//! `grads.clip_norm(12.0)?`, then `optimizer.step(&mut model, &grads)?`. Updates run on the f32
//! values directly (no autodiff graph; on the host for CPU parameters, with tensor ops on the device
//! for the others) and replace each parameter by a fresh leaf.

mod adam;
mod grad_scaler;
mod grads;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use grad_scaler::GradScaler;
pub use grads::{Grad, ParamGrads};
pub use schedule::{CosineWarmup, PolyLr};
pub use sgd::Sgd;

use std::collections::HashMap;

use seg_tensor::{no_grad, DType, Device, Error, Result, Tensor};

use crate::Module;

/// Updates a module's parameters from their gradients.
pub trait Optimizer {
    /// One update of every parameter that has a gradient in `grads` (others are left alone).
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()>;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// Per-parameter state of an optimizer: f32 vectors for parameters on the CPU; the steps taken and
/// tensors on the device for the others.
#[derive(Clone, Debug, Default)]
struct States {
    host: HashMap<String, Vec<f32>>,
    device: HashMap<String, DeviceState>,
}

/// The state of a parameter on a device: its tensors (empty before the first step) and the number
/// of steps taken.
#[derive(Clone, Debug, Default)]
struct DeviceState {
    steps: u32,
    tensors: Vec<Tensor>,
}

/// One optimizer's update of one parameter, on the host's f32 values or with tensor ops on the
/// parameter's device (the same formula; the device's rounding may differ in the last bits).
trait Update {
    /// The length of a host state of a parameter of `n` values (zeros before the first step).
    fn state_len(&self, n: usize) -> usize;
    /// Updates `p` in place from `grad`.
    fn host(&self, p: &mut [f32], grad: &[f32], state: &mut [f32]);
    /// The updated `p` from `grad` (both f32 on one device), updating `state` (but not its step count).
    fn device(&self, p: &Tensor, grad: &Tensor, state: &mut DeviceState) -> Result<Tensor>;
}

/// Runs `update` on every parameter of `module` that has a gradient, and makes the updated values
/// the parameter (a new leaf that tracks gradients, where the old one was). Parameters on a device
/// are updated there, without autodiff, never copied to the host.
fn update_parameters(
    module: &mut dyn Module,
    grads: &ParamGrads,
    states: &mut States,
    update: &impl Update,
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
            if param.numel() != grad.len() {
                return Err(Error::invalid(
                    "optimizer step",
                    format!("{name}: {} values but a gradient of {}", param.numel(), grad.len()),
                ));
            }
            let updated = match param.device() {
                Device::Cpu => {
                    let mut values = param.to_vec::<f32>()?;
                    let state = states
                        .host
                        .entry(name.to_string())
                        .or_insert_with(|| vec![0.0; update.state_len(values.len())]);
                    update.host(&mut values, &grad.host()?, state);
                    Tensor::from_vec(values, param.shape())?
                }
                device => {
                    let grad = grad.tensor_on(param.shape(), device)?;
                    let state = states.device.entry(name.to_string()).or_default();
                    let p = no_grad(|| update.device(&param.detach(), &grad, state))?;
                    state.steps += 1;
                    p.detach()
                }
            };
            Ok(updated.requires_grad())
        })();
        match result {
            Ok(t) => *param = t,
            Err(e) => failure = Some(e),
        }
    });
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `update` for three steps on the host loop and on the tensor-op path (here on CPU
    /// tensors, as a GPU runs it) and fails unless the parameters agree to f32 rounding.
    fn tensor_path_follows_host(update: &impl Update) {
        let n = 257;
        let mut host = Tensor::randn(&[n], 1, DType::F32).unwrap().to_vec::<f32>().unwrap();
        let mut state = vec![0.0; update.state_len(n)];
        let mut p = Tensor::from_slice(&host, &[n]).unwrap();
        let mut device_state = DeviceState::default();
        for step in 0..3 {
            let g = Tensor::randn(&[n], 10 + step, DType::F32).unwrap();
            update.host(&mut host, &g.to_vec::<f32>().unwrap(), &mut state);
            p = update.device(&p, &g, &mut device_state).unwrap();
            device_state.steps += 1;
            for (i, (a, b)) in p.to_vec::<f32>().unwrap().iter().zip(&host).enumerate() {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "step {step}, {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn sgd_tensor_path_follows_the_host_loop() {
        for (mu, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 0.0), (0.99, true, 3e-5)] {
            let mut sgd = Sgd::with_momentum(0.1, mu, nesterov);
            sgd.weight_decay = wd;
            sgd.dampening = 0.1;
            tensor_path_follows_host(&sgd.update());
        }
    }

    #[test]
    fn adam_tensor_path_follows_the_host_loop() {
        for mut adam in [Adam::new(1e-2), Adam::adamw(1e-2)] {
            tensor_path_follows_host(&adam.update());
            adam.decoupled = false;
            tensor_path_follows_host(&adam.update());
        }
    }
}
