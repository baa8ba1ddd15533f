//! SegMamba's encoder (`MambaEncoder`, `vit.*` in its `state_dict`) and its blocks: the gated spatial
//! convolution (`GSC`), the tri-oriented Mamba layers and the channel MLP (`MlpChannel`).

use seg_nn::layers::{Conv, Layer};
use seg_nn::mamba::{MambaConfig, MambaLayer, Orientation};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvPadding, Result, Tensor};

use crate::unetr_blocks::conv_options;

/// `relu(instance_norm(conv(x)))`, instance norm without affine, eps 1e-5.
fn conv_norm_relu(conv: &Conv, x: &Tensor) -> Result<Tensor> {
    conv.forward(x)?.instance_norm(None, None, 1e-5)?.relu()
}

/// SegMamba's gated spatial convolution `GSC(C)`, every convolution `C -> C` with bias, `b(conv, t)
/// = relu(instance_norm(conv(t)))`:
/// `y = b(proj4, b(proj2, b(proj, x)) + b(proj3, x)) + x`, `proj`/`proj2` 3x3x3 (padding 1),
/// `proj3`/`proj4` 1x1x1. Parameters `proj`, `proj2`, `proj3`, `proj4` (`.weight`, `.bias`).
pub(crate) struct Gsc {
    /// `proj`, `proj2`, `proj3`, `proj4`.
    convs: [Conv; 4],
}

const GSC_NAMES: [&str; 4] = ["proj", "proj2", "proj3", "proj4"];

impl Gsc {
    fn new(channels: usize, seed: u64) -> Result<Self> {
        let conv = |k: usize, i: u64| Conv::new(channels, channels, &[k; 3], conv_options(k / 2, 1), true, seed + i);
        Ok(Self {
            convs: [conv(3, 0)?, conv(3, 1)?, conv(1, 2)?, conv(1, 3)?],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [proj, proj2, proj3, proj4] = &self.convs;
        let spatial = conv_norm_relu(proj2, &conv_norm_relu(proj, x)?)?;
        let pointwise = conv_norm_relu(proj3, x)?;
        conv_norm_relu(proj4, &spatial.add(&pointwise)?)?.add(x)
    }
}

impl Module for Gsc {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, conv) in GSC_NAMES.iter().zip(&self.convs) {
            visit_child(name, conv, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (name, conv) in GSC_NAMES.iter().zip(&mut self.convs) {
            visit_child_mut(name, conv, f);
        }
    }
}

/// SegMamba's `MlpChannel(C, 2C)`: `fc2(gelu(fc1(x)))`, 1x1x1 convolutions with bias `C -> 2C -> C`,
/// GELU exact (erf).
pub(crate) struct MlpChannel {
    fc1: Conv,
    fc2: Conv,
}

impl MlpChannel {
    fn new(channels: usize, hidden: usize, seed: u64) -> Result<Self> {
        Ok(Self {
            fc1: Conv::new(channels, hidden, &[1; 3], conv_options(0, 1), true, seed)?,
            fc2: Conv::new(hidden, channels, &[1; 3], conv_options(0, 1), true, seed + 1)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }
}

impl Module for MlpChannel {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("fc1", &self.fc1, f);
        visit_child("fc2", &self.fc2, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("fc1", &mut self.fc1, f);
        visit_child_mut("fc2", &mut self.fc2, f);
    }
}

/// The encoder's hyper-parameters (SegMamba's `MambaEncoder` arguments).
pub(crate) struct EncoderConfig<'a> {
    pub in_chans: usize,
    pub depths: &'a [usize; 4],
    pub dims: &'a [usize; 4],
    pub num_slices: &'a [usize; 4],
}

/// SegMamba's `MambaEncoder`: four stages `i`, each `downsample_layers.{i}` (stage 0: a 7x7x7
/// convolution, stride 2, padding 3, `.0.*`; later: parameter-free instance norm, then a 2x2x2
/// convolution, stride 2, `.1.*`), `gscs.{i}` ([`Gsc`]), `stages.{i}.{j}` (`depths[i]` residual
/// tri-oriented [`MambaLayer`]s over `num_slices[i]` slices: LayerNorm, the Mamba block with d_state
/// 16, d_conv 4, expand 2, plus the input); the stage's output, instance-normalised (`norm{i}`, no
/// parameters) and through `mlps.{i}` ([`MlpChannel`]), is its feature map; the un-normalised map
/// goes on to the next stage.
pub(crate) struct MambaEncoder {
    downsample: Vec<Conv>,
    gscs: Vec<Gsc>,
    stages: Vec<Vec<MambaLayer>>,
    mlps: Vec<MlpChannel>,
}

impl MambaEncoder {
    pub(crate) fn new(c: &EncoderConfig, seed: u64) -> Result<Self> {
        let (mut downsample, mut gscs, mut stages, mut mlps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..4 {
            let (dim, seed) = (c.dims[i], seed + 10_000 * i as u64);
            downsample.push(if i == 0 {
                let stem = ConvOptions {
                    stride: vec![2],
                    padding: ConvPadding::Explicit(vec![3]),
                    ..ConvOptions::default()
                };
                Conv::new(c.in_chans, dim, &[7; 3], stem, true, seed)?
            } else {
                Conv::new(c.dims[i - 1], dim, &[2; 3], conv_options(0, 2), true, seed)?
            });
            gscs.push(Gsc::new(dim, seed + 10)?);
            let mamba = MambaConfig {
                orientation: Orientation::TriOriented {
                    nslices: c.num_slices[i],
                },
                ..MambaConfig::new(dim)
            };
            stages.push(
                (0..c.depths[i])
                    .map(|j| MambaLayer::new(mamba, true, seed + 100 + j as u64))
                    .collect::<Result<Vec<_>>>()?,
            );
            mlps.push(MlpChannel::new(dim, 2 * dim, seed + 20)?);
        }
        Ok(Self {
            downsample,
            gscs,
            stages,
            mlps,
        })
    }

    /// The four feature maps, at 1/2, 1/4, 1/8 and 1/16 of the input's size.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut y = x.clone();
        let mut outs = Vec::with_capacity(4);
        for i in 0..4 {
            if i > 0 {
                y = y.instance_norm(None, None, 1e-5)?;
            }
            y = self.gscs[i].forward(&self.downsample[i].forward(&y)?)?;
            for layer in &self.stages[i] {
                y = layer.forward(&y)?;
            }
            outs.push(self.mlps[i].forward(&y.instance_norm(None, None, 1e-5)?)?);
        }
        Ok(outs)
    }

    /// `downsample_layers.{i}.0` for the stem, `.1` after the norm.
    fn downsample_name(i: usize) -> String {
        format!("downsample_layers.{i}.{}", usize::from(i > 0))
    }
}

impl Module for MambaEncoder {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, conv) in self.downsample.iter().enumerate() {
            visit_child(&Self::downsample_name(i), conv, f);
        }
        for (i, stage) in self.stages.iter().enumerate() {
            for (j, layer) in stage.iter().enumerate() {
                visit_child(&format!("stages.{i}.{j}"), layer, f);
            }
        }
        for (i, gsc) in self.gscs.iter().enumerate() {
            visit_child(&format!("gscs.{i}"), gsc, f);
        }
        for (i, mlp) in self.mlps.iter().enumerate() {
            visit_child(&format!("mlps.{i}"), mlp, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (i, conv) in self.downsample.iter_mut().enumerate() {
            visit_child_mut(&Self::downsample_name(i), conv, f);
        }
        for (i, stage) in self.stages.iter_mut().enumerate() {
            for (j, layer) in stage.iter_mut().enumerate() {
                visit_child_mut(&format!("stages.{i}.{j}"), layer, f);
            }
        }
        for (i, gsc) in self.gscs.iter_mut().enumerate() {
            visit_child_mut(&format!("gscs.{i}"), gsc, f);
        }
        for (i, mlp) in self.mlps.iter_mut().enumerate() {
            visit_child_mut(&format!("mlps.{i}"), mlp, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::{gradcheck, DType};

    #[test]
    fn gsc_and_mlp_differentiate() {
        let mut gsc = Gsc::new(2, 1).unwrap();
        let mut mlp = MlpChannel::new(2, 4, 2).unwrap();
        gsc.visit_mut(&mut |_, p| *p = p.to_dtype(DType::F64).unwrap());
        mlp.visit_mut(&mut |_, p| *p = p.to_dtype(DType::F64).unwrap());
        let x = Tensor::randn(&[1, 2, 3, 2, 3], 3, DType::F64).unwrap();
        gradcheck::check(|t: &[Tensor]| mlp.forward(&gsc.forward(&t[0])?), &[x]).unwrap();
    }
}
