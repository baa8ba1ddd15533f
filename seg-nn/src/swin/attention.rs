//! MONAI's `WindowAttention`: multi-head self-attention inside each window with a learned
//! relative-position bias, on the fused kernel (`Tensor::window_attention`).

use seg_tensor::{DType, Error, RelativeBias, Result, Tensor};

use super::windows::relative_position_index;
use crate::layers::{Layer, Linear};
use crate::{visit_child, visit_child_mut, Module};

/// MONAI's `WindowAttention(dim, num_heads, window_size, qkv_bias)` (dropout rates 0): parameters
/// `qkv`, `proj`, `relative_position_bias_table` `((2 w_1 - 1) ... (2 w_r - 1), heads)`; the
/// buffer `relative_position_index` is computed, not a parameter.
#[derive(Clone, Debug)]
pub struct WindowAttention {
    pub num_heads: usize,
    pub window_size: Vec<usize>,
    /// `head_dim^-1/2`.
    pub scale: f64,
    pub qkv: Linear,
    pub proj: Linear,
    pub relative_position_bias_table: Tensor,
    /// `(N, N)` for the full window, row-major.
    relative_position_index: Vec<usize>,
}

impl WindowAttention {
    /// MONAI's initialisation: the table from a normal of std 0.02 (its `trunc_normal_` bounds
    /// of ±2 never bind), the linears PyTorch's defaults.
    pub fn new(dim: usize, num_heads: usize, window_size: &[usize], qkv_bias: bool, seed: u64) -> Result<Self> {
        if num_heads == 0 || !dim.is_multiple_of(num_heads) || !(2..=3).contains(&window_size.len()) {
            return Err(Error::invalid(
                "WindowAttention",
                format!("expected dim divisible by num_heads and a 2D or 3D window, found dim {dim}, num_heads {num_heads}, window {window_size:?}"),
            ));
        }
        let entries: usize = window_size.iter().map(|w| 2 * w - 1).product();
        let table = Tensor::randn(&[entries, num_heads], seed, DType::F32)?.mul_scalar(0.02)?;
        Ok(Self {
            num_heads,
            window_size: window_size.to_vec(),
            scale: ((dim / num_heads) as f64).powf(-0.5),
            qkv: Linear::new(dim, 3 * dim, qkv_bias, seed.wrapping_add(1))?,
            proj: Linear::new(dim, dim, true, seed.wrapping_add(2))?,
            relative_position_bias_table: table.requires_grad(),
            relative_position_index: relative_position_index(window_size),
        })
    }

    /// `x` `(windows, N, dim)` with `N` at most the full window's tokens (MONAI then uses the
    /// index's top-left `N x N`), `mask` `(nW, N, N)` added to window `w` as `mask[w % nW]`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let full: usize = self.window_size.iter().product();
        let n = if x.rank() == 3 { x.shape()[1] } else { 0 };
        if n == 0 || n > full {
            return Err(Error::ShapeMismatch {
                op: "WindowAttention",
                expected: format!("(windows, tokens <= {full}, dim)"),
                found: x.shape().to_vec(),
            });
        }
        let index: Vec<usize> = (0..n)
            .flat_map(|i| self.relative_position_index[i * full..][..n].iter().copied())
            .collect();
        let bias = RelativeBias {
            table: &self.relative_position_bias_table,
            index: &index,
        };
        let a = self
            .qkv
            .forward(x)?
            .window_attention(bias, mask, self.num_heads, self.scale)?;
        self.proj.forward(&a)
    }
}

impl Module for WindowAttention {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("relative_position_bias_table", &self.relative_position_bias_table);
        visit_child("qkv", &self.qkv, f);
        visit_child("proj", &self.proj, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f("relative_position_bias_table", &mut self.relative_position_bias_table);
        visit_child_mut("qkv", &mut self.qkv, f);
        visit_child_mut("proj", &mut self.proj, f);
    }
}
