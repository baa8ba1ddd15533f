use seg_tensor::{Result, Tensor};

use super::{weight_bias_module, Layer};
use crate::init::{default_uniform, Seeds};

/// `nn.Linear`: `y = x W^T + b`, `W` `(out, in)`; parameters `weight`, `bias`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch's initialisation: weight and bias uniform in `±1/sqrt(in)`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, seed: u64) -> Result<Self> {
        let mut seeds = Seeds::new(seed);
        Ok(Self {
            weight: default_uniform(&[out_features, in_features], in_features, seeds.next_seed())?,
            bias: if bias {
                Some(default_uniform(&[out_features], in_features, seeds.next_seed())?)
            } else {
                None
            },
        })
    }
}

impl Layer for Linear {
    /// Over the last axis; the leading axes are flattened into one, so that a map of tokens is one
    /// matrix product rather than a batch of small ones.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() <= 2 {
            return x.linear(&self.weight, self.bias.as_ref());
        }
        let y = x.flatten(0, -2)?.linear(&self.weight, self.bias.as_ref())?;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank > 2") = self.weight.shape()[0];
        y.reshape(&shape)
    }
}

weight_bias_module!(Linear);
