//! SegMamba (Z. Xing, T. Ye, Y. Yang, G. Liu, L. Zhu, "SegMamba: Long-range Sequential Modeling
//! Mamba For 3D Medical Image Segmentation", MICCAI 2024, arXiv:2401.13560;
//! github.com/ge-xing/SegMamba, `model_segmamba/segmamba.py`) with its `state_dict` names.
//!
//! With `feat_size` `f` and `hidden_size` `h`, on a `(N, in_chans, D, H, W)` input (each size a
//! multiple of 16):
//!
//! - `vit`: the Mamba encoder (see `segmamba_encoder.rs`): a 7x7x7 stride-2 stem and three 2x2x2
//!   stride-2 downsamplings give maps of `f[0..4]` channels at 1/2 .. 1/16 of the input; each stage
//!   runs a gated spatial convolution (`GSC`), then `depths[i]` tri-oriented Mamba layers (ToM:
//!   mamba_ssm's block scanning the row-major tokens forward, reversed, and slice-interleaved over
//!   `num_slices[i]` slices, each direction with its own parameters, the three summed before
//!   `out_proj`; the layer adds its input), and hands on `MlpChannel(instance_norm(map))`.
//! - `encoder1` .. `encoder5`: MONAI's `UnetrBasicBlock` (residual, kernel 3) on the input (to
//!   `f[0]`) and the four encoder maps (to `f[1]`, `f[2]`, `f[3]`, `h`).
//! - `decoder5` .. `decoder2`: MONAI's `UnetrUpBlock` (2x2x2 transposed convolution, concatenation
//!   with the skip, residual block) from `h` back to `f[0]` at full resolution; `decoder1`: a
//!   `UnetrBasicBlock` `f[0] -> f[0]`; `out`: MONAI's `UnetOutBlock` (1x1x1 convolution to
//!   `out_chans`).
//!
//! The reference fixes `num_slices` to `[64, 32, 16, 8]`, the depths of the four maps of a 128^3
//! input (each slice then one axial plane), and every map's token count must be a multiple of it;
//! [`SegMambaConfig::num_slices`] makes it an argument with that default. The reference also builds
//! its output block on 48 channels, its default `f[0]`; here it takes `f[0]`.
//!
//! Parameters of the default configuration ([`SegMambaConfig::new`]: `in_chans` 1, depths `[2, 2,
//! 2, 2]`, `feat_size` `[48, 96, 192, 384]`, `hidden_size` 768): 67,362,625 + 49 `out_chans`
//! (67,362,674 for two classes, 67,362,772 for four); PyTorch counts the same for the reference in
//! `tests/fixtures-extra/generate_segmamba.py`.

use seg_nn::layers::{Conv, Layer};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{Error, Result, Tensor};

use crate::segmamba_encoder::{EncoderConfig, MambaEncoder};
use crate::unetr_blocks::{out_block, UnetResBlock, UnetrUpBlock};

/// SegMamba's constructor arguments (`in_chans`, `out_chans`, `depths`, `feat_size`, `hidden_size`)
/// and the Mamba layers' slice counts per stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegMambaConfig {
    pub in_chans: usize,
    pub out_chans: usize,
    /// Mamba layers per encoder stage.
    pub depths: [usize; 4],
    /// Channels of the four encoder stages (and of the decoder at their resolutions).
    pub feat_size: [usize; 4],
    /// Channels of the bottleneck block `encoder5`.
    pub hidden_size: usize,
    /// `nslices` of the tri-oriented Mamba layers of each stage: the stage's token count (its
    /// map's voxels) must be a multiple of it.
    pub num_slices: [usize; 4],
}

impl SegMambaConfig {
    /// SegMamba's defaults: depths `[2, 2, 2, 2]`, `feat_size` `[48, 96, 192, 384]`, `hidden_size`
    /// 768, `num_slices` `[64, 32, 16, 8]` (for a 128^3 input).
    pub fn new(in_chans: usize, out_chans: usize) -> Self {
        Self {
            in_chans,
            out_chans,
            depths: [2; 4],
            feat_size: [48, 96, 192, 384],
            hidden_size: 768,
            num_slices: [64, 32, 16, 8],
        }
    }

    /// The defaults with `num_slices` the depths of the four maps of a `patch`-sized input (each
    /// slice one axial plane, as the reference's `[64, 32, 16, 8]` for 128^3).
    pub fn for_patch(in_chans: usize, out_chans: usize, patch: &[usize; 3]) -> Self {
        Self {
            num_slices: [1, 2, 3, 4].map(|i| (patch[0] >> i).max(1)),
            ..Self::new(in_chans, out_chans)
        }
    }
}

/// SegMamba.
pub struct SegMamba {
    pub config: SegMambaConfig,
    vit: MambaEncoder,
    /// `encoder1` .. `encoder5`.
    encoders: Vec<UnetResBlock>,
    /// `decoder5` .. `decoder2`.
    decoders: Vec<UnetrUpBlock>,
    decoder1: UnetResBlock,
    out: Conv,
}

const ENCODER_NAMES: [&str; 5] = ["encoder1", "encoder2", "encoder3", "encoder4", "encoder5"];
const DECODER_NAMES: [&str; 4] = ["decoder5", "decoder4", "decoder3", "decoder2"];

impl SegMamba {
    pub fn new(config: SegMambaConfig, seed: u64) -> Result<Self> {
        let c = &config;
        let sizes = [c.in_chans, c.out_chans, c.hidden_size];
        if sizes.contains(&0) || c.feat_size.contains(&0) || c.num_slices.contains(&0) {
            return Err(Error::invalid(
                "SegMamba",
                format!("channel and slice counts must be positive: {config:?}"),
            ));
        }
        let f = &c.feat_size;
        let encoder = EncoderConfig {
            in_chans: c.in_chans,
            depths: &c.depths,
            dims: f,
            num_slices: &c.num_slices,
        };
        let vit = MambaEncoder::new(&encoder, seed)?;
        let encoder_channels = [
            (c.in_chans, f[0]),
            (f[0], f[1]),
            (f[1], f[2]),
            (f[2], f[3]),
            (f[3], c.hidden_size),
        ];
        let encoders = encoder_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| UnetResBlock::new(3, cin, cout, seed + 60_000 + 10 * i as u64))
            .collect::<Result<Vec<_>>>()?;
        let decoder_channels = [(c.hidden_size, f[3]), (f[3], f[2]), (f[2], f[1]), (f[1], f[0])];
        let decoders = decoder_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| UnetrUpBlock::new(3, cin, cout, seed + 70_000 + 100 * i as u64))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            decoder1: UnetResBlock::new(3, f[0], f[0], seed + 80_000)?,
            out: out_block(3, f[0], c.out_chans, seed + 90_000)?,
            config,
            vit,
            encoders,
            decoders,
        })
    }

    /// Logits `(N, out_chans, D, H, W)` of an input `(N, in_chans, D, H, W)`, every spatial size a
    /// multiple of 16 (and each stage's voxel count a multiple of its `num_slices`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        if x.rank() != 5 || x.shape()[1] != c.in_chans || x.shape()[2..].iter().any(|s| *s == 0 || s % 16 != 0) {
            return Err(Error::ShapeMismatch {
                op: "SegMamba",
                expected: format!(
                    "(N, {}, D, H, W) with D, H, W positive multiples of 16 (four halvings)",
                    c.in_chans
                ),
                found: x.shape().to_vec(),
            });
        }
        let maps = self.vit.forward(x)?;
        let e = &self.encoders;
        let skips = [
            e[0].forward(x)?,
            e[1].forward(&maps[0])?,
            e[2].forward(&maps[1])?,
            e[3].forward(&maps[2])?,
        ];
        let mut y = e[4].forward(&maps[3])?;
        for (decoder, skip) in self.decoders.iter().zip(skips.iter().rev()) {
            y = decoder.forward(&y, skip)?;
        }
        self.out.forward(&self.decoder1.forward(&y)?)
    }
}

impl Module for SegMamba {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("vit", &self.vit, f);
        for (name, e) in ENCODER_NAMES.iter().zip(&self.encoders) {
            visit_child(&format!("{name}.layer"), e, f);
        }
        for (name, d) in DECODER_NAMES.iter().zip(&self.decoders) {
            visit_child(name, d, f);
        }
        visit_child("decoder1.layer", &self.decoder1, f);
        visit_child("out.conv.conv", &self.out, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("vit", &mut self.vit, f);
        for (name, e) in ENCODER_NAMES.iter().zip(&mut self.encoders) {
            visit_child_mut(&format!("{name}.layer"), e, f);
        }
        for (name, d) in DECODER_NAMES.iter().zip(&mut self.decoders) {
            visit_child_mut(name, d, f);
        }
        visit_child_mut("decoder1.layer", &mut self.decoder1, f);
        visit_child_mut("out.conv.conv", &mut self.out, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::DType;

    fn small() -> SegMambaConfig {
        SegMambaConfig {
            in_chans: 2,
            out_chans: 3,
            depths: [1, 2, 1, 2],
            feat_size: [3, 4, 5, 6],
            hidden_size: 7,
            num_slices: [8, 4, 2, 1],
        }
    }

    #[test]
    fn names_match_the_reference() {
        let net = SegMamba::new(small(), 0).unwrap();
        let mut names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
        names.sort();
        let mut expected = vec![
            "out.conv.conv.weight".to_string(),
            "out.conv.conv.bias".to_string(),
            "decoder1.layer.conv1.conv.weight".to_string(),
            "decoder1.layer.conv2.conv.weight".to_string(),
        ];
        for i in 0..4 {
            let conv = if i == 0 { 0 } else { 1 };
            for p in ["weight", "bias"] {
                expected.push(format!("vit.downsample_layers.{i}.{conv}.{p}"));
                for proj in ["proj", "proj2", "proj3", "proj4"] {
                    expected.push(format!("vit.gscs.{i}.{proj}.{p}"));
                }
                for fc in ["fc1", "fc2"] {
                    expected.push(format!("vit.mlps.{i}.{fc}.{p}"));
                }
            }
            for j in 0..small().depths[i] {
                let layer = format!("vit.stages.{i}.{j}");
                expected.extend(["norm.weight", "norm.bias"].map(|n| format!("{layer}.{n}")));
                expected.extend(["in_proj.weight", "out_proj.weight"].map(|n| format!("{layer}.mamba.{n}")));
                for s in ["", "_b", "_s"] {
                    for n in [
                        "conv1d{s}.weight",
                        "conv1d{s}.bias",
                        "x_proj{s}.weight",
                        "dt_proj{s}.weight",
                    ] {
                        expected.push(format!("{layer}.mamba.{}", n.replace("{s}", s)));
                    }
                    for n in ["dt_proj{s}.bias", "A{s}_log", "D{s}"] {
                        expected.push(format!("{layer}.mamba.{}", n.replace("{s}", s)));
                    }
                }
            }
        }
        // Every encoder block changes the channel count, so each has the residual's `conv3`.
        for e in ENCODER_NAMES {
            expected.extend(["conv1", "conv2", "conv3"].map(|c| format!("{e}.layer.{c}.conv.weight")));
        }
        for d in DECODER_NAMES {
            expected.push(format!("{d}.transp_conv.conv.weight"));
            expected.extend(["conv1", "conv2", "conv3"].map(|c| format!("{d}.conv_block.{c}.conv.weight")));
        }
        expected.sort();
        assert_eq!(names, expected);
        // 241 tensors, as the reference's state_dict for this configuration.
        assert_eq!(names.len(), 241);
    }

    #[test]
    fn forward_backward_shapes_and_bad_input() {
        let net = SegMamba::new(small(), 1).unwrap();
        let x = Tensor::randn(&[2, 2, 16, 32, 16], 2, DType::F32)
            .unwrap()
            .requires_grad();
        let y = net.forward(&x).unwrap();
        assert_eq!(y.shape(), &[2, 3, 16, 32, 16]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().shape(), x.shape());
        for (name, p) in net.named_parameters() {
            assert_eq!(
                grads.get(&p).map(|g| g.shape().to_vec()),
                Some(p.shape().to_vec()),
                "{name}"
            );
        }
        let odd = Tensor::zeros(&[1, 2, 16, 24, 16], DType::F32);
        assert!(net.forward(&odd).unwrap_err().to_string().contains("multiples of 16"));
        // Stage 0 of a 16^3 input has 8^3 tokens, not a multiple of 3 slices.
        let mut bad = small();
        bad.num_slices[0] = 3;
        let net = SegMamba::new(bad, 0).unwrap();
        let x = Tensor::zeros(&[1, 2, 16, 16, 16], DType::F32);
        assert!(net
            .forward(&x)
            .unwrap_err()
            .to_string()
            .contains("multiple of nslices 3"));
    }

    #[test]
    fn default_parameter_count() {
        for (classes, expected) in [(2, 67_362_674), (4, 67_362_772)] {
            let n = SegMamba::new(SegMambaConfig::new(1, classes), 0)
                .unwrap()
                .num_parameters();
            println!("SegMamba default (in 1, out {classes}): {n} parameters");
            assert_eq!(n, expected);
        }
    }
}
