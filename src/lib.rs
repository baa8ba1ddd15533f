//! `seg`: tensors, autodiff and hand-written kernels for 3D medical image segmentation.
//!
//! This facade re-exports the workspace crates and hosts the `seg` command-line program's library
//! parts: the conformance runner and the training pipeline.
//!
//! ```
//! use seg::{DType, Tensor};
//!
//! # fn main() -> seg::Result<()> {
//! let x = Tensor::randn(&[2, 3], 0, DType::F32)?.requires_grad();
//! let y = x.mul(&x)?.sum_all()?; // y = sum(x^2)
//! let grads = y.backward()?;
//! let dx = grads.get(&x).unwrap().to_vec::<f32>()?;
//! let twice_x: Vec<f32> = x.to_vec::<f32>()?.iter().map(|v| 2.0 * v).collect();
//! assert_eq!(dx, twice_x);
//! # Ok(())
//! # }
//! ```

pub mod conformance;
pub mod train;

pub use seg_data as data;
pub use seg_kernels as kernels;
pub use seg_losses as losses;
pub use seg_models as models;
pub use seg_nn as nn;
pub use seg_tensor::*;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
