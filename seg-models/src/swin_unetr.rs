//! MONAI's `SwinUNETR` (`monai.networks.nets.SwinUNETR`, v1 and `use_v2`, 2D and 3D) with its
//! `state_dict` names.
//!
//! `swinViT`: patch embedding (2x2(x2), `feature_size` channels), four Swin stages (`layers1..4`,
//! each a MONAI `BasicLayer` with patch merging, doubling the channels and halving the size; with
//! `use_v2` a residual conv block `layers{k}c` before each), the five feature maps layer-normalised
//! over channels when `normalize`. `encoder1..4` and `encoder10`: residual conv blocks on the input
//! and the feature maps; `decoder5..1`: 2x2 transposed convolution, concatenation with the skip,
//! residual block; `out`: 1x1 convolution. Conv blocks: conv 3 without bias, instance norm without
//! affine, LeakyReLU 0.01, a 1x1 conv + norm on the residual when the channels change.

use seg_nn::layers::{Conv, Layer};
use seg_nn::swin::{BasicLayer, BasicLayerConfig, MergingVersion, PatchEmbed};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{Error, Result, Tensor};

use crate::unetr_blocks::{out_block, UnetResBlock, UnetrUpBlock};

/// `SwinUNETR`'s constructor arguments, MONAI's defaults from [`SwinUNETRConfig::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct SwinUNETRConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub spatial_dims: usize,
    pub feature_size: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
    pub qkv_bias: bool,
    pub mlp_ratio: f64,
    pub normalize: bool,
    /// "merging" (v1) or "mergingv2".
    pub downsample: MergingVersion,
    pub use_v2: bool,
}

impl SwinUNETRConfig {
    /// MONAI's defaults: feature size 24, depths (2, 2, 2, 2), heads (3, 6, 12, 24), window 7.
    pub fn new(in_channels: usize, out_channels: usize, spatial_dims: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            spatial_dims,
            feature_size: 24,
            depths: [2; 4],
            num_heads: [3, 6, 12, 24],
            window_size: 7,
            qkv_bias: true,
            mlp_ratio: 4.0,
            normalize: true,
            downsample: MergingVersion::V1,
            use_v2: false,
        }
    }
}

/// MONAI's `SwinUNETR`.
pub struct SwinUNETR {
    pub config: SwinUNETRConfig,
    patch_embed: PatchEmbed,
    /// `swinViT.layers{k}.0`, k = 1..4.
    stages: Vec<BasicLayer>,
    /// `swinViT.layers{k}c.0` (v2 only).
    stage_convs: Vec<UnetResBlock>,
    /// `encoder1`, `encoder2`, `encoder3`, `encoder4`, `encoder10`.
    encoders: Vec<UnetResBlock>,
    /// `decoder5` .. `decoder1`.
    decoders: Vec<UnetrUpBlock>,
    out: Conv,
}

const ENCODER_NAMES: [&str; 5] = ["encoder1", "encoder2", "encoder3", "encoder4", "encoder10"];
const DECODER_NAMES: [&str; 5] = ["decoder5", "decoder4", "decoder3", "decoder2", "decoder1"];

impl SwinUNETR {
    pub fn new(config: SwinUNETRConfig, seed: u64) -> Result<Self> {
        let c = &config;
        let dims = c.spatial_dims;
        if !(2..=3).contains(&dims) {
            return Err(Error::invalid(
                "SwinUNETR",
                format!("spatial_dims must be 2 or 3, found {dims}"),
            ));
        }
        if c.feature_size == 0 || !c.feature_size.is_multiple_of(12) {
            return Err(Error::invalid(
                "SwinUNETR",
                format!(
                    "feature_size should be divisible by 12 (as MONAI requires), found {}",
                    c.feature_size
                ),
            ));
        }
        if c.num_heads
            .iter()
            .enumerate()
            .any(|(i, &h)| h == 0 || !(c.feature_size << i).is_multiple_of(h))
        {
            return Err(Error::invalid(
                "SwinUNETR",
                format!(
                    "feature_size {} times 2^i must divide into num_heads {:?}",
                    c.feature_size, c.num_heads
                ),
            ));
        }
        let fs = c.feature_size;
        let patch_embed = PatchEmbed::new(&vec![2; dims], c.in_channels, fs, false, seed)?;
        let stages = (0..4)
            .map(|i| {
                let layer = BasicLayerConfig {
                    dim: fs << i,
                    depth: c.depths[i],
                    num_heads: c.num_heads[i],
                    window_size: vec![c.window_size; dims],
                    mlp_ratio: c.mlp_ratio,
                    qkv_bias: c.qkv_bias,
                    downsample: Some(c.downsample),
                };
                BasicLayer::new(&layer, seed + 1000 * (i as u64 + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        let stage_convs = if c.use_v2 {
            (0..4)
                .map(|i| UnetResBlock::new(dims, fs << i, fs << i, seed + 5000 + 10 * i as u64))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let encoder_channels = [
            (c.in_channels, fs),
            (fs, fs),
            (2 * fs, 2 * fs),
            (4 * fs, 4 * fs),
            (16 * fs, 16 * fs),
        ];
        let encoders = encoder_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| UnetResBlock::new(dims, cin, cout, seed + 6000 + 10 * i as u64))
            .collect::<Result<Vec<_>>>()?;
        let decoder_channels = [
            (16 * fs, 8 * fs),
            (8 * fs, 4 * fs),
            (4 * fs, 2 * fs),
            (2 * fs, fs),
            (fs, fs),
        ];
        let decoders = decoder_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| UnetrUpBlock::new(dims, cin, cout, seed + 7000 + 100 * i as u64))
            .collect::<Result<Vec<_>>>()?;
        let out = out_block(dims, fs, c.out_channels, seed + 9000)?;
        Ok(Self {
            config,
            patch_embed,
            stages,
            stage_convs,
            encoders,
            decoders,
            out,
        })
    }

    /// MONAI's `proj_out`: layer norm over the channels (no affine) when `normalize`.
    fn proj_out(&self, x: &Tensor) -> Result<Tensor> {
        if !self.config.normalize {
            return Ok(x.clone());
        }
        let last = x.rank() as isize - 1;
        let to_last: Vec<isize> = std::iter::once(0).chain(2..=last).chain(std::iter::once(1)).collect();
        let to_first: Vec<isize> = [0, last].into_iter().chain(1..last).collect();
        x.permute(&to_last)?
            .layer_norm(&[x.shape()[1]], None, None, 1e-5)?
            .permute(&to_first)
    }

    /// Logits `(N, out_channels, *spatial)`; every spatial size must be a multiple of 32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let spatial = x.shape().get(2..).unwrap_or_default();
        if x.rank() != c.spatial_dims + 2 || x.shape()[1] != c.in_channels || spatial.iter().any(|s| s % 32 != 0) {
            return Err(Error::ShapeMismatch {
                op: "SwinUNETR",
                expected: format!(
                    "(N, {}, {} spatial sizes divisible by 32 (patch size 2 to the 5th))",
                    c.in_channels, c.spatial_dims
                ),
                found: x.shape().to_vec(),
            });
        }
        // The Swin encoder's five feature maps.
        let mut y = self.patch_embed.forward(x)?;
        let mut hidden = vec![self.proj_out(&y)?];
        for (i, stage) in self.stages.iter().enumerate() {
            if let Some(conv) = self.stage_convs.get(i) {
                y = conv.forward(&y)?;
            }
            y = stage.forward(&y)?;
            hidden.push(self.proj_out(&y)?);
        }
        let e = &self.encoders;
        let enc0 = e[0].forward(x)?;
        let enc1 = e[1].forward(&hidden[0])?;
        let enc2 = e[2].forward(&hidden[1])?;
        let enc3 = e[3].forward(&hidden[2])?;
        let mut dec = e[4].forward(&hidden[4])?;
        for (decoder, skip) in self.decoders.iter().zip([&hidden[3], &enc3, &enc2, &enc1, &enc0]) {
            dec = decoder.forward(&dec, skip)?;
        }
        self.out.forward(&dec)
    }
}

impl Module for SwinUNETR {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("swinViT.patch_embed", &self.patch_embed, f);
        for (i, s) in self.stages.iter().enumerate() {
            visit_child(&format!("swinViT.layers{}.0", i + 1), s, f);
        }
        for (i, s) in self.stage_convs.iter().enumerate() {
            visit_child(&format!("swinViT.layers{}c.0.layer", i + 1), s, f);
        }
        for (name, e) in ENCODER_NAMES.iter().zip(&self.encoders) {
            visit_child(&format!("{name}.layer"), e, f);
        }
        for (name, d) in DECODER_NAMES.iter().zip(&self.decoders) {
            visit_child(name, d, f);
        }
        visit_child("out.conv.conv", &self.out, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("swinViT.patch_embed", &mut self.patch_embed, f);
        for (i, s) in self.stages.iter_mut().enumerate() {
            visit_child_mut(&format!("swinViT.layers{}.0", i + 1), s, f);
        }
        for (i, s) in self.stage_convs.iter_mut().enumerate() {
            visit_child_mut(&format!("swinViT.layers{}c.0.layer", i + 1), s, f);
        }
        for (name, e) in ENCODER_NAMES.iter().zip(&mut self.encoders) {
            visit_child_mut(&format!("{name}.layer"), e, f);
        }
        for (name, d) in DECODER_NAMES.iter().zip(&mut self.decoders) {
            visit_child_mut(name, d, f);
        }
        visit_child_mut("out.conv.conv", &mut self.out, f);
    }
}
