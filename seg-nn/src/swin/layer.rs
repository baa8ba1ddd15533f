//! MONAI's `BasicLayer`: one stage of Swin blocks, unshifted and shifted in turn, then optional
//! patch merging.

use seg_tensor::{Error, Result, Tensor};

use super::block::SwinTransformerBlock;
use super::merging::{MergingVersion, PatchMerging};
use super::windows::{compute_mask, get_window_size};
use crate::layers::Layer;
use crate::{visit_child, visit_child_mut, Module};

/// The hyper-parameters of a [`BasicLayer`], as MONAI's arguments (dropout and drop-path 0).
#[derive(Clone, Debug, PartialEq)]
pub struct BasicLayerConfig {
    pub dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub window_size: Vec<usize>,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// `downsample`: MONAI's "merging" (v1) or "mergingv2" (v2) class, or none.
    pub downsample: Option<MergingVersion>,
}

/// MONAI's `BasicLayer` on channels-first maps `(B, C, *S)` (2D or 3D): block `i` shifts by
/// `window / 2` when `i` is odd; all share the mask `compute_mask` gives for the map padded to
/// whole windows; then `downsample` (to `(B, 2C, *ceil(S / 2))`). Parameters `blocks.{i}`,
/// `downsample`.
#[derive(Clone, Debug)]
pub struct BasicLayer {
    pub window_size: Vec<usize>,
    pub shift_size: Vec<usize>,
    pub blocks: Vec<SwinTransformerBlock>,
    pub downsample: Option<PatchMerging>,
}

impl BasicLayer {
    pub fn new(config: &BasicLayerConfig, seed: u64) -> Result<Self> {
        let c = config;
        if !(2..=3).contains(&c.window_size.len()) || c.window_size.contains(&0) {
            return Err(Error::invalid(
                "BasicLayer",
                format!("expected a positive 2D or 3D window, found {:?}", c.window_size),
            ));
        }
        let shift: Vec<usize> = c.window_size.iter().map(|w| w / 2).collect();
        let no_shift = vec![0; shift.len()];
        let blocks = (0..c.depth)
            .map(|i| {
                let s = if i % 2 == 0 { &no_shift } else { &shift };
                let seed = seed.wrapping_add(100 * i as u64);
                SwinTransformerBlock::new(c.dim, c.num_heads, &c.window_size, s, c.mlp_ratio, c.qkv_bias, seed)
            })
            .collect::<Result<_>>()?;
        let downsample = c
            .downsample
            .map(|v| PatchMerging::new(c.dim, c.window_size.len(), v, seed.wrapping_add(99)))
            .transpose()?;
        Ok(Self {
            window_size: c.window_size.clone(),
            shift_size: shift,
            blocks,
            downsample,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let r = self.window_size.len();
        if x.rank() != r + 2 {
            return Err(Error::ShapeMismatch {
                op: "BasicLayer",
                expected: format!("(B, C, {r} spatial axes)"),
                found: x.shape().to_vec(),
            });
        }
        let size = &x.shape()[2..];
        let (window, shift) = get_window_size(size, &self.window_size, &self.shift_size);
        let padded: Vec<usize> = size.iter().zip(&window).map(|(s, w)| s.div_ceil(*w) * w).collect();
        let mask = compute_mask(&padded, &window, &shift)?
            .to_device(x.device())?
            .to_dtype(x.dtype())?;
        let last = r as isize + 1;
        let to_last: Vec<isize> = std::iter::once(0).chain(2..=last).chain(std::iter::once(1)).collect();
        let mut h = x.permute(&to_last)?;
        for block in &self.blocks {
            h = block.forward(&h, Some(&mask))?;
        }
        if let Some(down) = &self.downsample {
            h = down.forward(&h)?;
        }
        let to_first: Vec<isize> = [0, last].into_iter().chain(1..last).collect();
        h.permute(&to_first)
    }
}

impl Module for BasicLayer {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, b) in self.blocks.iter().enumerate() {
            visit_child(&format!("blocks.{i}"), b, f);
        }
        if let Some(d) = &self.downsample {
            visit_child("downsample", d, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            visit_child_mut(&format!("blocks.{i}"), b, f);
        }
        if let Some(d) = &mut self.downsample {
            visit_child_mut("downsample", d, f);
        }
    }
}
