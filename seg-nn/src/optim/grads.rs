use std::collections::BTreeMap;

use seg_tensor::{DType, Gradients, Result};

use crate::Module;

/// The gradients of a module's parameters, by parameter name, as f32 values: what optimizers read.
/// Adding the gradients of several backward passes ([`ParamGrads::accumulate`]) is gradient
/// accumulation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGrads(BTreeMap<String, Vec<f32>>);

impl ParamGrads {
    /// The gradients a backward pass found for the parameters of `module` (those it did not reach
    /// are absent).
    pub fn from_backward(module: &dyn Module, grads: &Gradients) -> Result<Self> {
        let mut out = BTreeMap::new();
        let mut failure = None;
        module.visit(&mut |name, param| {
            if let Some(g) = grads.get(param) {
                match g.to_dtype(DType::F32).and_then(|g| g.to_vec::<f32>()) {
                    Ok(values) => {
                        out.insert(name.to_string(), values);
                    }
                    Err(e) => failure = Some(e),
                }
            }
        });
        failure.map_or(Ok(Self(out)), Err)
    }

    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.0.get(name).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s gradients to these, name by name.
    pub fn accumulate(&mut self, other: ParamGrads) {
        for (name, g) in other.0 {
            match self.0.get_mut(&name) {
                Some(mine) if mine.len() == g.len() => mine.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                _ => {
                    self.0.insert(name, g);
                }
            }
        }
    }

    /// Multiplies every gradient by `factor` (e.g. `1 / steps` after accumulating).
    pub fn scale(&mut self, factor: f32) {
        self.0.values_mut().flatten().for_each(|g| *g *= factor);
    }

    /// The 2-norm of all gradients together, summed in f64.
    pub fn norm(&self) -> f64 {
        self.0
            .values()
            .flatten()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt()
    }

    /// PyTorch's `clip_grad_norm_`: when the total 2-norm exceeds `max_norm`, scales every gradient
    /// by `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
    pub fn clip_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.scale(coef as f32);
        }
        norm
    }
}
