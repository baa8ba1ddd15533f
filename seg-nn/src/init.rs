//! Parameter initialisers with PyTorch's defaults, seeded and reproducible.

use seg_tensor::{DType, Result, Tensor};

/// PyTorch's default for `Linear` and `Conv` weights and biases: `kaiming_uniform_(a = sqrt 5)`,
/// which is `U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))`, as a leaf that tracks gradients.
pub fn default_uniform(shape: &[usize], fan_in: usize, seed: u64) -> Result<Tensor> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Ok(Tensor::rand_uniform(shape, -bound, bound, seed, DType::F32)?.requires_grad())
}

/// A leaf of `shape` filled with `value` that tracks gradients.
pub fn constant(shape: &[usize], value: f64) -> Tensor {
    Tensor::full(shape, value, DType::F32).requires_grad()
}

/// Seeds for the parameters of one module: the `i`-th parameter initialised gets `base + i`
/// mixed, so that adding a module elsewhere does not change these values.
#[derive(Debug, Clone)]
pub struct Seeds {
    base: u64,
    next: u64,
}

impl Seeds {
    pub fn new(base: u64) -> Self {
        Self { base, next: 0 }
    }

    /// The seed for the next parameter.
    pub fn next_seed(&mut self) -> u64 {
        self.next += 1;
        self.base.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(self.next)
    }
}
