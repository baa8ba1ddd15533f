//! nnU-Net's default network, `PlainConvUNet` from `dynamic_network_architectures`, with its
//! `state_dict` names, and a constructor from an nnU-Net-style plan.
//!
//! Encoder stage `s`: `n_conv_per_stage[s]` blocks (conv `kernel_sizes[s]` padded by `(k - 1) / 2`,
//! the first with stride `strides[s]`; instance norm (affine, eps 1e-5); LeakyReLU(0.01)). Decoder
//! stage `s` (deepest first): a transposed convolution (kernel = stride = the encoder stride it
//! undoes) to the skip's channels, `cat(up, skip)`, then `n_conv_per_stage_decoder[s]` blocks; a 1x1 `seg_layers[s]` head per stage, used for the last
//! stage only or, with deep supervision, for every stage (outputs highest resolution first).

use seg_nn::layers::{Conv, ConvTranspose, Layer};
use seg_nn::{visit_child, visit_child_aliases, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvTransposeOptions, Error, Result, Tensor};

use crate::blocks::{BlockStyle, ConvNormAct, Naming};
use crate::decoder::DecoderStages;

/// `PlainConvUNet`'s constructor arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct PlainUNetConfig {
    pub input_channels: usize,
    pub features_per_stage: Vec<usize>,
    /// One kernel per stage, one size per spatial axis.
    pub kernel_sizes: Vec<Vec<usize>>,
    /// One stride per stage (the first usually all ones), one per spatial axis.
    pub strides: Vec<Vec<usize>>,
    pub n_conv_per_stage: Vec<usize>,
    pub n_conv_per_stage_decoder: Vec<usize>,
    pub num_classes: usize,
    pub conv_bias: bool,
    pub deep_supervision: bool,
}

impl PlainUNetConfig {
    /// Checks the lists' lengths and sizes; `op` names the network in the error.
    pub(crate) fn validate(&self, op: &'static str) -> Result<()> {
        let n = self.features_per_stage.len();
        let dims = self.kernel_sizes.first().map_or(0, Vec::len);
        let bad = |msg: String| Err(Error::invalid(op, msg));
        if n < 2 {
            return bad(format!("at least 2 stages needed, found {n}"));
        }
        if self.kernel_sizes.len() != n || self.strides.len() != n || self.n_conv_per_stage.len() != n {
            return bad(format!(
                "kernel_sizes, strides and n_conv_per_stage need one entry per stage ({n})"
            ));
        }
        if self.n_conv_per_stage_decoder.len() != n - 1 {
            return bad(format!("n_conv_per_stage_decoder needs {} entries", n - 1));
        }
        if !(1..=3).contains(&dims)
            || self
                .kernel_sizes
                .iter()
                .chain(&self.strides)
                .any(|k| k.len() != dims || k.contains(&0))
        {
            return bad("every kernel size and stride needs 1 to 3 positive values, one per axis".into());
        }
        if self
            .n_conv_per_stage
            .iter()
            .chain(&self.n_conv_per_stage_decoder)
            .any(|&c| c == 0)
        {
            return bad("every stage needs at least one convolution".into());
        }
        Ok(())
    }

    pub fn spatial_dims(&self) -> usize {
        self.kernel_sizes.first().map_or(0, Vec::len)
    }

    /// Checks that `x` is `(N, input_channels, spatial)` with spatial sizes multiples of the total
    /// stride; `op` names the network in the error.
    pub(crate) fn check_input(&self, op: &'static str, x: &Tensor) -> Result<()> {
        let total = self.total_stride();
        let spatial = x.shape().get(2..).unwrap_or_default();
        if x.rank() != self.spatial_dims() + 2
            || x.shape()[1] != self.input_channels
            || spatial.iter().zip(&total).any(|(s, t)| !s.is_multiple_of(*t))
        {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!(
                    "(N, {}, spatial) with spatial sizes multiples of {total:?}",
                    self.input_channels
                ),
                found: x.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// The product of the strides per axis: input sizes must be multiples of it.
    pub fn total_stride(&self) -> Vec<usize> {
        (0..self.spatial_dims())
            .map(|a| self.strides.iter().map(|s| s[a]).product())
            .collect()
    }
}

/// `StackedConvBlocks`: `convs.{i}`.
struct Stack(Vec<ConvNormAct>);

impl Stack {
    fn new(
        n: usize,
        cin: usize,
        cout: usize,
        kernel: &[usize],
        stride: &[usize],
        style: BlockStyle,
        seed: u64,
    ) -> Result<Self> {
        (0..n)
            .map(|i| {
                let (cin, stride) = if i == 0 {
                    (cin, stride.to_vec())
                } else {
                    (cout, vec![1])
                };
                ConvNormAct::new(style, cin, cout, kernel, &stride, seed + i as u64)
            })
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.iter().try_fold(x.clone(), |x, block| block.forward(&x))
    }
}

impl Module for Stack {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, b) in self.0.iter().enumerate() {
            visit_child(&format!("convs.{i}"), b, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (i, b) in self.0.iter_mut().enumerate() {
            visit_child_mut(&format!("convs.{i}"), b, f);
        }
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        for (i, b) in self.0.iter().enumerate() {
            visit_child_aliases(&format!("convs.{i}"), b, f);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.0.iter_mut().for_each(|b| b.set_training(training));
    }
}

/// nnU-Net's `PlainConvUNet`.
pub struct PlainConvUNet {
    pub config: PlainUNetConfig,
    /// `encoder.stages.{s}.0`.
    encoder: Vec<Stack>,
    /// `decoder.transpconvs.{s}`, deepest first.
    transpconvs: Vec<ConvTranspose>,
    /// `decoder.stages.{s}`.
    decoder: Vec<Stack>,
    /// `decoder.seg_layers.{s}`.
    seg_layers: Vec<Conv>,
}

impl PlainConvUNet {
    pub fn new(config: PlainUNetConfig, seed: u64) -> Result<Self> {
        config.validate("PlainConvUNet")?;
        let c = &config;
        let n = c.features_per_stage.len();
        let style = BlockStyle {
            naming: Naming::NnUnet,
            bias: c.conv_bias,
            negative_slope: 0.01,
            dropout: 0.0,
        };
        let mut cin = c.input_channels;
        let mut encoder = Vec::new();
        for s in 0..n {
            let cout = c.features_per_stage[s];
            let seed = seed + 100 * s as u64;
            encoder.push(Stack::new(
                c.n_conv_per_stage[s],
                cin,
                cout,
                &c.kernel_sizes[s],
                &c.strides[s],
                style,
                seed,
            )?);
            cin = cout;
        }
        let (mut transpconvs, mut decoder, mut seg_layers) = (Vec::new(), Vec::new(), Vec::new());
        for s in 1..n {
            let (below, skip) = (c.features_per_stage[n - s], c.features_per_stage[n - s - 1]);
            let stride = &c.strides[n - s];
            let seed = seed + 10_000 + 100 * s as u64;
            let up = ConvTransposeOptions {
                stride: stride.clone(),
                ..ConvTransposeOptions::default()
            };
            transpconvs.push(ConvTranspose::new(below, skip, stride, up, c.conv_bias, seed)?);
            let kernel = &c.kernel_sizes[n - s - 1];
            decoder.push(Stack::new(
                c.n_conv_per_stage_decoder[s - 1],
                2 * skip,
                skip,
                kernel,
                &[1],
                style,
                seed + 1,
            )?);
            let ones = vec![1; c.spatial_dims()];
            seg_layers.push(Conv::new(
                skip,
                c.num_classes,
                &ones,
                ConvOptions::default(),
                true,
                seed + 50,
            )?);
        }
        Ok(Self {
            config,
            encoder,
            transpconvs,
            decoder,
            seg_layers,
        })
    }

    /// The segmentation logits at full resolution, and with deep supervision those of every decoder
    /// stage after it (each half the resolution of the previous one).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let c = &self.config;
        c.check_input("PlainConvUNet", x)?;
        let mut skips = Vec::new();
        let mut y = x.clone();
        for stage in &self.encoder {
            y = stage.forward(&y)?;
            skips.push(y.clone());
        }
        skips.pop();
        DecoderStages {
            up: |s: usize, y: &Tensor| self.transpconvs[s].forward(y),
            stage: |s: usize, y: &Tensor| self.decoder[s].forward(y),
            head: |s: usize, y: &Tensor| self.seg_layers[s].forward(y),
        }
        .run(y, skips, c.deep_supervision)
    }
}

impl Module for PlainConvUNet {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (s, stage) in self.encoder.iter().enumerate() {
            visit_child(&format!("encoder.stages.{s}.0"), stage, f);
        }
        for (s, stage) in self.decoder.iter().enumerate() {
            visit_child(&format!("decoder.stages.{s}"), stage, f);
        }
        for (s, up) in self.transpconvs.iter().enumerate() {
            visit_child(&format!("decoder.transpconvs.{s}"), up, f);
        }
        for (s, head) in self.seg_layers.iter().enumerate() {
            visit_child(&format!("decoder.seg_layers.{s}"), head, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (s, stage) in self.encoder.iter_mut().enumerate() {
            visit_child_mut(&format!("encoder.stages.{s}.0"), stage, f);
        }
        for (s, stage) in self.decoder.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.stages.{s}"), stage, f);
        }
        for (s, up) in self.transpconvs.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.transpconvs.{s}"), up, f);
        }
        for (s, head) in self.seg_layers.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.seg_layers.{s}"), head, f);
        }
    }

    /// The decoder holds the encoder again (`decoder.encoder.*`), and every block its modules again
    /// (`all_modules.*`).
    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        for (s, stage) in self.encoder.iter().enumerate() {
            let prefix = format!("encoder.stages.{s}.0");
            stage.visit(&mut |name, _| f(&format!("decoder.{prefix}.{name}"), &format!("{prefix}.{name}")));
            stage.visit_aliases(&mut |alias, name| {
                f(&format!("{prefix}.{alias}"), &format!("{prefix}.{name}"));
                f(&format!("decoder.{prefix}.{alias}"), &format!("{prefix}.{name}"));
            });
        }
        for (s, stage) in self.decoder.iter().enumerate() {
            visit_child_aliases(&format!("decoder.stages.{s}"), stage, f);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.encoder
            .iter_mut()
            .chain(&mut self.decoder)
            .for_each(|s| s.set_training(training));
    }
}
