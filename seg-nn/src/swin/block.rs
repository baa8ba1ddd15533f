//! MONAI's `SwinTransformerBlock` and its MLP (`MLPBlock` in "swin" dropout mode).

use seg_tensor::{Error, Result, Tensor};

use super::attention::WindowAttention;
use super::windows::{get_window_size, WindowTokens};
use crate::layers::{Layer, LayerNorm, Linear};
use crate::{visit_child, visit_child_mut, Module};

/// MONAI's `MLPBlock(hidden_size, mlp_dim, act="GELU")`: `linear2(gelu(linear1(x)))` with the
/// exact (erf) GELU; parameters `linear1`, `linear2`.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub linear1: Linear,
    pub linear2: Linear,
}

impl Mlp {
    pub fn new(dim: usize, hidden: usize, seed: u64) -> Result<Self> {
        Ok(Self {
            linear1: Linear::new(dim, hidden, true, seed)?,
            linear2: Linear::new(hidden, dim, true, seed.wrapping_add(1))?,
        })
    }
}

impl Layer for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear2.forward(&self.linear1.forward(x)?.gelu()?)
    }
}

impl Module for Mlp {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("linear1", &self.linear1, f);
        visit_child("linear2", &self.linear2, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("linear1", &mut self.linear1, f);
        visit_child_mut("linear2", &mut self.linear2, f);
    }
}

/// MONAI's `SwinTransformerBlock(dim, num_heads, window_size, shift_size, mlp_ratio, qkv_bias)`
/// (dropout and drop-path 0), on channels-last maps `x` `(B, *S, C)`, 2D or 3D:
///
/// ```text
/// h = norm1(x), padded at the end of each axis to a multiple of the (clipped) window,
///     rolled by -shift, attention per window (with the mask when shifted), rolled back, cropped
/// x = x + h
/// x = x + mlp(norm2(x))
/// ```
///
/// with window size and shift from `get_window_size` (axes no larger than the window: the window
/// shrinks to the axis and the shift is 0). Parameters `norm1`, `attn`, `norm2`, `mlp`.
#[derive(Clone, Debug)]
pub struct SwinTransformerBlock {
    pub window_size: Vec<usize>,
    pub shift_size: Vec<usize>,
    pub norm1: LayerNorm,
    pub attn: WindowAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

impl SwinTransformerBlock {
    pub fn new(
        dim: usize,
        num_heads: usize,
        window_size: &[usize],
        shift_size: &[usize],
        mlp_ratio: f64,
        qkv_bias: bool,
        seed: u64,
    ) -> Result<Self> {
        if shift_size.len() != window_size.len() {
            return Err(Error::invalid(
                "SwinTransformerBlock",
                format!(
                    "expected {} shift sizes (one per window axis), found {shift_size:?}",
                    window_size.len()
                ),
            ));
        }
        Ok(Self {
            window_size: window_size.to_vec(),
            shift_size: shift_size.to_vec(),
            norm1: LayerNorm::new(&[dim], true, 1e-5),
            attn: WindowAttention::new(dim, num_heads, window_size, qkv_bias, seed)?,
            norm2: LayerNorm::new(&[dim], true, 1e-5),
            mlp: Mlp::new(dim, (dim as f64 * mlp_ratio) as usize, seed.wrapping_add(10))?,
        })
    }

    /// `x` `(B, *S, C)`; `mask` the layer's `compute_mask` for the padded map, used when shifted.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let r = self.window_size.len();
        if x.rank() != r + 2 {
            return Err(Error::ShapeMismatch {
                op: "SwinTransformerBlock",
                expected: format!("(B, {r} spatial axes, C)"),
                found: x.shape().to_vec(),
            });
        }
        let (b, c) = (x.shape()[0], x.shape()[r + 1]);
        let size = &x.shape()[1..=r];
        let (window, shift) = get_window_size(size, &self.window_size, &self.shift_size);
        let shifted = shift.iter().any(|&s| s > 0);
        // Padding, the cyclic shift and the window partition as one row gather, and back as one.
        let maps = WindowTokens::new(b, size, &window, &shift);
        let index = |v: &[i64]| Tensor::from_vec(v.to_vec(), &[v.len()])?.to_device(x.device());
        let mut tokens = self.norm1.forward(x)?.reshape(&[x.numel() / c, c])?;
        if maps.padded {
            tokens = Tensor::cat(&[&tokens, &Tensor::zeros_on(&[1, c], x.dtype(), x.device())?], 0)?;
        }
        let n: usize = window.iter().product();
        let windows = tokens
            .index_select(0, &index(&maps.gather)?)?
            .reshape(&[maps.gather.len() / n, n, c])?;
        let attended = self.attn.forward(&windows, if shifted { mask } else { None })?;
        let h = attended
            .reshape(&[maps.gather.len(), c])?
            .index_select(0, &index(&maps.scatter)?)?
            .reshape(x.shape())?;
        let x = x.add(&h)?;
        x.add(&self.mlp.forward(&self.norm2.forward(&x)?)?)
    }
}

impl Module for SwinTransformerBlock {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("norm1", &self.norm1, f);
        visit_child("attn", &self.attn, f);
        visit_child("norm2", &self.norm2, f);
        visit_child("mlp", &self.mlp, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("norm1", &mut self.norm1, f);
        visit_child_mut("attn", &mut self.attn, f);
        visit_child_mut("norm2", &mut self.norm2, f);
        visit_child_mut("mlp", &mut self.mlp, f);
    }
}
