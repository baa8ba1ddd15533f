use seg_tensor::{Result, Tensor};

use super::{update_parameters, DeviceState, Optimizer, ParamGrads, States, Update};
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
    /// Per parameter: the step and the moments (see [`AdamUpdate::state_len`]).
    moments: States,
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
            moments: States::default(),
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

/// One step's constants: the hyper-parameters in f64 as given.
pub(super) struct AdamUpdate {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
}

impl AdamUpdate {
    /// At step `t` (from 1): `step_size`, `sqrt(1 - beta2^t)`, and the scalars of the update rounded
    /// to f32 as PyTorch's kernels receive them: `(1 - beta1, beta2, 1 - beta2, eps, 1 - lr wd, wd)`.
    fn scalars(&self, t: i32) -> (f32, f32, [f32; 6]) {
        let (lr, (beta1, beta2), wd) = (self.lr, self.betas, self.weight_decay);
        let step_size = (lr / (1.0 - beta1.powi(t))) as f32;
        let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt() as f32;
        let rounded = [1.0 - beta1, beta2, 1.0 - beta2, self.eps, 1.0 - lr * wd, wd].map(|v| v as f32);
        (step_size, bias_correction2_sqrt, rounded)
    }
}

impl Update for AdamUpdate {
    /// `[t, m..., v...]`.
    fn state_len(&self, n: usize) -> usize {
        1 + 2 * n
    }

    fn host(&self, p: &mut [f32], grad: &[f32], state: &mut [f32]) {
        let n = p.len();
        state[0] += 1.0;
        let (step_size, bias_correction2_sqrt, [lerp_weight, b2, one_minus_b2, eps, keep, l2]) =
            self.scalars(state[0] as i32);
        let (m, v) = state[1..].split_at_mut(n);
        let (wd, decoupled) = (self.weight_decay, self.decoupled);
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
    }

    /// `tensors`: `[m, v]`.
    fn device(&self, p: &Tensor, grad: &Tensor, state: &mut DeviceState) -> Result<Tensor> {
        let (step_size, bias_correction2_sqrt, [lerp_weight, b2, one_minus_b2, eps, keep, l2]) =
            self.scalars(state.steps as i32 + 1);
        let f = f64::from;
        let (mut p, mut g) = (p.clone(), grad.clone());
        if self.weight_decay != 0.0 {
            if self.decoupled {
                p = p.mul_scalar(f(keep))?;
            } else {
                g = g.add(&p.mul_scalar(f(l2))?)?;
            }
        }
        let (m, v) = match state.tensors.as_slice() {
            [m, v] => (m.clone(), v.clone()),
            _ => {
                let zeros = Tensor::zeros_on(g.shape(), g.dtype(), g.device())?;
                (zeros.clone(), zeros)
            }
        };
        let m = m.add(&g.sub(&m)?.mul_scalar(f(lerp_weight))?)?;
        let v = v.mul_scalar(f(b2))?.add(&g.mul(&g)?.mul_scalar(f(one_minus_b2))?)?;
        let denom = v.sqrt()?.affine(1.0 / f(bias_correction2_sqrt), f(eps))?;
        let p = p.sub(&m.div(&denom)?.mul_scalar(f(step_size))?)?;
        state.tensors = vec![m, v];
        Ok(p)
    }
}

impl Adam {
    /// This step's constants.
    pub(super) fn update(&self) -> AdamUpdate {
        AdamUpdate {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()> {
        let update = self.update();
        update_parameters(module, grads, &mut self.moments, &update)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
