//! MONAI's UNETR building blocks (`monai.networks.blocks`), shared by SwinUNETR and SegMamba:
//! `UnetrBasicBlock` with `res_block=True` (a [`UnetResBlock`], named `layer`), `UnetrUpBlock` and
//! `UnetOutBlock`, with instance norm (no affine) and LeakyReLU 0.01 as `norm_name="instance"`.

use seg_nn::layers::{Conv, ConvTranspose, InstanceNorm, Layer};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvPadding, ConvTransposeOptions, Result, Tensor};

/// Convolution options with the same padding and stride on every axis.
pub(crate) fn conv_options(padding: usize, stride: usize) -> ConvOptions {
    ConvOptions {
        stride: vec![stride],
        padding: ConvPadding::Explicit(vec![padding]),
        ..ConvOptions::default()
    }
}

/// MONAI's `UnetResBlock` (inside `UnetrBasicBlock` as `layer`): `conv1`, `conv2` (3, no bias),
/// instance norms without parameters, LeakyReLU 0.01, `conv3` (1x1) on the residual when the channel
/// count changes.
pub(crate) struct UnetResBlock {
    conv1: Conv,
    conv2: Conv,
    conv3: Option<Conv>,
}

impl UnetResBlock {
    pub(crate) fn new(dims: usize, cin: usize, cout: usize, seed: u64) -> Result<Self> {
        let k3 = vec![3; dims];
        Ok(Self {
            conv1: Conv::new(cin, cout, &k3, conv_options(1, 1), false, seed)?,
            conv2: Conv::new(cout, cout, &k3, conv_options(1, 1), false, seed + 1)?,
            conv3: (cin != cout)
                .then(|| Conv::new(cin, cout, &vec![1; dims], conv_options(0, 1), false, seed + 2))
                .transpose()?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let norm = InstanceNorm::new(0, false, 1e-5);
        let y = norm.forward(&self.conv1.forward(x)?)?.leaky_relu(0.01)?;
        let y = norm.forward(&self.conv2.forward(&y)?)?;
        let residual = match &self.conv3 {
            Some(conv3) => norm.forward(&conv3.forward(x)?)?,
            None => x.clone(),
        };
        y.add(&residual)?.leaky_relu(0.01)
    }
}

impl Module for UnetResBlock {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv1.conv", &self.conv1, f);
        visit_child("conv2.conv", &self.conv2, f);
        if let Some(c) = &self.conv3 {
            visit_child("conv3.conv", c, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("conv1.conv", &mut self.conv1, f);
        visit_child_mut("conv2.conv", &mut self.conv2, f);
        if let Some(c) = &mut self.conv3 {
            visit_child_mut("conv3.conv", c, f);
        }
    }
}

/// MONAI's `UnetrUpBlock`: `transp_conv` (2x2, stride 2, no bias), then `conv_block` on
/// `cat(up, skip)`.
pub(crate) struct UnetrUpBlock {
    transp_conv: ConvTranspose,
    conv_block: UnetResBlock,
}

impl UnetrUpBlock {
    pub(crate) fn new(dims: usize, cin: usize, cout: usize, seed: u64) -> Result<Self> {
        let up = ConvTransposeOptions {
            stride: vec![2],
            ..ConvTransposeOptions::default()
        };
        Ok(Self {
            transp_conv: ConvTranspose::new(cin, cout, &vec![2; dims], up, false, seed)?,
            conv_block: UnetResBlock::new(dims, 2 * cout, cout, seed + 10)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        self.conv_block
            .forward(&Tensor::cat(&[&self.transp_conv.forward(x)?, skip], 1)?)
    }
}

impl Module for UnetrUpBlock {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("transp_conv.conv", &self.transp_conv, f);
        visit_child("conv_block", &self.conv_block, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("transp_conv.conv", &mut self.transp_conv, f);
        visit_child_mut("conv_block", &mut self.conv_block, f);
    }
}

/// MONAI's `UnetOutBlock`: a 1x1(x1) convolution with bias (`conv.conv.*`).
pub(crate) fn out_block(dims: usize, in_channels: usize, out_channels: usize, seed: u64) -> Result<Conv> {
    Conv::new(
        in_channels,
        out_channels,
        &vec![1; dims],
        conv_options(0, 1),
        true,
        seed,
    )
}
