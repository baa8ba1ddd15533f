use seg_tensor::{ConvOptions, ConvTransposeOptions, Error, Result, Tensor};

use super::{weight_bias_module, Layer};
use crate::init::{default_uniform, Seeds};

/// `nn.Conv{1,2,3}d` (the rank is the kernel's): weight `(out, in / groups, *kernel)`, optional
/// bias `(out)`; parameters `weight`, `bias`.
#[derive(Clone, Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub options: ConvOptions,
}

/// `(weight, bias)` initialised as PyTorch does: uniform in `±1/sqrt(fan_in)`, `fan_in = shape[1]
/// prod(kernel)` of the weight.
fn init(weight_shape: &[usize], bias_len: Option<usize>, seed: u64) -> Result<(Tensor, Option<Tensor>)> {
    let fan_in = weight_shape[1..].iter().product();
    let mut seeds = Seeds::new(seed);
    let weight = default_uniform(weight_shape, fan_in, seeds.next_seed())?;
    let bias = bias_len
        .map(|n| default_uniform(&[n], fan_in, seeds.next_seed()))
        .transpose()?;
    Ok((weight, bias))
}

fn check_groups(layer: &'static str, in_channels: usize, out_channels: usize, groups: usize) -> Result<()> {
    if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(Error::invalid(
            layer,
            format!("{in_channels} input and {out_channels} output channels do not split into {groups} groups"),
        ));
    }
    Ok(())
}

impl Conv {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: &[usize],
        options: ConvOptions,
        bias: bool,
        seed: u64,
    ) -> Result<Self> {
        check_groups("Conv", in_channels, out_channels, options.groups)?;
        let shape: Vec<usize> = [out_channels, in_channels / options.groups]
            .into_iter()
            .chain(kernel_size.iter().copied())
            .collect();
        let (weight, bias) = init(&shape, bias.then_some(out_channels), seed)?;
        Ok(Self { weight, bias, options })
    }
}

impl Layer for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv(&self.weight, self.bias.as_ref(), &self.options)
    }
}

/// `nn.ConvTranspose{1,2,3}d`: weight `(in, out / groups, *kernel)`, optional bias `(out)`.
#[derive(Clone, Debug)]
pub struct ConvTranspose {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub options: ConvTransposeOptions,
}

impl ConvTranspose {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: &[usize],
        options: ConvTransposeOptions,
        bias: bool,
        seed: u64,
    ) -> Result<Self> {
        check_groups("ConvTranspose", in_channels, out_channels, options.groups)?;
        let shape: Vec<usize> = [in_channels, out_channels / options.groups]
            .into_iter()
            .chain(kernel_size.iter().copied())
            .collect();
        let (weight, bias) = init(&shape, bias.then_some(out_channels), seed)?;
        Ok(Self { weight, bias, options })
    }
}

impl Layer for ConvTranspose {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose(&self.weight, self.bias.as_ref(), &self.options)
    }
}

weight_bias_module!(Conv, ConvTranspose);
