//! `seg-losses`: segmentation losses with MONAI's definitions, differentiable through `seg-tensor`'s
//! autodiff.
//!
//! Each loss is a struct whose public fields are MONAI's constructor arguments (same names, same
//! meaning), `Default` gives MONAI's defaults, and `forward(input, target)` returns the loss as a
//! tensor that `backward()` differentiates:
//!
//! | struct | MONAI / PyTorch |
//! | --- | --- |
//! | [`DiceLoss`] | `monai.losses.DiceLoss` (Dice and Jaccard, class weights, soft labels, `ignore_index`) |
//! | [`GeneralizedDiceLoss`] | `monai.losses.GeneralizedDiceLoss` (`w_type` square, simple, uniform) |
//! | [`TverskyLoss`] | `monai.losses.TverskyLoss` |
//! | [`FocalLoss`] | `monai.losses.FocalLoss` (sigmoid and softmax forms) |
//! | [`DiceCELoss`], [`DiceFocalLoss`] | `monai.losses.DiceCELoss`, `monai.losses.DiceFocalLoss` |
//! | [`SoftclDiceLoss`], [`SoftDiceclDiceLoss`] | `monai.losses.SoftclDiceLoss`, `monai.losses.SoftDiceclDiceLoss` ([`skeleton`]) |
//! | [`CrossEntropyLoss`], [`BceWithLogitsLoss`] | `torch.nn.CrossEntropyLoss`, `torch.nn.BCEWithLogitsLoss` |
//! | [`PolyDiceLoss`] | ours: the Poly-1 idea applied to the Taylor series of `-ln Dice` |
//!
//! The compound losses hold the loss whose arguments they share, so each argument has one home:
//! `DiceCELoss { dice: DiceLoss { softmax: true, to_onehot_y: true, ..Default::default() },
//! ..Default::default() }` is MONAI's `DiceCELoss(softmax=True, to_onehot_y=True)`
//! ([`DiceCELoss`], [`DiceFocalLoss`] and [`PolyDiceLoss`] hold a `dice`, [`SoftDiceclDiceLoss`] a
//! `cldice`); their own fields are the rest of MONAI's arguments (`weight`, `lambda_*`, ...).
//!
//! Where MONAI only warns (softmax, `to_onehot_y` or `include_background=False` on a single-channel
//! prediction) the step is skipped as in MONAI; everything MONAI rejects is an [`seg_tensor::Error`].
//!
//! ```
//! use seg_losses::DiceLoss;
//! use seg_tensor::{DType, Tensor};
//!
//! # fn main() -> seg_tensor::Result<()> {
//! let logits = Tensor::randn(&[2, 3, 4, 4, 4], 0, DType::F32)?.requires_grad();
//! let labels = Tensor::zeros(&[2, 1, 4, 4, 4], DType::F32);
//! let loss = DiceLoss { softmax: true, to_onehot_y: true, ..Default::default() }.forward(&logits, &labels)?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&logits).unwrap().shape(), logits.shape());
//! # Ok(())
//! # }
//! ```

mod cldice;
mod cross_entropy;
mod dice;
mod dice_ce;
mod dice_focal;
mod focal;
mod generalized_dice;
mod label_sums;
mod options;
mod overlap;
mod poly_dice;
mod prepare;
mod sigmoid_focal;
pub mod skeleton;
#[cfg(test)]
mod testing;
mod tversky;

pub mod metrics;
pub mod topology;

pub use cldice::{SoftDiceclDiceLoss, SoftclDiceLoss};
pub use cross_entropy::{BceWithLogitsLoss, CrossEntropyLoss};
pub use dice::DiceLoss;
pub use dice_ce::DiceCELoss;
pub use dice_focal::DiceFocalLoss;
pub use focal::FocalLoss;
pub use generalized_dice::{GeneralizedDiceLoss, Weight};
pub use options::{Activation, ClassWeight, Reduction};
pub use poly_dice::PolyDiceLoss;
pub use tversky::TverskyLoss;
