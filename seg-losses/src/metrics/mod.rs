//! Segmentation metrics with MONAI's definitions and empty-mask conventions (no gradients).
//!
//! Every metric takes a binarized one-hot prediction and ground truth of shape `(B, C, spatial...)`
//! and returns a `(B, C')` f32 tensor, one value per batch item and class, where `C' = C - 1` when the
//! background (class 0) is left out.
//!
//! ```
//! use seg_tensor::Tensor;
//! use seg_losses::metrics::{dice, surface_metrics};
//!
//! # fn main() -> seg_tensor::Result<()> {
//! // One item, background + one class, a 1 x 6 image: prediction cells 0-1, truth cells 1-2.
//! let pred = Tensor::from_slice(&[0.0f32, 0., 1., 1., 1., 1., 1., 1., 0., 0., 0., 0.], &[1, 2, 1, 6])?;
//! let truth = Tensor::from_slice(&[1.0f32, 0., 0., 1., 1., 1., 0., 1., 1., 0., 0., 0.], &[1, 2, 1, 6])?;
//! assert_eq!(dice(&pred, &truth, false, true)?.to_vec_f64(), vec![0.5]);
//! let s = surface_metrics(&pred, &truth, false, Some(&[1.0, 0.5]))?;
//! assert_eq!(s.hd.to_vec_f64(), vec![0.5]);
//! # Ok(())
//! # }
//! ```

mod cldice;
pub mod edt;
mod masks;
mod overlap;
pub mod skeletonize;
mod surface;

pub use cldice::cldice_metric;
pub use masks::ClassMasks;
pub use overlap::{dice, mean_iou};
pub use surface::{
    average_surface_distance, hausdorff_distance, mask_edges, percentile, surface_distances, surface_metrics,
    SurfaceMetrics,
};
