//! The residual blocks U-Mamba's networks are made of, with their `state_dict` names.
//!
//! - [`ResBlock`]: U-Mamba's `BasicResBlock` with its 1x1 projection (`use_1x1conv=True`, the only
//!   way U-Mamba builds it).
//! - [`BasicBlockD`]: `dynamic_network_architectures`' ResNet-D block, stride 1 and as many output
//!   as input channels (the only way U-Mamba builds it), so that its skip is the identity.
//! - [`ResStage`]: `nn.Sequential(ResBlock, BasicBlockD, ...)`, a U-Mamba stage.

use seg_nn::layers::{Activation, Conv, InstanceNorm, Layer};
use seg_nn::{visit_child, visit_child_aliases, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvPadding, Result, Tensor};

use crate::blocks::{BlockStyle, ConvNormAct};

/// U-Mamba's `BasicResBlock`:
/// `y = act(norm2(conv2(act(norm1(conv1(x))))) + conv3(x))`, `conv1` (stride `stride`) and `conv2`
/// with kernel `k` padded by `k / 2`, `conv3` a 1x1 convolution with the same stride; every
/// convolution has a bias (U-Mamba leaves `conv_bias` out of this block), the norms are instance
/// norms (affine, eps 1e-5), `act` LeakyReLU(0.01). Parameters `conv1.*`, `norm1.*`, `conv2.*`,
/// `norm2.*`, `conv3.*`.
pub struct ResBlock {
    conv1: Conv,
    norm1: InstanceNorm,
    conv2: Conv,
    norm2: InstanceNorm,
    conv3: Conv,
    act: Activation,
}

impl ResBlock {
    pub fn new(in_channels: usize, out_channels: usize, kernel: &[usize], stride: &[usize], seed: u64) -> Result<Self> {
        let conv = |cin: usize, kernel: &[usize], stride: &[usize], pad: bool, seed: u64| {
            let options = ConvOptions {
                stride: stride.to_vec(),
                padding: ConvPadding::Explicit(if pad {
                    kernel.iter().map(|k| k / 2).collect()
                } else {
                    vec![0]
                }),
                ..ConvOptions::default()
            };
            Conv::new(cin, out_channels, kernel, options, true, seed)
        };
        let ones = vec![1; kernel.len()];
        Ok(Self {
            conv1: conv(in_channels, kernel, stride, true, seed)?,
            norm1: InstanceNorm::new(out_channels, true, 1e-5),
            conv2: conv(out_channels, kernel, &[1], true, seed + 1)?,
            norm2: InstanceNorm::new(out_channels, true, 1e-5),
            conv3: conv(in_channels, &ones, stride, false, seed + 2)?,
            act: Activation::LeakyRelu(0.01),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.act.forward(&self.norm1.forward(&self.conv1.forward(x)?)?)?;
        let y = self.norm2.forward(&self.conv2.forward(&y)?)?;
        self.act.forward(&y.add(&self.conv3.forward(x)?)?)
    }
}

impl Module for ResBlock {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv1", &self.conv1, f);
        visit_child("norm1", &self.norm1, f);
        visit_child("conv2", &self.conv2, f);
        visit_child("norm2", &self.norm2, f);
        visit_child("conv3", &self.conv3, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("conv1", &mut self.conv1, f);
        visit_child_mut("norm1", &mut self.norm1, f);
        visit_child_mut("conv2", &mut self.conv2, f);
        visit_child_mut("norm2", &mut self.norm2, f);
        visit_child_mut("conv3", &mut self.conv3, f);
    }
}

/// `BasicBlockD` with stride 1 and `channels` in and out:
/// `y = act(conv2(conv1(x)) + x)`, `conv1` a `ConvDropoutNormReLU` (conv padded by `(k - 1) / 2`,
/// instance norm, LeakyReLU(0.01)), `conv2` the same without the activation. Parameters
/// `conv{1,2}.conv.*`, `conv{1,2}.norm.*` (aliases `conv{1,2}.all_modules.{0,1}.*`).
pub struct BasicBlockD {
    conv1: ConvNormAct,
    conv2: ConvNormAct,
    act: Activation,
}

impl BasicBlockD {
    pub fn new(style: BlockStyle, channels: usize, kernel: &[usize], seed: u64) -> Result<Self> {
        let mut conv2 = ConvNormAct::new(style, channels, channels, kernel, &[1], seed + 1)?;
        conv2.act = Activation::Identity;
        Ok(Self {
            conv1: ConvNormAct::new(style, channels, channels, kernel, &[1], seed)?,
            conv2,
            act: Activation::LeakyRelu(style.negative_slope),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv2.forward(&self.conv1.forward(x)?)?;
        self.act.forward(&y.add(x)?)
    }
}

impl Module for BasicBlockD {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv1", &self.conv1, f);
        visit_child("conv2", &self.conv2, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("conv1", &mut self.conv1, f);
        visit_child_mut("conv2", &mut self.conv2, f);
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        visit_child_aliases("conv1", &self.conv1, f);
        visit_child_aliases("conv2", &self.conv2, f);
    }
}

/// A U-Mamba stage: a [`ResBlock`] (`0.*`, from `in_channels` to `out_channels` with `stride`), then
/// `n_blocks - 1` [`BasicBlockD`]s (`1.*`, `2.*`, ...).
pub struct ResStage {
    first: ResBlock,
    rest: Vec<BasicBlockD>,
}

impl ResStage {
    pub fn new(
        style: BlockStyle,
        n_blocks: usize,
        in_channels: usize,
        out_channels: usize,
        kernel: &[usize],
        stride: &[usize],
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            first: ResBlock::new(in_channels, out_channels, kernel, stride, seed)?,
            rest: (1..n_blocks)
                .map(|i| BasicBlockD::new(style, out_channels, kernel, seed + 10 * i as u64))
                .collect::<Result<_>>()?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.first.forward(x)?;
        self.rest.iter().try_fold(y, |y, block| block.forward(&y))
    }
}

impl Module for ResStage {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("0", &self.first, f);
        for (i, b) in self.rest.iter().enumerate() {
            visit_child(&format!("{}", i + 1), b, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("0", &mut self.first, f);
        for (i, b) in self.rest.iter_mut().enumerate() {
            visit_child_mut(&format!("{}", i + 1), b, f);
        }
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        for (i, b) in self.rest.iter().enumerate() {
            visit_child_aliases(&format!("{}", i + 1), b, f);
        }
    }
}
