use std::borrow::Cow;
use std::collections::BTreeMap;

use seg_tensor::{no_grad, DType, Device, Gradients, Result, Tensor};

use crate::Module;

/// One parameter's gradient in f32: values on the host for a parameter on the CPU, a tensor on the
/// parameter's device otherwise (so that a step on a GPU never leaves it).
#[derive(Clone, Debug)]
pub enum Grad {
    Host(Vec<f32>),
    Device(Tensor),
}

impl Grad {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Grad::Host(v) => v.len(),
            Grad::Device(t) => t.numel(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values on the host (read back from a device: the host waits for it).
    pub fn host(&self) -> Result<Cow<'_, [f32]>> {
        match self {
            Grad::Host(v) => Ok(Cow::Borrowed(v)),
            Grad::Device(t) => Ok(Cow::Owned(t.to_vec::<f32>()?)),
        }
    }

    /// The gradient as an f32 tensor of `shape` on `device` (a copy only where it lives elsewhere).
    pub fn tensor_on(&self, shape: &[usize], device: Device) -> Result<Tensor> {
        match self {
            Grad::Host(v) => Tensor::from_slice(v, shape)?.to_device(device),
            Grad::Device(t) => t.reshape(shape)?.to_device(device),
        }
    }

    /// `self += other` (the sum stays where `self` is).
    fn add_assign(&mut self, other: &Grad) -> Result<()> {
        match self {
            Grad::Host(mine) => mine.iter_mut().zip(other.host()?.iter()).for_each(|(a, b)| *a += b),
            Grad::Device(t) => *t = no_grad(|| t.add(&other.tensor_on(t.shape(), t.device())?))?,
        }
        Ok(())
    }

    /// `self * factor`.
    fn scale(&mut self, factor: f32) -> Result<()> {
        match self {
            Grad::Host(v) => v.iter_mut().for_each(|g| *g *= factor),
            Grad::Device(t) => *t = no_grad(|| t.mul_scalar(f64::from(factor)))?,
        }
        Ok(())
    }
}

/// The gradients of a module's parameters, by parameter name, in f32: what optimizers read. Adding
/// the gradients of several backward passes ([`ParamGrads::accumulate`]) is gradient accumulation.
#[derive(Clone, Debug, Default)]
pub struct ParamGrads(BTreeMap<String, Grad>);

impl ParamGrads {
    /// The gradients a backward pass found for the parameters of `module` (those it did not reach
    /// are absent): read to the host for parameters on the CPU, kept on the device for the others.
    pub fn from_backward(module: &dyn Module, grads: &Gradients) -> Result<Self> {
        let mut out = BTreeMap::new();
        let mut failure = None;
        module.visit(&mut |name, param| {
            if let Some(g) = grads.get(param) {
                let grad = g.to_dtype(DType::F32).and_then(|g| match param.device() {
                    Device::Cpu => Ok(Grad::Host(g.to_vec::<f32>()?)),
                    _ => Ok(Grad::Device(g.detach())),
                });
                match grad {
                    Ok(grad) => {
                        out.insert(name.to_string(), grad);
                    }
                    Err(e) => failure = Some(e),
                }
            }
        });
        failure.map_or(Ok(Self(out)), Err)
    }

    pub fn get(&self, name: &str) -> Option<&Grad> {
        self.0.get(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s gradients to these, name by name (each sum stays where this one's gradient is).
    pub fn accumulate(&mut self, other: ParamGrads) -> Result<()> {
        for (name, g) in other.0 {
            match self.0.get_mut(&name) {
                Some(mine) if mine.len() == g.len() => mine.add_assign(&g)?,
                _ => {
                    self.0.insert(name, g);
                }
            }
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor` (e.g. `1 / steps` after accumulating).
    pub fn scale(&mut self, factor: f32) -> Result<()> {
        self.0.values_mut().try_for_each(|g| g.scale(factor))
    }

    /// The 2-norm of all gradients together, summed in f64 (on the host for host gradients; on
    /// the device for the others, read back once).
    pub fn norm(&self) -> Result<f64> {
        let host: f64 = self
            .0
            .values()
            .filter_map(|g| match g {
                Grad::Host(v) => Some(v),
                Grad::Device(_) => None,
            })
            .flatten()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum();
        let mut device: Option<Tensor> = None;
        for g in self.0.values() {
            if let Grad::Device(t) = g {
                let squares = no_grad(|| {
                    let t = t.to_dtype(DType::F64)?;
                    t.mul(&t)?.sum_all()
                })?;
                device = Some(match device {
                    Some(sum) => no_grad(|| sum.add(&squares.to_device(sum.device())?))?,
                    None => squares,
                });
            }
        }
        let device = device.map_or(Ok(0.0), |sum| sum.item())?;
        Ok((host + device).sqrt())
    }

    /// PyTorch's `clip_grad_norm_`: when the total 2-norm exceeds `max_norm`, scales every gradient
    /// by `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
    pub fn clip_norm(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.norm()?;
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.scale(coef as f32)?;
        }
        Ok(norm)
    }
}
