use std::collections::HashMap;

use seg_tensor::Result;

use super::{update_parameters, Optimizer, ParamGrads};
use crate::Module;

/// `torch.optim.Adam` and, with `decoupled` weight decay, `torch.optim.AdamW`, step `t`:
///
/// - Adam: `g = grad + weight_decay p`; AdamW: `p = p (1 - lr weight_decay)`, `g = grad`;
/// - `m = m + (1 - beta1) (g - m)`, `v = beta2 v + (1 - beta2) g^2`;
/// - `p -= (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`,
///
/// in f32 in PyTorch's order of operations (its `_single_tensor_adam`), so that the same gradients
/// give the same parameters.
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW's decoupled decay instead of Adam's L2 term.
    pub decoupled: bool,
    /// Per parameter: `[t, m..., v...]`.
    moments: HashMap<String, Vec<f32>>,
}

impl Adam {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            moments: HashMap::new(),
        }
    }

    /// `torch.optim.AdamW` with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn adamw(lr: f64) -> Self {
        Self {
            weight_decay: 0.01,
            decoupled: true,
            ..Self::new(lr)
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()> {
        let (lr, (beta1, beta2), eps, wd, decoupled) =
            (self.lr, self.betas, self.eps, self.weight_decay, self.decoupled);
        update_parameters(
            module,
            grads,
            &mut self.moments,
            |n| 1 + 2 * n,
            |p, grad, state| {
                let n = p.len();
                state[0] += 1.0;
                let t = state[0] as i32;
                let (m, v) = state[1..].split_at_mut(n);
                let step_size = (lr / (1.0 - beta1.powi(t))) as f32;
                let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt() as f32;
                // Scalars rounded to f32 as PyTorch's kernels receive them.
                let (lerp_weight, b2, one_minus_b2) = ((1.0 - beta1) as f32, beta2 as f32, (1.0 - beta2) as f32);
                let (eps, keep, l2) = (eps as f32, (1.0 - lr * wd) as f32, wd as f32);
                for i in 0..n {
                    let mut g = grad[i];
                    if wd != 0.0 {
                        if decoupled {
                            p[i] *= keep;
                        } else {
                            g += l2 * p[i];
                        }
                    }
                    m[i] += lerp_weight * (g - m[i]);
                    v[i] = v[i] * b2 + one_minus_b2 * g * g;
                    let denom = v[i].sqrt() / bias_correction2_sqrt + eps;
                    p[i] += -step_size * (m[i] / denom);
                }
            },
        )
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
