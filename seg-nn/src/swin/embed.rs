//! MONAI's Swin `PatchEmbed`: non-overlapping patches by a strided convolution.

use seg_tensor::{ConvOptions, ConvPadding, Error, PadMode, Result, Tensor};

use crate::layers::{Conv, Layer, LayerNorm};
use crate::{visit_child, visit_child_mut, Module};

/// MONAI's `PatchEmbed(patch_size, in_chans, embed_dim, norm_layer, spatial_dims)`: `x` `(B,
/// in_chans, *S)` zero-padded at the end of each axis to a multiple of the patch, then `proj`
/// (convolution with kernel = stride = patch) and, when `norm` is there, LayerNorm over channels.
/// Parameters `proj`, `norm`.
#[derive(Clone, Debug)]
pub struct PatchEmbed {
    pub patch_size: Vec<usize>,
    pub proj: Conv,
    pub norm: Option<LayerNorm>,
}

impl PatchEmbed {
    pub fn new(patch_size: &[usize], in_chans: usize, embed_dim: usize, norm: bool, seed: u64) -> Result<Self> {
        if !(2..=3).contains(&patch_size.len()) || patch_size.contains(&0) {
            return Err(Error::invalid(
                "PatchEmbed",
                format!("expected a positive 2D or 3D patch size, found {patch_size:?}"),
            ));
        }
        let options = ConvOptions {
            stride: patch_size.to_vec(),
            padding: ConvPadding::Explicit(vec![0]),
            dilation: vec![1],
            groups: 1,
        };
        Ok(Self {
            patch_size: patch_size.to_vec(),
            proj: Conv::new(in_chans, embed_dim, patch_size, options, true, seed)?,
            norm: norm.then(|| LayerNorm::new(&[embed_dim], true, 1e-5)),
        })
    }
}

impl Layer for PatchEmbed {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let r = self.patch_size.len();
        if x.rank() != r + 2 {
            return Err(Error::ShapeMismatch {
                op: "PatchEmbed",
                expected: format!("(B, C, {r} spatial axes)"),
                found: x.shape().to_vec(),
            });
        }
        let mut pads = Vec::new();
        for a in (0..r).rev() {
            let (s, p) = (x.shape()[a + 2], self.patch_size[a]);
            pads.extend([0, ((p - s % p) % p) as isize]);
        }
        let y = self.proj.forward(&x.pad(&pads, PadMode::Constant, 0.0)?)?;
        let Some(norm) = &self.norm else { return Ok(y) };
        let last = r as isize + 1;
        let to_last: Vec<isize> = std::iter::once(0).chain(2..=last).chain(std::iter::once(1)).collect();
        let to_first: Vec<isize> = [0, last].into_iter().chain(1..last).collect();
        norm.forward(&y.permute(&to_last)?)?.permute(&to_first)
    }
}

impl Module for PatchEmbed {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("proj", &self.proj, f);
        if let Some(n) = &self.norm {
            visit_child("norm", n, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("proj", &mut self.proj, f);
        if let Some(n) = &mut self.norm {
            visit_child_mut("norm", n, f);
        }
    }
}
