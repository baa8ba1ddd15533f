//! nnU-Net's network plan: the stages, strides and kernel sizes of a [`PlainConvUNet`] from the
//! patch size and voxel spacing (nnU-Net's `get_pool_and_conv_props`), and the features per stage.

use seg_tensor::{Error, Result};

use crate::PlainUNetConfig;

/// What nnU-Net derives from a patch size and spacing.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub config: PlainUNetConfig,
    /// The patch size rounded up to a multiple of the total stride.
    pub patch_size: Vec<usize>,
}

/// nnU-Net's rule, per downsampling step: pool (stride 2) every axis whose size is still at least
/// `2 min_feature_map_size` (4) and whose spacing is within a factor 2 of the finest such axis (a
/// lone axis only while at least `3 min_feature_map_size`); an axis's kernel becomes 3 once its
/// spacing is within a factor 2 of the finest, and stays 1 before (thick slices); the bottleneck
/// gets 3 everywhere. Features per stage `min(32 2^s, 320)` (512 in 2D), two convolutions per
/// stage and per decoder stage, instance norm, LeakyReLU, deep supervision as asked.
pub fn plan(
    input_channels: usize,
    num_classes: usize,
    patch_size: &[usize],
    spacing: &[f64],
    deep_supervision: bool,
) -> Result<Plan> {
    const MIN_FEATURE_MAP: usize = 4;
    let dim = spacing.len();
    if !(2..=3).contains(&dim) || patch_size.len() != dim || spacing.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return Err(Error::invalid(
            "nnU-Net plan",
            format!("a patch size and positive spacing per axis (2 or 3 axes), found {patch_size:?} and {spacing:?}"),
        ));
    }
    let mut current_spacing = spacing.to_vec();
    let mut current_size = patch_size.to_vec();
    let mut strides = vec![vec![1; dim]];
    let mut kernels = Vec::new();
    let mut kernel = vec![1; dim];
    let mut pools = vec![0u32; dim];
    loop {
        let mut valid: Vec<usize> = (0..dim).filter(|&a| current_size[a] >= 2 * MIN_FEATURE_MAP).collect();
        if valid.is_empty() {
            break;
        }
        let finest = valid.iter().map(|&a| current_spacing[a]).fold(f64::INFINITY, f64::min);
        valid.retain(|&a| current_spacing[a] / finest < 2.0);
        if valid.len() == 1 && current_size[valid[0]] < 3 * MIN_FEATURE_MAP {
            break;
        }
        if valid.is_empty() {
            break;
        }
        let finest_all = current_spacing.iter().copied().fold(f64::INFINITY, f64::min);
        for a in 0..dim {
            if current_spacing[a] / finest_all < 2.0 {
                kernel[a] = 3;
            }
        }
        let mut stride = vec![1; dim];
        for &a in &valid {
            stride[a] = 2;
            pools[a] += 1;
            current_spacing[a] *= 2.0;
            current_size[a] = current_size[a].div_ceil(2);
        }
        strides.push(stride);
        kernels.push(kernel.clone());
    }
    kernels.push(vec![3; dim]);
    let divisor: Vec<usize> = pools.iter().map(|&p| 1 << p).collect();
    let patch_size = patch_size
        .iter()
        .zip(&divisor)
        .map(|(&p, &d)| p.div_ceil(d) * d)
        .collect();
    let stages = strides.len();
    let max_features = if dim == 3 { 320 } else { 512 };
    Ok(Plan {
        config: PlainUNetConfig {
            input_channels,
            features_per_stage: (0..stages).map(|s| (32usize << s.min(20)).min(max_features)).collect(),
            kernel_sizes: kernels,
            strides,
            n_conv_per_stage: vec![2; stages],
            n_conv_per_stage_decoder: vec![2; stages - 1],
            num_classes,
            conv_bias: true,
            deep_supervision,
        },
        patch_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotropic_patch_pools_every_axis_down_to_four() {
        let p = plan(1, 3, &[128, 128, 128], &[1.0, 1.0, 1.0], true).unwrap();
        assert_eq!(p.config.strides.len(), 6);
        assert!(p.config.strides[1..].iter().all(|s| s == &[2, 2, 2]));
        assert!(p.config.kernel_sizes.iter().all(|k| k == &[3, 3, 3]));
        assert_eq!(p.config.features_per_stage, [32, 64, 128, 256, 320, 320]);
        assert_eq!(p.patch_size, [128, 128, 128]);
    }

    #[test]
    fn thick_slices_are_pooled_late_and_convolved_in_plane_first() {
        // nnU-Net's plan for 3.6 x 0.7 x 0.7 mm at 20 x 256 x 224 (a prostate-like anisotropy).
        let p = plan(1, 2, &[20, 256, 224], &[3.6, 0.7, 0.7], false).unwrap();
        let c = &p.config;
        assert_eq!(c.strides[1], [1, 2, 2]);
        assert_eq!(c.kernel_sizes[0], [1, 3, 3]);
        assert_eq!(c.kernel_sizes.last().unwrap(), &[3, 3, 3]);
        let total = c.total_stride();
        assert!(p.patch_size.iter().zip(&total).all(|(p, t)| p % t == 0));
        assert!(total[0] < total[1]);
    }

    #[test]
    fn bad_plans_are_errors() {
        assert!(plan(1, 2, &[64, 64], &[1.0, 1.0, 1.0], false).is_err());
        assert!(plan(1, 2, &[64, 64, 64], &[1.0, 0.0, 1.0], false).is_err());
    }
}
