//! Segmentation metrics with MONAI's definitions and empty-mask conventions (no gradients).
//!
//! Every metric takes a binarized one-hot prediction and ground truth of shape `(B, C, spatial...)`
//! and returns a `(B, C')` f32 tensor, one value per batch item and class, where `C' = C - 1` when the
//! background (class 0) is left out.

pub mod edt;
mod masks;
mod overlap;
mod surface;

pub use masks::ClassMasks;
pub use overlap::{dice, mean_iou};
pub use surface::{
    average_surface_distance, hausdorff_distance, mask_edges, percentile, surface_distances, surface_metrics,
    SurfaceMetrics,
};
