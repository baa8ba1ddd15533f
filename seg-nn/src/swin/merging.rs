//! MONAI's patch merging (`PatchMerging`, "merging", and `PatchMergingV2`, "mergingv2"): every
//! 2 x 2 (x 2) neighbourhood of a channels-last map concatenated along channels, normalised and
//! reduced to `2 C`.

use seg_tensor::{Error, PadMode, Result, Tensor};

use crate::layers::{Layer, LayerNorm, Linear};
use crate::{visit_child, visit_child_mut, Module};

/// Which of MONAI's two orders the neighbours are concatenated in (they differ in 3D only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergingVersion {
    /// `PatchMerging` ("merging"): offsets (d, h, w) in the order 000, 100, 010, 001, 110, 101,
    /// 011, 111.
    V1,
    /// `PatchMergingV2` ("mergingv2"): offsets in row-major order 000, 001, 010, ..., 111.
    V2,
}

/// In 3D, the v1 order as positions in the v2 (row-major) order.
const V1_ORDER: [i64; 8] = [0, 4, 2, 1, 6, 5, 3, 7];

/// MONAI's patch merging: `x` `(B, *S, C)` padded to even sizes at the end of each axis, the
/// neighbours concatenated (`2^r C` channels), then `norm` (LayerNorm) and `reduction` (Linear to
/// `2 C`, no bias). In 2D both versions take `x[:, j::2, i::2]` for `(i, j)` in row-major order.
#[derive(Clone, Debug)]
pub struct PatchMerging {
    pub version: MergingVersion,
    pub spatial_dims: usize,
    pub norm: LayerNorm,
    pub reduction: Linear,
}

impl PatchMerging {
    pub fn new(dim: usize, spatial_dims: usize, version: MergingVersion, seed: u64) -> Result<Self> {
        if !(2..=3).contains(&spatial_dims) {
            return Err(Error::invalid(
                "PatchMerging",
                format!("expected 2 or 3 spatial dims, found {spatial_dims}"),
            ));
        }
        let merged = (1 << spatial_dims) * dim;
        Ok(Self {
            version,
            spatial_dims,
            norm: LayerNorm::new(&[merged], true, 1e-5),
            reduction: Linear::new(merged, 2 * dim, false, seed)?,
        })
    }
}

impl Layer for PatchMerging {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let r = self.spatial_dims;
        if x.rank() != r + 2 {
            return Err(Error::ShapeMismatch {
                op: "PatchMerging",
                expected: format!("(B, {r} spatial axes, C)"),
                found: x.shape().to_vec(),
            });
        }
        let (b, c) = (x.shape()[0], x.shape()[r + 1]);
        let size = x.shape()[1..=r].to_vec();
        let mut pads = vec![0isize, 0];
        for a in (0..r).rev() {
            pads.extend([0, (size[a] % 2) as isize]);
        }
        let x = x.pad(&pads, PadMode::Constant, 0.0)?;
        let half: Vec<usize> = size.iter().map(|s| s.div_ceil(2)).collect();
        // (B, n_1, 2, ..., n_r, 2, C) -> (B, n_1, ..., n_r, offsets..., C)
        let mut split = vec![b];
        for &h in &half {
            split.extend([h, 2]);
        }
        split.push(c);
        let offsets: Vec<isize> = if r == 2 {
            // MONAI's 2D order varies the h offset fastest: w offset first.
            vec![4, 2]
        } else {
            (0..r).map(|a| 2 * a as isize + 2).collect()
        };
        let order: Vec<isize> = std::iter::once(0)
            .chain((0..r).map(|a| 2 * a as isize + 1))
            .chain(offsets)
            .chain(std::iter::once(2 * r as isize + 1))
            .collect();
        let mut merged_shape = vec![b];
        merged_shape.extend(&half);
        merged_shape.extend([1 << r, c]);
        let mut merged = x.reshape(&split)?.permute(&order)?.reshape(&merged_shape)?;
        if r == 3 && self.version == MergingVersion::V1 {
            let index = Tensor::from_vec(V1_ORDER.to_vec(), &[8])?.to_device(x.device())?;
            merged = merged.index_select(r as isize + 1, &index)?;
        }
        let merged = merged.flatten(r as isize + 1, -1)?;
        self.reduction.forward(&self.norm.forward(&merged)?)
    }
}

impl Module for PatchMerging {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("norm", &self.norm, f);
        visit_child("reduction", &self.reduction, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_child_mut("norm", &mut self.norm, f);
        visit_child_mut("reduction", &mut self.reduction, f);
    }
}
