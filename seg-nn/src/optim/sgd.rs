use std::collections::HashMap;

use seg_tensor::Result;

use super::{update_parameters, Optimizer, ParamGrads};
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
    /// Per parameter: `[started flag, buffer...]`.
    buffers: HashMap<String, Vec<f32>>,
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
            buffers: HashMap::new(),
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

impl Optimizer for Sgd {
    fn step(&mut self, module: &mut dyn Module, grads: &ParamGrads) -> Result<()> {
        let (lr, mu, undamped, wd, nesterov) = (
            self.lr as f32,
            self.momentum as f32,
            (1.0 - self.dampening) as f32,
            self.weight_decay as f32,
            self.nesterov,
        );
        let state_len = |n| if mu != 0.0 { n + 1 } else { 0 };
        update_parameters(module, grads, &mut self.buffers, state_len, |p, grad, state| {
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
        })
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}
