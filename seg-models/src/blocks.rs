//! The convolution block both U-Nets are made of: conv, instance norm, dropout, LeakyReLU.

use seg_nn::layers::{Activation, Conv, Dropout, InstanceNorm, Layer};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvPadding, Result, Tensor};

/// How a block's parameters are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// MONAI's `Convolution` with ADN ordering "NDA": `conv.*`, `adn.N.*`.
    Monai,
    /// nnU-Net's `ConvDropoutNormReLU`: `conv.*`, `norm.*`, and the same modules again as
    /// `all_modules.{0, 1}.*`.
    NnUnet,
}

/// `y = leaky_relu(dropout(instance_norm(conv(x))))` (MONAI's order) or
/// `leaky_relu(instance_norm(dropout(conv(x))))` (nnU-Net's), the conv padded by `(k - 1) / 2`.
pub struct ConvNormAct {
    pub conv: Conv,
    pub norm: InstanceNorm,
    pub dropout: Option<Dropout>,
    pub act: Activation,
    pub naming: Naming,
}

/// The hyper-parameters shared by every block of a network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockStyle {
    pub naming: Naming,
    pub bias: bool,
    pub negative_slope: f64,
    pub dropout: f64,
}

impl ConvNormAct {
    pub fn new(
        style: BlockStyle,
        in_channels: usize,
        out_channels: usize,
        kernel_size: &[usize],
        stride: &[usize],
        seed: u64,
    ) -> Result<Self> {
        let options = ConvOptions {
            stride: stride.to_vec(),
            padding: ConvPadding::Explicit(kernel_size.iter().map(|k| (k - 1) / 2).collect()),
            ..ConvOptions::default()
        };
        Ok(Self {
            conv: Conv::new(in_channels, out_channels, kernel_size, options, style.bias, seed)?,
            norm: InstanceNorm::new(out_channels, true, 1e-5),
            dropout: (style.dropout > 0.0)
                .then(|| Dropout::new(style.dropout, seed ^ 0xd0))
                .transpose()?,
            act: Activation::LeakyRelu(style.negative_slope),
            naming: style.naming,
        })
    }

    fn norm_name(&self) -> &'static str {
        match self.naming {
            Naming::Monai => "adn.N",
            Naming::NnUnet => "norm",
        }
    }
}

impl Module for ConvNormAct {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv", &self.conv, f);
        visit_child(self.norm_name(), &self.norm, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        let norm_name = self.norm_name();
        visit_child_mut("conv", &mut self.conv, f);
        visit_child_mut(norm_name, &mut self.norm, f);
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        if self.naming == Naming::NnUnet {
            // all_modules = Sequential(conv, [dropout,] norm, nonlin).
            let norm_index = if self.dropout.is_some() { 2 } else { 1 };
            self.conv
                .visit(&mut |name, _| f(&format!("all_modules.0.{name}"), &format!("conv.{name}")));
            self.norm
                .visit(&mut |name, _| f(&format!("all_modules.{norm_index}.{name}"), &format!("norm.{name}")));
        }
    }

    fn set_training(&mut self, training: bool) {
        if let Some(d) = &mut self.dropout {
            d.set_training(training);
        }
    }
}

impl Layer for ConvNormAct {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dropout = |y: Tensor| match &self.dropout {
            Some(d) => d.forward(&y),
            None => Ok(y),
        };
        let y = self.conv.forward(x)?;
        let y = match self.naming {
            Naming::Monai => dropout(self.norm.forward(&y)?)?,
            Naming::NnUnet => self.norm.forward(&dropout(y)?)?,
        };
        self.act.forward(&y)
    }
}
