//! MONAI's `DiceCELoss`: Dice plus cross-entropy.

use seg_tensor::{Error, Result, Tensor};

use crate::cross_entropy::{BceWithLogitsLoss, CrossEntropyLoss};
use crate::options::{Activation, ClassWeight, Reduction};
use crate::prepare::{expect_target_channels, non_negative_lambda};
use crate::DiceLoss;

/// `monai.losses.DiceCELoss`: `lambda_dice * Dice + lambda_ce * CE` on logits `(B, C, spatial...)`.
///
/// Dice is [`DiceLoss`] with the same arguments (its class weights are `weight` without the
/// background when `include_background = false`). CE is [`CrossEntropyLoss`] with the class
/// `weight` and `label_smoothing` on the raw logits, against class indices when the target is
/// labels `(B, 1, ...)` and against the target as probabilities when it has `C` channels; with one
/// prediction channel it is [`BceWithLogitsLoss`] with `pos_weight = weight` instead. `reduction` is
/// `Mean` or `Sum` (MONAI's `DiceCEReduction`).
#[derive(Clone, Debug)]
pub struct DiceCELoss {
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
    pub squared_pred: bool,
    pub jaccard: bool,
    pub reduction: Reduction,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub batch: bool,
    /// One weight per class (all classes, background included).
    pub weight: Option<Vec<f64>>,
    pub lambda_dice: f64,
    pub lambda_ce: f64,
    pub label_smoothing: f64,
}

impl Default for DiceCELoss {
    /// MONAI's defaults: Dice's defaults, `lambda_dice = lambda_ce = 1`, no label smoothing.
    fn default() -> Self {
        let d = DiceLoss::default();
        Self {
            include_background: d.include_background,
            to_onehot_y: d.to_onehot_y,
            sigmoid: d.sigmoid,
            softmax: d.softmax,
            other_act: d.other_act,
            squared_pred: d.squared_pred,
            jaccard: d.jaccard,
            reduction: d.reduction,
            smooth_nr: d.smooth_nr,
            smooth_dr: d.smooth_dr,
            batch: d.batch,
            weight: None,
            lambda_dice: 1.0,
            lambda_ce: 1.0,
            label_smoothing: 0.0,
        }
    }
}

const OP: &str = "DiceCELoss";

impl DiceCELoss {
    /// The loss of logits `input` `(B, C, spatial...)` against `target` `(B, C, ...)` or labels
    /// `(B, 1, ...)`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if self.reduction == Reduction::None {
            return Err(Error::invalid(
                OP,
                "reduction must be \"mean\" or \"sum\", found \"none\"",
            ));
        }
        non_negative_lambda(OP, "lambda_dice", self.lambda_dice)?;
        non_negative_lambda(OP, "lambda_ce", self.lambda_ce)?;
        expect_target_channels(OP, input, target)?;
        let dice_weight = self.weight.as_ref().map(|w| {
            let kept = if self.include_background {
                &w[..]
            } else {
                &w[1.min(w.len())..]
            };
            ClassWeight::PerClass(kept.to_vec())
        });
        let dice = DiceLoss {
            include_background: self.include_background,
            to_onehot_y: self.to_onehot_y,
            sigmoid: self.sigmoid,
            softmax: self.softmax,
            other_act: self.other_act,
            squared_pred: self.squared_pred,
            jaccard: self.jaccard,
            reduction: self.reduction,
            smooth_nr: self.smooth_nr,
            smooth_dr: self.smooth_dr,
            batch: self.batch,
            weight: dice_weight,
            ..DiceLoss::default()
        }
        .forward(input, target)?;
        let ce = if input.shape()[1] == 1 {
            BceWithLogitsLoss {
                pos_weight: self.weight.clone(),
                reduction: self.reduction,
            }
            .forward(input, target)?
        } else {
            let ce = CrossEntropyLoss {
                weight: self.weight.clone(),
                reduction: self.reduction,
                label_smoothing: self.label_smoothing,
            };
            if target.shape()[1] == 1 {
                ce.forward(input, &target.squeeze(1)?)?
            } else {
                ce.forward(input, target)?
            }
        };
        dice.mul_scalar(self.lambda_dice)?.add(&ce.mul_scalar(self.lambda_ce)?)
    }
}
