//! The Mamba block (mamba_ssm's `Mamba`) and SegMamba's tri-oriented variant, with their parameter
//! names, mamba_ssm's initialisation and the flattening of 3D feature maps into token sequences.
//!
//! For `x` `(B, L, d_model)`: `[x_in, z] = in_proj(x)` (each `(B, d_inner, L)`, `d_inner = expand
//! d_model`); `u = silu(causal depthwise conv1d(x_in))`; `[dt, B, C] = x_proj(u)` split into
//! `dt_rank, d_state, d_state`; `delta = dt_proj.weight dt`; `y = selective_scan(u, delta,
//! -exp(A_log), B, C, D, z, delta_bias = dt_proj.bias, softplus)`; `out = out_proj(y)`. SegMamba's
//! tri-oriented block (mamba_ssm `bimamba_type="v3"`) runs that scan branch three times with its own
//! conv1d, x_proj, dt_proj, A and D each: on the sequence, on the reversed sequence (reversed back),
//! and on the inter-slice order (the sequence cut into `nslices` slices, read slice-interleaved, and
//! put back); it sums the three before `out_proj`.

use seg_tensor::{ConvOptions, ConvPadding, Error, Result, ScanOptions, Tensor};

use crate::init::{constant, default_uniform, Seeds};
use crate::Module;

/// The scan orders of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orientation {
    /// mamba_ssm's plain Mamba: one forward scan.
    Forward,
    /// SegMamba's tri-oriented block (`bimamba_type="v3"`): forward, reversed, and inter-slice over
    /// `nslices` slices (the sequence length must be a multiple of it).
    TriOriented { nslices: usize },
}

/// Hyper-parameters of a Mamba block, with mamba_ssm's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MambaConfig {
    pub d_model: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub expand: usize,
    /// `None`: mamba_ssm's "auto", `ceil(d_model / 16)`.
    pub dt_rank: Option<usize>,
    pub dt_min: f64,
    pub dt_max: f64,
    pub dt_init_floor: f64,
    pub dt_scale: f64,
    pub orientation: Orientation,
}

impl MambaConfig {
    /// mamba_ssm's defaults for `d_model`: d_state 16, d_conv 4, expand 2, dt in [0.001, 0.1].
    pub fn new(d_model: usize) -> Self {
        Self {
            d_model,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            dt_rank: None,
            dt_min: 0.001,
            dt_max: 0.1,
            dt_init_floor: 1e-4,
            dt_scale: 1.0,
            orientation: Orientation::Forward,
        }
    }

    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    pub fn dt_rank(&self) -> usize {
        self.dt_rank.unwrap_or(self.d_model.div_ceil(16))
    }
}

/// The parameters of one scan direction (mamba_ssm names them with a suffix: "", "_b", "_s").
#[derive(Clone, Debug)]
pub struct ScanBranch {
    suffix: &'static str,
    pub conv1d_weight: Tensor,
    pub conv1d_bias: Tensor,
    pub x_proj_weight: Tensor,
    pub dt_proj_weight: Tensor,
    pub dt_proj_bias: Tensor,
    pub a_log: Tensor,
    pub d: Tensor,
}

impl ScanBranch {
    /// mamba_ssm's initialisation: PyTorch defaults for conv1d and x_proj; dt_proj's weight uniform
    /// in `±dt_rank^-1/2 dt_scale` and its bias the inverse softplus of a log-uniform `dt` in
    /// `[dt_min, dt_max]` (floored); `A_log = ln(1..=d_state)` per channel; `D = 1`.
    fn new(c: &MambaConfig, suffix: &'static str, seeds: &mut Seeds) -> Result<Self> {
        let (di, r, n) = (c.d_inner(), c.dt_rank(), c.d_state);
        let std = (r as f64).powf(-0.5) * c.dt_scale;
        let u = Tensor::rand(&[di], seeds.next_seed(), seg_tensor::DType::F64)?.to_vec::<f64>()?;
        let bias: Vec<f32> = u
            .iter()
            .map(|u| {
                let dt = (u * (c.dt_max.ln() - c.dt_min.ln()) + c.dt_min.ln())
                    .exp()
                    .max(c.dt_init_floor);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        let a_log: Vec<f32> = (0..di).flat_map(|_| (1..=n).map(|k| (k as f32).ln())).collect();
        Ok(Self {
            suffix,
            conv1d_weight: default_uniform(&[di, 1, c.d_conv], c.d_conv, seeds.next_seed())?,
            conv1d_bias: default_uniform(&[di], c.d_conv, seeds.next_seed())?,
            x_proj_weight: default_uniform(&[r + 2 * n, di], di, seeds.next_seed())?,
            dt_proj_weight: Tensor::rand_uniform(&[di, r], -std, std, seeds.next_seed(), seg_tensor::DType::F32)?
                .requires_grad(),
            dt_proj_bias: Tensor::from_vec(bias, &[di])?.requires_grad(),
            a_log: Tensor::from_vec(a_log, &[di, n])?.requires_grad(),
            d: constant(&[di], 1.0),
        })
    }

    fn names(&self) -> [String; 7] {
        let s = self.suffix;
        [
            format!("conv1d{s}.weight"),
            format!("conv1d{s}.bias"),
            format!("x_proj{s}.weight"),
            format!("dt_proj{s}.weight"),
            format!("dt_proj{s}.bias"),
            // mamba_ssm spells the decay's log "A_log", "A_b_log", "A_s_log".
            format!("A{s}_log"),
            format!("D{s}"),
        ]
    }

    fn tensors(&self) -> [&Tensor; 7] {
        [
            &self.conv1d_weight,
            &self.conv1d_bias,
            &self.x_proj_weight,
            &self.dt_proj_weight,
            &self.dt_proj_bias,
            &self.a_log,
            &self.d,
        ]
    }

    fn tensors_mut(&mut self) -> [&mut Tensor; 7] {
        [
            &mut self.conv1d_weight,
            &mut self.conv1d_bias,
            &mut self.x_proj_weight,
            &mut self.dt_proj_weight,
            &mut self.dt_proj_bias,
            &mut self.a_log,
            &mut self.d,
        ]
    }

    /// The scan branch on `xz` `(B, 2 d_inner, L)`: `y` `(B, d_inner, L)`.
    fn forward(&self, c: &MambaConfig, xz: &Tensor) -> Result<Tensor> {
        let (di, r, n) = (c.d_inner(), c.dt_rank(), c.d_state);
        let len = xz.dim(2)?;
        let x = xz.narrow(1, 0, di)?;
        let z = xz.narrow(1, di, di)?;
        let conv = ConvOptions {
            padding: ConvPadding::Explicit(vec![c.d_conv - 1]),
            groups: di,
            ..Default::default()
        };
        // Causal: padded on both sides, the first `len` outputs see only the past.
        let u = x
            .conv1d(&self.conv1d_weight, Some(&self.conv1d_bias), &conv)?
            .narrow(2, 0, len)?
            .silu()?;
        let x_dbl = u.transpose(1, 2)?.linear(&self.x_proj_weight, None)?; // (B, L, r + 2n)
        let delta = x_dbl
            .narrow(2, 0, r)?
            .linear(&self.dt_proj_weight, None)?
            .transpose(1, 2)?;
        let b = x_dbl.narrow(2, r, n)?.transpose(1, 2)?;
        let cm = x_dbl.narrow(2, r + n, n)?.transpose(1, 2)?;
        let a = self.a_log.exp()?.neg()?;
        let options = ScanOptions {
            d: Some(&self.d),
            z: Some(&z),
            delta_bias: Some(&self.dt_proj_bias),
            delta_softplus: true,
        };
        Ok(u.selective_scan(&delta, &a, &b, &cm, &options)?.0)
    }
}

/// A Mamba block: mamba_ssm's `Mamba`, or SegMamba's tri-oriented version of it.
#[derive(Clone, Debug)]
pub struct Mamba {
    pub config: MambaConfig,
    pub in_proj_weight: Tensor,
    /// One branch per scan order: forward, then (tri-oriented) reversed and inter-slice.
    pub branches: Vec<ScanBranch>,
    pub out_proj_weight: Tensor,
}

impl Mamba {
    /// A block initialised as mamba_ssm does for training from scratch, reproducibly from `seed`.
    pub fn new(config: MambaConfig, seed: u64) -> Result<Self> {
        if config.d_model == 0 || config.d_state == 0 || config.d_conv == 0 || config.expand == 0 {
            return Err(Error::invalid("Mamba", format!("sizes must be positive: {config:?}")));
        }
        let mut seeds = Seeds::new(seed);
        let (dm, di) = (config.d_model, config.d_inner());
        let in_proj_weight = default_uniform(&[2 * di, dm], dm, seeds.next_seed())?;
        let suffixes: &[&'static str] = match config.orientation {
            Orientation::Forward => &[""],
            Orientation::TriOriented { nslices: 0 } => return Err(Error::invalid("Mamba", "nslices must be positive")),
            Orientation::TriOriented { .. } => &["", "_b", "_s"],
        };
        let branches = suffixes
            .iter()
            .map(|s| ScanBranch::new(&config, s, &mut seeds))
            .collect::<Result<_>>()?;
        let out_proj_weight = default_uniform(&[dm, di], di, seeds.next_seed())?;
        Ok(Self {
            config,
            in_proj_weight,
            branches,
            out_proj_weight,
        })
    }

    /// `x` `(B, L, d_model)` to `(B, L, d_model)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        if x.rank() != 3 || x.shape()[2] != c.d_model {
            return Err(Error::ShapeMismatch {
                op: "Mamba",
                expected: format!("(batch, len, {})", c.d_model),
                found: x.shape().to_vec(),
            });
        }
        let (batch, len) = (x.shape()[0], x.shape()[1]);
        let xz = x.linear(&self.in_proj_weight, None)?.transpose(1, 2)?; // (B, 2 d_inner, L)
        let y = match c.orientation {
            Orientation::Forward => self.branches[0].forward(c, &xz)?,
            Orientation::TriOriented { nslices } => {
                if len % nslices != 0 {
                    return Err(Error::invalid(
                        "Mamba",
                        format!("length {len} is not a multiple of nslices {nslices}"),
                    ));
                }
                let forward = self.branches[0].forward(c, &xz)?;
                let reversed = self.branches[1].forward(c, &xz.flip(&[-1])?)?.flip(&[-1])?;
                // Slice-interleaved order: position j * nslices + s holds token s * (len / nslices) + j.
                let interleave = |t: &Tensor, channels: usize, forth: bool| -> Result<Tensor> {
                    let (outer, inner) = if forth {
                        (nslices, len / nslices)
                    } else {
                        (len / nslices, nslices)
                    };
                    t.reshape(&[batch, channels, outer, inner])?
                        .transpose(2, 3)?
                        .reshape(&[batch, channels, len])
                };
                let sliced = self.branches[2].forward(c, &interleave(&xz, 2 * c.d_inner(), true)?)?;
                forward.add(&reversed)?.add(&interleave(&sliced, c.d_inner(), false)?)?
            }
        };
        y.transpose(1, 2)?.linear(&self.out_proj_weight, None)
    }
}

impl Module for Mamba {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("in_proj.weight", &self.in_proj_weight);
        for branch in &self.branches {
            for (name, t) in branch.names().iter().zip(branch.tensors()) {
                f(name, t);
            }
        }
        f("out_proj.weight", &self.out_proj_weight);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f("in_proj.weight", &mut self.in_proj_weight);
        for branch in &mut self.branches {
            let names = branch.names();
            for (name, t) in names.iter().zip(branch.tensors_mut()) {
                f(name, t);
            }
        }
        f("out_proj.weight", &mut self.out_proj_weight);
    }
}

/// U-Mamba's and SegMamba's `MambaLayer` on a feature map `(B, C, *spatial)`: the map as row-major
/// tokens, `LayerNorm(C)` (eps 1e-5), a Mamba block, back to the map; SegMamba's adds the input
/// (`residual`), U-Mamba's does not. Parameters: `norm.weight`, `norm.bias`, `mamba.*`.
#[derive(Clone, Debug)]
pub struct MambaLayer {
    pub norm_weight: Tensor,
    pub norm_bias: Tensor,
    pub mamba: Mamba,
    pub residual: bool,
}

impl MambaLayer {
    /// A layer over `config.d_model` channels: LayerNorm as PyTorch initialises it (weight 1, bias
    /// 0), the block as mamba_ssm does.
    pub fn new(config: MambaConfig, residual: bool, seed: u64) -> Result<Self> {
        let c = config.d_model;
        Ok(Self {
            norm_weight: constant(&[c], 1.0),
            norm_bias: constant(&[c], 0.0),
            mamba: Mamba::new(config, seed)?,
            residual,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.mamba.config.d_model;
        if x.rank() < 3 || x.shape()[1] != c {
            return Err(Error::ShapeMismatch {
                op: "MambaLayer",
                expected: format!("(B, {c}, spatial...)"),
                found: x.shape().to_vec(),
            });
        }
        let tokens = flatten_tokens(x)?.layer_norm(&[c], Some(&self.norm_weight), Some(&self.norm_bias), 1e-5)?;
        let out = unflatten_tokens(&self.mamba.forward(&tokens)?, &x.shape()[2..])?;
        if self.residual {
            out.add(x)
        } else {
            Ok(out)
        }
    }
}

impl Module for MambaLayer {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("norm.weight", &self.norm_weight);
        f("norm.bias", &self.norm_bias);
        self.mamba.visit(&mut |name, t| f(&format!("mamba.{name}"), t));
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f("norm.weight", &mut self.norm_weight);
        f("norm.bias", &mut self.norm_bias);
        self.mamba.visit_mut(&mut |name, t| f(&format!("mamba.{name}"), t));
    }
}

/// `(B, C, *spatial)` feature maps as token sequences `(B, prod(spatial), C)` in row-major order of
/// the spatial axes, as U-Mamba and SegMamba flatten them; [`unflatten_tokens`] undoes it.
pub fn flatten_tokens(x: &Tensor) -> Result<Tensor> {
    if x.rank() < 3 {
        return Err(Error::ShapeMismatch {
            op: "flatten_tokens",
            expected: "(B, C, spatial...)".into(),
            found: x.shape().to_vec(),
        });
    }
    x.flatten(2, -1)?.transpose(1, 2)
}

/// Tokens `(B, N, C)` back to `(B, C, *spatial)`, `N` the product of `spatial`.
pub fn unflatten_tokens(tokens: &Tensor, spatial: &[usize]) -> Result<Tensor> {
    let (b, c) = (tokens.dim(0)?, tokens.dim(2)?);
    let mut shape = vec![b, c];
    shape.extend_from_slice(spatial);
    tokens.transpose(1, 2)?.reshape(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::{gradcheck, DType};

    #[test]
    fn initialisation_follows_mamba_ssm() {
        let m = Mamba::new(MambaConfig::new(20), 1).unwrap();
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "in_proj.weight",
                "conv1d.weight",
                "conv1d.bias",
                "x_proj.weight",
                "dt_proj.weight",
                "dt_proj.bias",
                "A_log",
                "D",
                "out_proj.weight"
            ]
        );
        let b = &m.branches[0];
        assert_eq!(b.x_proj_weight.shape(), &[2 + 32, 40], "dt_rank = ceil(20 / 16) = 2");
        // softplus(dt bias) lies in [dt_min, dt_max].
        for v in b.dt_proj_bias.softplus().unwrap().to_vec::<f32>().unwrap() {
            assert!((0.001 - 1e-6..=0.1 + 1e-6).contains(&v), "{v}");
        }
        let a = b.a_log.exp().unwrap().to_vec::<f32>().unwrap();
        assert!(
            (a[15] - 16.0).abs() < 1e-4 && (a[16] - 1.0).abs() < 1e-6,
            "A = 1..=16 per channel"
        );
        let tri = Mamba::new(
            MambaConfig {
                orientation: Orientation::TriOriented { nslices: 4 },
                ..MambaConfig::new(8)
            },
            1,
        )
        .unwrap();
        let names: Vec<String> = tri.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"A_b_log".to_string()) && names.contains(&"conv1d_s.bias".to_string()),
            "{names:?}"
        );
        assert_eq!(names.len(), 1 + 3 * 7 + 1);
    }

    #[test]
    fn tri_oriented_block_differentiates_and_checks_lengths() {
        let config = MambaConfig {
            d_state: 3,
            orientation: Orientation::TriOriented { nslices: 3 },
            ..MambaConfig::new(4)
        };
        let m = Mamba::new(config, 5).unwrap();
        let x = Tensor::randn(&[1, 6, 4], 2, DType::F64).unwrap();
        let f = |t: &[Tensor]| {
            let mut m64 = m.clone();
            m64.visit_mut(&mut |_, p| *p = p.to_dtype(DType::F64).unwrap());
            m64.forward(&t[0])
        };
        gradcheck::check(f, &[x]).unwrap();
        let bad = Tensor::randn(&[1, 7, 4], 3, DType::F32).unwrap();
        assert!(m.forward(&bad).unwrap_err().to_string().contains("multiple of nslices"));
    }

    #[test]
    fn mamba_layer_on_a_volume_differentiates_and_names_its_parameters() {
        let config = MambaConfig {
            d_state: 2,
            orientation: Orientation::TriOriented { nslices: 2 },
            ..MambaConfig::new(3)
        };
        let layer = MambaLayer::new(config, true, 9).unwrap();
        let names: Vec<String> = layer.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(&names[..3], ["norm.weight", "norm.bias", "mamba.in_proj.weight"]);
        let x = Tensor::randn(&[1, 3, 2, 2, 2], 1, DType::F64).unwrap();
        let f = |t: &[Tensor]| {
            let mut l64 = layer.clone();
            l64.visit_mut(&mut |_, p| *p = p.to_dtype(DType::F64).unwrap());
            l64.forward(&t[0])
        };
        gradcheck::check(f, &[x]).unwrap();
    }

    #[test]
    fn tokens_round_trip() {
        let x = Tensor::randn(&[2, 3, 4, 5, 6], 4, DType::F32).unwrap();
        let t = flatten_tokens(&x).unwrap();
        assert_eq!(t.shape(), &[2, 120, 3]);
        // Token 7 is spatial position (0, 1, 2) in row-major order.
        assert_eq!(
            t.narrow(1, 7, 1).unwrap().to_vec::<f32>().unwrap()[1],
            x.narrow(1, 1, 1).unwrap().to_vec::<f32>().unwrap()[7]
        );
        assert_eq!(
            unflatten_tokens(&t, &[4, 5, 6]).unwrap().to_vec::<f32>().unwrap(),
            x.to_vec::<f32>().unwrap()
        );
    }
}
