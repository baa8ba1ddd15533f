use seg_tensor::{Result, Tensor};

use super::Layer;
use crate::Module;

/// A parameter-free activation, as PyTorch's `nn.ReLU`, `nn.LeakyReLU(negative_slope)`, `nn.GELU`
/// (exact, erf form), `nn.SiLU`, `nn.Sigmoid`, `nn.Tanh`, or the identity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    LeakyRelu(f64),
    Gelu,
    Silu,
    Sigmoid,
    Tanh,
}

impl Module for Activation {
    fn visit(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_mut(&mut self, _f: &mut dyn FnMut(&str, &mut Tensor)) {}
}

impl Layer for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.leaky_relu(slope),
            Activation::Gelu => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        }
    }
}
