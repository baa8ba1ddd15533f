//! `seg-data`: the data side of training a 3D segmentation network on MRI.
//!
//! - [`nifti`]: NIfTI-1 reading and writing (`.nii`, `.nii.gz`), header, affine and spacing.
//! - [`mni`]: the bundled MNI ICBM152 template and its grey/white-matter label map.
//! - [`preprocess`]: nnU-Net's foreground z-score, resampling to a target spacing, cropping to the
//!   nonzero bounding box.
//! - [`patch`]: patch sampling with foreground oversampling and the held-out axial slab.
//! - [`augment`]: seeded flips, rotation and scaling, gamma and Gaussian noise.
//! - [`picture`]: PNG overlays of truth and prediction contours, and learning curves.
//!
//! **Axis order.** A NIfTI file stores x fastest, then y, then z. A volume is exposed as a C-order
//! [`Tensor`](seg_tensor::Tensor) of shape `(D, H, W) = (z, y, x)`: the file's bytes in the file's
//! order, no transpose, and the layout `conv3d` expects for `(N, C, D, H, W)`. Axis 0 is the axial
//! (inferior-superior) axis of an RAS-oriented scan. Spacings and bounding boxes in this crate are given
//! in that tensor order unless a name says `xyz`.
//!
//! Images are f32 tensors; label maps are u8 tensors of class indices (0 = background).

pub mod augment;
mod interp;
pub mod mni;
pub mod nifti;
pub mod patch;
pub mod picture;
pub mod preprocess;
mod rng;
mod volume;

pub use rng::Rng;
pub use volume::to_labels;
