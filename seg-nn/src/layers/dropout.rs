use std::sync::atomic::{AtomicU64, Ordering};

use seg_tensor::{DType, Error, Result, Tensor};

use super::Layer;
use crate::Module;

/// `nn.Dropout(p)`: in training, each value is zeroed with probability `p` and the rest scaled by
/// `1 / (1 - p)`; in evaluation, the identity. Each call draws a new mask from a seeded stream.
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
    seed: u64,
    calls: AtomicU64,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)`, in training mode.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid("Dropout", format!("p must be in [0, 1), found {p}")));
        }
        Ok(Self {
            p,
            training: true,
            seed,
            calls: AtomicU64::new(0),
        })
    }
}

impl Module for Dropout {
    fn visit(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_mut(&mut self, _f: &mut dyn FnMut(&str, &mut Tensor)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl Layer for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let seed = self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(call);
        // The mask is drawn on the host (the same on every device) and moved to `x`'s device.
        let keep = Tensor::rand(x.shape(), seed, DType::F32)?
            .ge(&Tensor::scalar(self.p as f32))?
            .to_dtype(x.dtype())?
            .mul_scalar(1.0 / (1.0 - self.p))?
            .to_device(x.device())?;
        x.mul(&keep)
    }
}
