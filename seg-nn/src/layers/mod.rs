//! Layers with PyTorch's parameter names and default initialisation: each one a [`Module`] with a
//! `forward`, usable alone or inside [`Sequential`].

mod activation;
mod checkpointed;
mod conv;
mod dropout;
mod linear;
mod norm;
mod sequential;

pub use activation::Activation;
pub use checkpointed::Checkpointed;
pub use conv::{Conv, ConvTranspose};
pub use dropout::Dropout;
pub use linear::Linear;
pub use norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm};
pub use sequential::Sequential;

use seg_tensor::{Result, Tensor};

use crate::Module;

/// A module with one input and one output.
pub trait Layer: Module + Send + Sync {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// Implements [`Module`] for layers whose parameters are fields `weight` and `bias`, each a
/// `Tensor` or an `Option<Tensor>` (absent when `None`), named `weight` and `bias`.
macro_rules! weight_bias_module {
    ($($layer:ty),*) => {$(
        impl $crate::Module for $layer {
            fn visit(&self, f: &mut dyn FnMut(&str, &seg_tensor::Tensor)) {
                if let Some(t) = $crate::layers::Present::present(&self.weight) {
                    f("weight", t);
                }
                if let Some(t) = $crate::layers::Present::present(&self.bias) {
                    f("bias", t);
                }
            }

            fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut seg_tensor::Tensor)) {
                if let Some(t) = $crate::layers::Present::present_mut(&mut self.weight) {
                    f("weight", t);
                }
                if let Some(t) = $crate::layers::Present::present_mut(&mut self.bias) {
                    f("bias", t);
                }
            }
        }
    )*};
}
pub(crate) use weight_bias_module;

/// A parameter field that may be absent: a `Tensor` always is there, an `Option<Tensor>` maybe.
trait Present {
    fn present(&self) -> Option<&Tensor>;
    fn present_mut(&mut self) -> Option<&mut Tensor>;
}

impl Present for Tensor {
    fn present(&self) -> Option<&Tensor> {
        Some(self)
    }
    fn present_mut(&mut self) -> Option<&mut Tensor> {
        Some(self)
    }
}

impl Present for Option<Tensor> {
    fn present(&self) -> Option<&Tensor> {
        self.as_ref()
    }
    fn present_mut(&mut self) -> Option<&mut Tensor> {
        self.as_mut()
    }
}
