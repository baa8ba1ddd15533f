//! Learning-rate schedules: functions from the step (or epoch) to the learning rate.

use std::f64::consts::PI;

/// nnU-Net's `PolyLRScheduler`: `lr(t) = initial (1 - t / max_steps)^exponent`, exponent 0.9.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolyLr {
    pub initial_lr: f64,
    pub max_steps: usize,
    pub exponent: f64,
}

impl PolyLr {
    pub fn new(initial_lr: f64, max_steps: usize) -> Self {
        Self {
            initial_lr,
            max_steps,
            exponent: 0.9,
        }
    }

    pub fn lr(&self, step: usize) -> f64 {
        let progress = step.min(self.max_steps) as f64 / self.max_steps.max(1) as f64;
        self.initial_lr * (1.0 - progress).powf(self.exponent)
    }
}

/// Linear warmup then cosine decay: `lr(t) = base t / warmup` for `t < warmup`, then
/// `min_lr + (base - min_lr) (1 + cos(pi p)) / 2` with `p = (t - warmup) / (total - warmup)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineWarmup {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub min_lr: f64,
}

impl CosineWarmup {
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + (PI * progress).cos())
    }
}
