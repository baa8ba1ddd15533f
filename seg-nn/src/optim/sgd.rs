use seg_tensor::{Result, Tensor};

use super::{update_parameters, DeviceState, Optimizer, ParamGrads, States, Update};
use crate::Module;

/// `torch.optim.SGD` (nnU-Net trains with momentum 0.99, Nesterov): with `g = grad + weight_decay
/// p`, momentum `mu` and dampening `d`, the buffer is `b = g` on the first step and `b = mu b + (1 -
/// d) g` after; the step direction is `g + mu b` with Nesterov, `b` without (and `g` when `mu` is
/// 0); `p -= lr direction`.
#[derive(Clone, Debug)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Per parameter: the momentum buffer (see [`SgdUpdate::state_len`]).
    states: States,
}

impl Sgd {
    /// Plain SGD with learning rate `lr` (PyTorch's defaults otherwise: no momentum, no decay).
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            states: States::default(),
        }
    }

    /// SGD with `momentum`, Nesterov or not.
    pub fn with_momentum(lr: f64, momentum: f64, nesterov: bool) -> Self {
        Self {
            momentum,
            nesterov,
            ..Self::new(lr)
        }
    }
}

/// One step's constants, in f32 as the host update uses them.
pub(super) struct SgdUpdate {
    lr: f32,
    mu: f32,
    undamped: f32,
    wd: f32,
    nesterov: bool,
}

impl Update for SgdUpdate {
    /// `[started flag, buffer...]` with momentum, nothing without.
    fn state_len(&self, n: usize) -> usize {
        if self.mu != 0.0 {
            n + 1
        } else {
            0
        }
    }

    fn host(&self, p: &mut [f32], grad: &[f32], state: &mut [f32]) {
        let SgdUpdate {
            lr,
            mu,
            undamped,
            wd,
            nesterov,
        } = *self;
        let started = state.first().is_some_and(|&s| s != 0.0);
        for (i, (p, &g)) in p.iter_mut().zip(grad).enumerate() {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            let direction = if mu != 0.0 {
                let b = &mut state[i + 1];
                *b = if started { mu * *b + undamped * g } else { g };
                if nesterov {
                    g + mu * *b
                } else {
                    *b
                }
            } else {
                g
            };
            *p -= lr * direction;
        }
        if let Some(s) = state.first_mut() {
            *s = 1.0;
        }
    }

    /// `tensors`: `[buffer]` with momentum.
    fn device(&self, p: &Tensor, grad: &Tensor, state: &mut DeviceState) -> Result<Tensor> {
        let f = f64::from;
        let g = if self.wd != 0.0 {
            grad.add(&p.mul_scalar(f(self.wd))?)?
        } else {
            grad.clone()
        };
        let direction = if self.mu != 0.0 {
            let b = match state.tensors.first() {
                Some(b) => b.mul_scalar(f(self.mu))?.add(&g.mul_scalar(f(self.undamped))?)?,
                None => g.clone(),
            };
            state.tensors = vec![b.clone()];
            if self.nesterov {
                g.add(&b.mul_scalar(f(self.mu))?)?
            } else {
                b
            }
        } else {
            g
        };
        p.sub(&direction.mul_scalar(f(self.lr))?)
    }
}

impl Sgd {
    /// This step's constants.
    pub(super) fn update(&self) -> SgdUpdate {
        SgdUpdate {
            lr: self.lr as f32,
            mu: self.momentum as f32,
            undamped: (1.0 - self.dampening) as f32,
            wd: self.weight_decay as f32,
            nesterov: self.nesterov,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()> {
        let update = self.update();
        update_parameters(module, grads, &mut self.states, &update)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
