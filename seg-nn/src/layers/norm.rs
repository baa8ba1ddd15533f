use std::sync::Mutex;

use seg_tensor::{BatchNormStats, DType, Result, Tensor};

use super::{weight_bias_module, Layer};
use crate::init::constant;
use crate::Module;

/// Weight 1 and bias 0 of `shape` when `affine`, as PyTorch initialises norm layers.
fn affine_params(shape: &[usize], affine: bool) -> (Option<Tensor>, Option<Tensor>) {
    if affine {
        (Some(constant(shape, 1.0)), Some(constant(shape, 0.0)))
    } else {
        (None, None)
    }
}

/// `nn.InstanceNorm{1,2,3}d(C, eps, affine)` without running statistics (PyTorch's default): each
/// `(n, c)` map normalised by its own mean and biased variance, then `* weight[c] + bias[c]`.
#[derive(Clone, Debug)]
pub struct InstanceNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl InstanceNorm {
    pub fn new(channels: usize, affine: bool, eps: f64) -> Self {
        let (weight, bias) = affine_params(&[channels], affine);
        Self { weight, bias, eps }
    }
}

impl Layer for InstanceNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.instance_norm(self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// `nn.GroupNorm(num_groups, C, eps, affine)`.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    pub num_groups: usize,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl GroupNorm {
    pub fn new(num_groups: usize, channels: usize, affine: bool, eps: f64) -> Self {
        let (weight, bias) = affine_params(&[channels], affine);
        Self {
            num_groups,
            weight,
            bias,
            eps,
        }
    }
}

impl Layer for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.group_norm(self.num_groups, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// `nn.LayerNorm(normalized_shape, eps, elementwise_affine)` over the trailing axes.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub normalized_shape: Vec<usize>,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(normalized_shape: &[usize], affine: bool, eps: f64) -> Self {
        let (weight, bias) = affine_params(normalized_shape, affine);
        Self {
            normalized_shape: normalized_shape.to_vec(),
            weight,
            bias,
            eps,
        }
    }
}

impl Layer for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.layer_norm(
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
}

weight_bias_module!(InstanceNorm, GroupNorm, LayerNorm);

/// `nn.BatchNorm{1,2,3}d(C, eps, momentum, affine)` with running statistics: batch statistics in
/// training (updating the running ones), the running ones in evaluation. `state_dict` names:
/// `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
#[derive(Debug)]
pub struct BatchNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
    /// `None`: the cumulative average.
    pub momentum: Option<f64>,
    stats: Mutex<BatchNormStats>,
    training: bool,
}

impl BatchNorm {
    pub fn new(channels: usize, affine: bool, eps: f64, momentum: Option<f64>) -> Self {
        let (weight, bias) = affine_params(&[channels], affine);
        Self {
            weight,
            bias,
            eps,
            momentum,
            stats: Mutex::new(BatchNormStats::new(channels, DType::F32)),
            training: true,
        }
    }

    /// A copy of the running statistics.
    pub fn stats(&self) -> BatchNormStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Module for BatchNorm {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, t) in [("weight", &self.weight), ("bias", &self.bias)] {
            if let Some(t) = t {
                f(name, t);
            }
        }
        let stats = self.stats();
        f("running_mean", &stats.running_mean);
        f("running_var", &stats.running_var);
        f("num_batches_tracked", &Tensor::scalar(stats.num_batches_tracked as i64));
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (name, t) in [("weight", &mut self.weight), ("bias", &mut self.bias)] {
            if let Some(t) = t {
                f(name, t);
            }
        }
        let stats = self.stats.get_mut().unwrap_or_else(|e| e.into_inner());
        f("running_mean", &mut stats.running_mean);
        f("running_var", &mut stats.running_var);
        let mut count = Tensor::scalar(stats.num_batches_tracked as i64);
        f("num_batches_tracked", &mut count);
        stats.num_batches_tracked = count.item().map_or(stats.num_batches_tracked, |c| c as u64);
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl Layer for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        x.batch_norm(
            Some(&mut stats),
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.training,
            self.momentum,
            self.eps,
        )
    }
}
