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
//!
//! ```
//! use seg_data::{augment::Augment, nifti, patch, preprocess, Rng};
//! use seg_tensor::Tensor;
//!
//! # fn main() -> seg_tensor::Result<()> {
//! // A 20^3 volume, zero outside a bright cube, labelled 1 inside it.
//! let inside = |i: usize| [i / 400, (i / 20) % 20, i % 20].iter().all(|&c| (5..15).contains(&c));
//! let values: Vec<f32> = (0..8000).map(|i| if inside(i) { 2.0 + (i % 7) as f32 } else { 0.0 }).collect();
//! let image = Tensor::from_vec(values, &[20, 20, 20])?;
//! let labels = Tensor::from_vec((0..8000).map(|i| inside(i) as u8).collect::<Vec<_>>(), &[20, 20, 20])?;
//!
//! let (image, labels, _box) = preprocess::crop_to_nonzero(&image, &labels)?; // 10^3
//! let image = preprocess::zscore_foreground(&image, None)?;
//! let split = patch::AxialSplit::new(10, 0.6, 0.2)?; // slices 6..8 held out
//! let train: Vec<_> = split.train.iter()
//!     .map(|r| Ok((patch::AxialSplit::slab(&image, r)?, patch::AxialSplit::slab(&labels, r)?)))
//!     .collect::<seg_tensor::Result<_>>()?;
//! let mut sampler = patch::PatchSampler::new(&train, [8, 8, 8], 0.33, 0)?;
//! let mut rng = Rng::new(0);
//! let batch = sampler.batch(3)?.into_iter().map(|p| {
//!     let (image, labels) = Augment::default().apply(&p.image, &p.labels, &mut rng)?;
//!     Ok(patch::Patch { image, labels, ..p })
//! }).collect::<seg_tensor::Result<Vec<_>>>()?;
//! let (x, y) = patch::stack(&batch)?;
//! assert_eq!(x.shape(), &[3, 1, 8, 8, 8]);
//!
//! // Labels written as NIfTI in a space of 1 mm voxels.
//! let header = nifti::Header::new(&[10, 10, 10], nifti::NiftiType::U8, &nifti::identity_affine());
//! let bytes = nifti::to_bytes(&header, &labels)?;
//! assert_eq!(nifti::from_bytes(&bytes, "labels.nii")?.data.shape(), &[10, 10, 10]);
//! # Ok(())
//! # }
//! ```

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
