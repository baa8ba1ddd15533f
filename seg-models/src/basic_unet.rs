//! MONAI's `BasicUNet` (`monai.networks.nets.BasicUNet`), 2D or 3D, with its `state_dict` names.
//!
//! `conv_0` (two conv blocks), `down_1..4` (max-pool 2 then two blocks), `upcat_4..1` (a 2x2
//! transposed convolution to half the channels, except `upcat_1` which keeps them; replicate-padded
//! by one at the far end of any axis where the skip is larger; concatenated after the skip; two
//! blocks), `final_conv` (1x1). Blocks: conv 3 (padding 1, bias), instance norm (affine), dropout,
//! LeakyReLU(0.1).

use seg_nn::layers::{Conv, ConvTranspose, Layer};
use seg_nn::{visit_child, visit_child_mut, Module};
use seg_tensor::{ConvOptions, ConvTransposeOptions, Error, MaxPoolOptions, PadMode, Result, Tensor};

use crate::blocks::{BlockStyle, ConvNormAct, Naming};

/// `BasicUNet`'s constructor arguments, MONAI's defaults from [`BasicUNetConfig::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct BasicUNetConfig {
    pub spatial_dims: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Channels of `conv_0`, `down_1..4` and `upcat_1`.
    pub features: [usize; 6],
    pub negative_slope: f64,
    pub dropout: f64,
}

impl BasicUNetConfig {
    /// MONAI's defaults: features (32, 32, 64, 128, 256, 32), LeakyReLU 0.1, no dropout.
    pub fn new(spatial_dims: usize, in_channels: usize, out_channels: usize) -> Self {
        Self {
            spatial_dims,
            in_channels,
            out_channels,
            features: [32, 32, 64, 128, 256, 32],
            negative_slope: 0.1,
            dropout: 0.0,
        }
    }
}

/// MONAI's `TwoConv`: two blocks, `conv_0` and `conv_1`.
struct TwoConv([ConvNormAct; 2]);

impl TwoConv {
    fn new(style: BlockStyle, dims: usize, cin: usize, cout: usize, seed: u64) -> Result<Self> {
        let k = vec![3; dims];
        let one = vec![1];
        Ok(Self([
            ConvNormAct::new(style, cin, cout, &k, &one, seed)?,
            ConvNormAct::new(style, cout, cout, &k, &one, seed + 1)?,
        ]))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0[1].forward(&self.0[0].forward(x)?)
    }
}

impl Module for TwoConv {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv_0", &self.0[0], f);
        visit_child("conv_1", &self.0[1], f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        let [a, b] = &mut self.0;
        visit_child_mut("conv_0", a, f);
        visit_child_mut("conv_1", b, f);
    }

    fn set_training(&mut self, training: bool) {
        self.0.iter_mut().for_each(|c| c.set_training(training));
    }
}

/// MONAI's `UpCat`: `upsample.deconv`, then `convs` on `cat(skip, upsampled)`.
struct UpCat {
    deconv: ConvTranspose,
    convs: TwoConv,
}

impl UpCat {
    fn forward(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let up = self.deconv.forward(x)?;
        // Odd sizes lost a row to max pooling: pad the far end by one, replicating the edge.
        let dims = up.rank() - 2;
        let mut pads = vec![0isize; 2 * dims];
        for i in 0..dims {
            if skip.shape()[skip.rank() - 1 - i] != up.shape()[up.rank() - 1 - i] {
                pads[2 * i + 1] = 1;
            }
        }
        let up = if pads.iter().any(|&p| p != 0) {
            up.pad(&pads, PadMode::Replicate, 0.0)?
        } else {
            up
        };
        self.convs.forward(&Tensor::cat(&[skip, &up], 1)?)
    }
}

impl Module for UpCat {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("upsample.deconv", &self.deconv, f);
        visit_child("convs", &self.convs, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("upsample.deconv", &mut self.deconv, f);
        visit_child_mut("convs", &mut self.convs, f);
    }

    fn set_training(&mut self, training: bool) {
        self.convs.set_training(training);
    }
}

/// MONAI's `BasicUNet`.
pub struct BasicUNet {
    pub config: BasicUNetConfig,
    conv_0: TwoConv,
    /// `down_1..4`: max-pool 2, then two blocks.
    downs: Vec<TwoConv>,
    /// `upcat_4..1`, deepest first.
    upcats: Vec<UpCat>,
    final_conv: Conv,
}

impl BasicUNet {
    /// The network with PyTorch's default initialisation, seeded.
    pub fn new(config: BasicUNetConfig, seed: u64) -> Result<Self> {
        let dims = config.spatial_dims;
        if !(1..=3).contains(&dims) {
            return Err(Error::invalid(
                "BasicUNet",
                format!("spatial_dims must be 1, 2 or 3, found {dims}"),
            ));
        }
        let style = BlockStyle {
            naming: Naming::Monai,
            bias: true,
            negative_slope: config.negative_slope,
            dropout: config.dropout,
        };
        let fea = config.features;
        let conv_0 = TwoConv::new(style, dims, config.in_channels, fea[0], seed)?;
        let downs = (1..=4)
            .map(|i| TwoConv::new(style, dims, fea[i - 1], fea[i], seed + 10 * i as u64))
            .collect::<Result<Vec<_>>>()?;
        // upcat_i: in fea[i], skip fea[i - 1], out fea[i - 1] (fea[5] for upcat_1, which also keeps
        // its input channels when upsampling).
        let upcats = (1..=4)
            .rev()
            .map(|i| {
                let (cin, cat) = (fea[i], fea[i - 1]);
                let (up, out) = if i == 1 { (cin, fea[5]) } else { (cin / 2, fea[i - 1]) };
                let stride = ConvTransposeOptions {
                    stride: vec![2],
                    ..ConvTransposeOptions::default()
                };
                let seed = seed + 100 + 10 * i as u64;
                Ok(UpCat {
                    deconv: ConvTranspose::new(cin, up, &vec![2; dims], stride, true, seed)?,
                    convs: TwoConv::new(style, dims, cat + up, out, seed + 1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_conv = Conv::new(
            fea[5],
            config.out_channels,
            &vec![1; dims],
            ConvOptions::default(),
            true,
            seed + 200,
        )?;
        Ok(Self {
            config,
            conv_0,
            downs,
            upcats,
            final_conv,
        })
    }

    /// Logits `(N, out_channels, *spatial)` for `x` `(N, in_channels, *spatial)`; four halvings of
    /// the spatial sizes must leave more than one voxel.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let spatial = x.shape().get(2..).unwrap_or_default();
        // Four halvings must leave more than one voxel for the bottleneck's instance norm.
        let bottleneck: usize = spatial.iter().map(|s| s / 16).product();
        if x.rank() != c.spatial_dims + 2 || x.shape()[1] != c.in_channels || bottleneck < 2 {
            return Err(Error::ShapeMismatch {
                op: "BasicUNet",
                expected: format!(
                    "(N, {}, {}) with spatial sizes of at least 16 that leave the bottleneck (size / 16) more than one voxel",
                    c.in_channels,
                    vec!["S"; c.spatial_dims].join(", ")
                ),
                found: x.shape().to_vec(),
            });
        }
        let pool = MaxPoolOptions::new(&vec![2; c.spatial_dims]);
        let mut skips = vec![self.conv_0.forward(x)?];
        for down in &self.downs {
            let pooled = skips
                .last()
                .expect("conv_0 output")
                .max_pool_with_indices(c.spatial_dims, &pool)?
                .0;
            skips.push(down.forward(&pooled)?);
        }
        let mut y = skips.pop().expect("down_4 output");
        for upcat in &self.upcats {
            y = upcat.forward(&y, &skips.pop().expect("one skip per upcat"))?;
        }
        self.final_conv.forward(&y)
    }
}

impl Module for BasicUNet {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("conv_0", &self.conv_0, f);
        for (i, down) in self.downs.iter().enumerate() {
            visit_child(&format!("down_{}.convs", i + 1), down, f);
        }
        for (i, up) in self.upcats.iter().enumerate() {
            visit_child(&format!("upcat_{}", 4 - i), up, f);
        }
        visit_child("final_conv", &self.final_conv, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("conv_0", &mut self.conv_0, f);
        for (i, down) in self.downs.iter_mut().enumerate() {
            visit_child_mut(&format!("down_{}.convs", i + 1), down, f);
        }
        for (i, up) in self.upcats.iter_mut().enumerate() {
            visit_child_mut(&format!("upcat_{}", 4 - i), up, f);
        }
        visit_child_mut("final_conv", &mut self.final_conv, f);
    }

    fn set_training(&mut self, training: bool) {
        self.conv_0.set_training(training);
        self.downs.iter_mut().for_each(|d| d.set_training(training));
        self.upcats.iter_mut().for_each(|u| u.set_training(training));
    }
}
