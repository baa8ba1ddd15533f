//! U-Mamba's networks (J. Ma, F. Li, B. Wang, "U-Mamba: Enhancing Long-range Dependency for
//! Biomedical Image Segmentation", arXiv:2401.04722, 2024; github.com/bowang-lab/U-Mamba,
//! `umamba/nnunetv2/nets/UMambaBot_3d.py` and `UMambaEnc_3d.py`) with their `state_dict` names: a
//! residual nnU-Net whose bottleneck feature map goes through one Mamba layer (`UMambaBot`), or
//! with a Mamba layer after every encoder stage (`UMambaEnc`, see [`UMambaVariant::Enc`]).
//!
//! With `n` stages of `features_per_stage` (`f`), the plan's kernels `k`, strides and block counts
//! (the [`PlainUNetConfig`] arguments, which `UMambaBot` shares with `PlainConvUNet`):
//!
//! - `encoder.stem`: a [`ResStage`] from the input channels to `f[0]`, stride 1, kernel `k[0]`.
//! - `encoder.stages.{s}`: a [`ResStage`] from `f[s - 1]` (`f[0]` for `s = 0`) to `f[s]` with
//!   stride `strides[s]` and kernel `k[s]`: a `BasicResBlock` (`.0`), then `BasicBlockD`s; the stem and
//!   stage `s` have `n_conv_per_stage[s]` blocks, except that stages `ceil(n / 2)..n` have one.
//! - `mamba_layer` (`UMambaBot`): U-Mamba's `MambaLayer` on the deepest map (`LayerNorm(f[n-1])`
//!   and a Mamba block, d_state 16, d_conv 4, expand 2, on the row-major tokens; no residual);
//!   `encoder.mamba_layers.{s}` (`UMambaEnc`): the same after encoder stage `s`, on its channels as
//!   tokens where the map has at most `f[s]` voxels.
//! - decoder stage `s` (deepest first): `decoder.upsample_layers.{s}` (nearest interpolation by the
//!   encoder stride it undoes, then a 1x1 convolution to the skip's channels, `.conv.*`),
//!   `cat(up, skip)`, `decoder.stages.{s}` (a [`ResStage`] from twice the skip's channels to them with
//!   `n_conv_per_stage_decoder[s]` blocks, except that stages `ceil(n / 2)..n - 1` have one), and a
//!   1x1 head `decoder.seg_layers.{s}`, used for the last stage only or, with deep supervision, for
//!   every stage (outputs highest resolution first).
//!
//! The decoder holds the encoder again (`decoder.encoder.*` in PyTorch's `state_dict`), and the
//! `BasicBlockD` convolutions their modules again (`all_modules.*`): both load as aliases. Convolution
//! biases: `BasicResBlock`, the upsampling and the heads always have them, `BasicBlockD` as
//! `conv_bias` says (U-Mamba's plans: true). The default 3D configuration of the tests
//! ([`UMamba::default_3d`]: nnU-Net's 3D full-resolution plan for a 128^3 patch, 6 stages of 32 to
//! 320 features, one input channel, two classes) has 42,120,394 parameters as `UMambaBot` and
//! 42,750,922 as `UMambaEnc` (whose last stage, 4^3 voxels, takes its 320 channels as tokens of 64
//! features); PyTorch counts the same for the reference in `tests/fixtures-extra/generate_umamba.py`.

use seg_nn::layers::{Conv, Layer};
use seg_nn::mamba::{MambaConfig, MambaLayer};
use seg_nn::{visit_child, visit_child_aliases, visit_child_mut, Module};
use seg_tensor::{ConvOptions, Error, InterpolateMode, InterpolateOptions, Result, Tensor};

use crate::blocks::{BlockStyle, Naming};
use crate::decoder::DecoderStages;
use crate::res_blocks::ResStage;
use crate::PlainUNetConfig;

/// U-Mamba's `UpsampleLayer`: nearest interpolation by `scale`, then a 1x1 convolution (`conv.*`).
struct Upsample {
    scale: Vec<f64>,
    conv: Conv,
}

impl Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let up = x.interpolate(&InterpolateOptions::scale(&self.scale, InterpolateMode::Nearest))?;
        self.conv.forward(&up)
    }
}

/// Which of U-Mamba's networks: where its Mamba layers sit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UMambaVariant {
    /// `UMambaBot`: one layer on the bottleneck map (`mamba_layer`).
    Bot,
    /// `UMambaEnc`: a layer after every encoder stage (`encoder.mamba_layers.{s}`), for inputs of
    /// spatial size `input_size` (the patch size): where a stage's map has at most as many voxels
    /// as channels, its layer runs on the channels as tokens, of `prod(map size)` features, and the
    /// network then takes that input size only.
    Enc { input_size: Vec<usize> },
}

/// The Mamba layers of a [`UMamba`].
enum MambaLayers {
    Bottleneck(MambaLayer),
    /// One per encoder stage, with whether it takes the channels as tokens.
    Encoder(Vec<(MambaLayer, bool)>),
}

/// U-Mamba's `MambaLayer` with the channels as tokens: `(B, C, *spatial)` as `C` tokens of
/// `prod(spatial)` features, `LayerNorm`, the Mamba block, back to the map; no residual.
fn channel_token_forward(layer: &MambaLayer, x: &Tensor) -> Result<Tensor> {
    let n = layer.mamba.config.d_model;
    let tokens = x.flatten(2, -1)?;
    if tokens.shape()[2] != n {
        return Err(Error::ShapeMismatch {
            op: "UMambaEnc",
            expected: format!("a feature map of {n} voxels (the input size given at construction)"),
            found: x.shape().to_vec(),
        });
    }
    let normed = tokens.layer_norm(&[n], Some(&layer.norm_weight), Some(&layer.norm_bias), 1e-5)?;
    layer.mamba.forward(&normed)?.reshape(x.shape())
}

/// U-Mamba's `UMambaBot` or `UMambaEnc`.
pub struct UMamba {
    pub config: PlainUNetConfig,
    /// `encoder.stem`.
    stem: ResStage,
    /// `encoder.stages.{s}`.
    encoder: Vec<ResStage>,
    mamba: MambaLayers,
    /// `decoder.upsample_layers.{s}`, deepest first.
    upsample: Vec<Upsample>,
    /// `decoder.stages.{s}`.
    decoder: Vec<ResStage>,
    /// `decoder.seg_layers.{s}`.
    seg_layers: Vec<Conv>,
}

impl UMamba {
    pub fn new(config: PlainUNetConfig, variant: UMambaVariant, seed: u64) -> Result<Self> {
        config.validate("UMamba")?;
        let c = &config;
        let n = c.features_per_stage.len();
        let half = n.div_ceil(2);
        let style = BlockStyle {
            naming: Naming::NnUnet,
            bias: c.conv_bias,
            negative_slope: 0.01,
            dropout: 0.0,
        };
        let blocks = |s: usize| if s >= half { 1 } else { c.n_conv_per_stage[s] };
        let ones = vec![1; c.spatial_dims()];
        let f = &c.features_per_stage;
        let stem = ResStage::new(
            style,
            blocks(0),
            c.input_channels,
            f[0],
            &c.kernel_sizes[0],
            &ones,
            seed,
        )?;
        let encoder = (0..n)
            .map(|s| {
                let cin = f[s.saturating_sub(1)];
                let seed = seed + 1000 * (s as u64 + 1);
                ResStage::new(style, blocks(s), cin, f[s], &c.kernel_sizes[s], &c.strides[s], seed)
            })
            .collect::<Result<Vec<_>>>()?;
        let mamba = match variant {
            UMambaVariant::Bot => {
                MambaLayers::Bottleneck(MambaLayer::new(MambaConfig::new(f[n - 1]), false, seed + 50_000)?)
            }
            UMambaVariant::Enc { input_size } => {
                let total = c.total_stride();
                if input_size.len() != total.len()
                    || input_size
                        .iter()
                        .zip(&total)
                        .any(|(i, t)| *i == 0 || !i.is_multiple_of(*t))
                {
                    return Err(Error::invalid(
                        "UMambaEnc",
                        format!(
                            "input_size needs {} positive multiples of {total:?}, found {input_size:?}",
                            total.len()
                        ),
                    ));
                }
                let mut size = input_size;
                let mut layers = Vec::new();
                for (s, (stride, &features)) in c.strides.iter().zip(f).enumerate() {
                    size = size.iter().zip(stride).map(|(i, st)| i / st).collect();
                    let voxels: usize = size.iter().product();
                    let channel_token = voxels <= features;
                    let dim = if channel_token { voxels } else { features };
                    let layer = MambaLayer::new(MambaConfig::new(dim), false, seed + 50_000 + s as u64)?;
                    layers.push((layer, channel_token));
                }
                MambaLayers::Encoder(layers)
            }
        };
        let (mut upsample, mut decoder, mut seg_layers) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..n - 1 {
            let (below, skip) = (f[n - 1 - s], f[n - 2 - s]);
            let seed = seed + 100_000 + 1000 * s as u64;
            upsample.push(Upsample {
                scale: c.strides[n - 1 - s].iter().map(|&st| st as f64).collect(),
                conv: Conv::new(below, skip, &ones, ConvOptions::default(), true, seed)?,
            });
            let n_blocks = if s >= half { 1 } else { c.n_conv_per_stage_decoder[s] };
            let kernel = &c.kernel_sizes[n - 2 - s];
            decoder.push(ResStage::new(style, n_blocks, 2 * skip, skip, kernel, &ones, seed + 1)?);
            seg_layers.push(Conv::new(
                skip,
                c.num_classes,
                &ones,
                ConvOptions::default(),
                true,
                seed + 500,
            )?);
        }
        Ok(Self {
            config,
            stem,
            encoder,
            mamba,
            upsample,
            decoder,
            seg_layers,
        })
    }

    /// The 3D network of the tests: nnU-Net's 3D full-resolution plan for a 128^3 patch
    /// (features 32, 64, 128, 256, 320, 320; kernels 3; strides 1, 2, 2, 2, 2, 2; two blocks per
    /// stage), one input channel, two classes, convolution biases, deep supervision.
    pub fn default_3d(variant: UMambaVariant, seed: u64) -> Result<Self> {
        let config = PlainUNetConfig {
            input_channels: 1,
            features_per_stage: vec![32, 64, 128, 256, 320, 320],
            kernel_sizes: vec![vec![3; 3]; 6],
            strides: [1, 2, 2, 2, 2, 2].iter().map(|&s| vec![s; 3]).collect(),
            n_conv_per_stage: vec![2; 6],
            n_conv_per_stage_decoder: vec![2; 5],
            num_classes: 2,
            conv_bias: true,
            deep_supervision: true,
        };
        Self::new(config, variant, seed)
    }

    /// The segmentation logits at full resolution, and with deep supervision those of every decoder
    /// stage after it (each at the resolution of the previous one divided by its stride).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let c = &self.config;
        c.check_input("UMamba", x)?;
        let mut skips = Vec::new();
        let mut y = self.stem.forward(x)?;
        for (s, stage) in self.encoder.iter().enumerate() {
            y = stage.forward(&y)?;
            if let MambaLayers::Encoder(layers) = &self.mamba {
                let (layer, channel_token) = &layers[s];
                y = if *channel_token {
                    channel_token_forward(layer, &y)?
                } else {
                    layer.forward(&y)?
                };
            }
            skips.push(y.clone());
        }
        skips.pop();
        if let MambaLayers::Bottleneck(layer) = &self.mamba {
            y = layer.forward(&y)?;
        }
        DecoderStages {
            up: |s: usize, y: &Tensor| self.upsample[s].forward(y),
            stage: |s: usize, y: &Tensor| self.decoder[s].forward(y),
            head: |s: usize, y: &Tensor| self.seg_layers[s].forward(y),
        }
        .run(y, skips, c.deep_supervision)
    }

    /// The encoder's stages with their names: `encoder.stem`, `encoder.stages.{s}`.
    fn encoder_stages(&self) -> impl Iterator<Item = (String, &ResStage)> {
        let stages = self.encoder.iter().enumerate();
        std::iter::once(("encoder.stem".to_string(), &self.stem))
            .chain(stages.map(|(s, stage)| (format!("encoder.stages.{s}"), stage)))
    }

    /// The Mamba layers with their names: `mamba_layer` or `encoder.mamba_layers.{s}`.
    fn mamba_layers(&self) -> Vec<(String, &MambaLayer)> {
        match &self.mamba {
            MambaLayers::Bottleneck(layer) => vec![("mamba_layer".to_string(), layer)],
            MambaLayers::Encoder(layers) => layers
                .iter()
                .enumerate()
                .map(|(s, (layer, _))| (format!("encoder.mamba_layers.{s}"), layer))
                .collect(),
        }
    }
}

impl Module for UMamba {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (prefix, stage) in self.encoder_stages() {
            visit_child(&prefix, stage, f);
        }
        for (prefix, layer) in self.mamba_layers() {
            visit_child(&prefix, layer, f);
        }
        for (s, stage) in self.decoder.iter().enumerate() {
            visit_child(&format!("decoder.stages.{s}"), stage, f);
        }
        for (s, up) in self.upsample.iter().enumerate() {
            visit_child(&format!("decoder.upsample_layers.{s}.conv"), &up.conv, f);
        }
        for (s, head) in self.seg_layers.iter().enumerate() {
            visit_child(&format!("decoder.seg_layers.{s}"), head, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("encoder.stem", &mut self.stem, f);
        for (s, stage) in self.encoder.iter_mut().enumerate() {
            visit_child_mut(&format!("encoder.stages.{s}"), stage, f);
        }
        match &mut self.mamba {
            MambaLayers::Bottleneck(layer) => visit_child_mut("mamba_layer", layer, f),
            MambaLayers::Encoder(layers) => {
                for (s, (layer, _)) in layers.iter_mut().enumerate() {
                    visit_child_mut(&format!("encoder.mamba_layers.{s}"), layer, f);
                }
            }
        }
        for (s, stage) in self.decoder.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.stages.{s}"), stage, f);
        }
        for (s, up) in self.upsample.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.upsample_layers.{s}.conv"), &mut up.conv, f);
        }
        for (s, head) in self.seg_layers.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.seg_layers.{s}"), head, f);
        }
    }

    /// The decoder holds the encoder again (`decoder.encoder.*`), and every `BasicBlockD` its
    /// modules again (`all_modules.*`).
    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        for (prefix, stage) in self.encoder_stages() {
            stage.visit(&mut |name, _| f(&format!("decoder.{prefix}.{name}"), &format!("{prefix}.{name}")));
            stage.visit_aliases(&mut |alias, name| {
                f(&format!("{prefix}.{alias}"), &format!("{prefix}.{name}"));
                f(&format!("decoder.{prefix}.{alias}"), &format!("{prefix}.{name}"));
            });
        }
        for (prefix, layer) in self.mamba_layers() {
            if prefix.starts_with("encoder.") {
                layer.visit(&mut |name, _| f(&format!("decoder.{prefix}.{name}"), &format!("{prefix}.{name}")));
            }
        }
        for (s, stage) in self.decoder.iter().enumerate() {
            visit_child_aliases(&format!("decoder.stages.{s}"), stage, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::{gradcheck, DType};

    fn small(deep_supervision: bool) -> PlainUNetConfig {
        PlainUNetConfig {
            input_channels: 1,
            features_per_stage: vec![2, 4, 4],
            kernel_sizes: vec![vec![3; 3]; 3],
            strides: vec![vec![1; 3], vec![2; 3], vec![2, 2, 1]],
            n_conv_per_stage: vec![2, 3, 2],
            n_conv_per_stage_decoder: vec![2, 2],
            num_classes: 3,
            conv_bias: true,
            deep_supervision,
        }
    }

    #[test]
    fn names_and_block_counts_follow_umamba() {
        let net = UMamba::new(small(false), UMambaVariant::Bot, 0).unwrap();
        let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
        for name in [
            "encoder.stem.0.conv3.weight",
            "encoder.stem.1.conv2.norm.bias",
            "encoder.stages.0.1.conv1.conv.bias",
            "encoder.stages.1.1.conv1.conv.weight",
            "mamba_layer.norm.weight",
            "mamba_layer.mamba.A_log",
            "decoder.upsample_layers.1.conv.weight",
            "decoder.stages.0.1.conv2.conv.weight",
            "decoder.seg_layers.1.bias",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
        // Stage ceil(3 / 2) = 2 has one block; decoder stage 1 keeps its two.
        assert!(!names.iter().any(|n| n.starts_with("encoder.stages.2.1.")));
        assert!(names.iter().any(|n| n.starts_with("decoder.stages.1.1.")));
    }

    #[test]
    fn enc_has_a_layer_per_stage_with_channel_tokens_on_small_maps() {
        let variant = UMambaVariant::Enc {
            input_size: vec![4, 4, 4],
        };
        let net = UMamba::new(small(false), variant, 0).unwrap();
        let shapes: Vec<(String, Vec<usize>)> = net
            .named_parameters()
            .into_iter()
            .filter(|(n, _)| n.ends_with("norm.weight") && n.contains("mamba"))
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        // Maps of 64, 8 and 2 voxels: the last has fewer voxels than its 4 channels, so it takes
        // them as tokens of 2 features.
        assert_eq!(
            shapes,
            [
                ("encoder.mamba_layers.0.norm.weight".to_string(), vec![2]),
                ("encoder.mamba_layers.1.norm.weight".to_string(), vec![4]),
                ("encoder.mamba_layers.2.norm.weight".to_string(), vec![2]),
            ]
        );
        let x = Tensor::zeros(&[1, 1, 4, 4, 4], DType::F32);
        assert_eq!(net.forward(&x).unwrap()[0].shape(), &[1, 3, 4, 4, 4]);
        let other = Tensor::zeros(&[1, 1, 8, 4, 4], DType::F32);
        assert!(net.forward(&other).unwrap_err().to_string().contains("2 voxels"));
        let bad = UMambaVariant::Enc {
            input_size: vec![4, 4, 3],
        };
        let err = UMamba::new(small(false), bad, 0).err().unwrap().to_string();
        assert!(err.contains("multiples of [4, 4, 2]"), "{err}");
    }

    #[test]
    fn outputs_and_bad_input() {
        let net = UMamba::new(small(true), UMambaVariant::Bot, 0).unwrap();
        let x = Tensor::zeros(&[1, 1, 8, 4, 4], DType::F32);
        let shapes: Vec<Vec<usize>> = net.forward(&x).unwrap().iter().map(|y| y.shape().to_vec()).collect();
        assert_eq!(shapes, [vec![1, 3, 8, 4, 4], vec![1, 3, 4, 2, 2]]);
        let odd = Tensor::zeros(&[1, 1, 8, 4, 3], DType::F32);
        assert!(net
            .forward(&odd)
            .unwrap_err()
            .to_string()
            .contains("multiples of [4, 4, 2]"));
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        let enc = UMambaVariant::Enc {
            input_size: vec![8, 4, 4],
        };
        for variant in [UMambaVariant::Bot, enc] {
            let mut net = UMamba::new(small(true), variant, 3).unwrap();
            net.visit_mut(&mut |_, p| *p = p.to_dtype(DType::F64).unwrap());
            let x = Tensor::randn(&[1, 1, 8, 4, 4], 4, DType::F64).unwrap();
            // Both outputs, the coarse one summed into the loss through a mean.
            let f = |t: &[Tensor]| {
                let ys = net.forward(&t[0])?;
                ys[0].add(&ys[1].mean_all()?)
            };
            gradcheck::check(f, &[x]).unwrap();
        }
    }

    #[test]
    fn default_3d_parameter_count() {
        let n = UMamba::default_3d(UMambaVariant::Bot, 0).unwrap().num_parameters();
        println!("UMambaBot default 3D: {n} parameters");
        assert_eq!(n, 42_120_394);
        let enc = UMambaVariant::Enc {
            input_size: vec![128; 3],
        };
        let n = UMamba::default_3d(enc, 0).unwrap().num_parameters();
        println!("UMambaEnc default 3D (128^3 patch): {n} parameters");
        assert_eq!(n, 42_750_922);
    }
}
