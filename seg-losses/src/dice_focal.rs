//! MONAI's `DiceFocalLoss`: Dice plus focal loss.

use seg_tensor::{Result, Tensor};

use crate::options::{Activation, ClassWeight, Reduction};
use crate::prepare::{expect_target_channels, non_negative_lambda, one_hot};
use crate::{DiceLoss, FocalLoss};

/// `monai.losses.DiceFocalLoss`: `lambda_dice * Dice + lambda_focal * Focal` on logits
/// `(B, C, spatial...)`. The target is made one-hot first (`to_onehot_y`, more than one channel);
/// Dice is [`DiceLoss`] with the activation and `weight`; Focal is [`FocalLoss`] in its sigmoid form
/// on the raw logits with `gamma`, `alpha` and `weight` (MONAI does not pass a softmax form on).
/// With `Reduction::None` the two broadcast: `(B, C, 1, ...) + (B, C, spatial...)`.
#[derive(Clone, Debug)]
pub struct DiceFocalLoss {
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
    pub gamma: f64,
    pub weight: Option<ClassWeight>,
    pub lambda_dice: f64,
    pub lambda_focal: f64,
    /// The focal loss's scalar `alpha`.
    pub alpha: Option<f64>,
}

impl Default for DiceFocalLoss {
    /// MONAI's defaults: Dice's and Focal's defaults, `lambda_dice = lambda_focal = 1`.
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
            gamma: 2.0,
            weight: None,
            lambda_dice: 1.0,
            lambda_focal: 1.0,
            alpha: None,
        }
    }
}

const OP: &str = "DiceFocalLoss";

impl DiceFocalLoss {
    /// The loss of logits `input` `(B, C, spatial...)` against `target` `(B, C, ...)` or labels
    /// `(B, 1, ...)` with `to_onehot_y`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        non_negative_lambda(OP, "lambda_dice", self.lambda_dice)?;
        non_negative_lambda(OP, "lambda_focal", self.lambda_focal)?;
        expect_target_channels(OP, input, target)?;
        let classes = input.shape()[1];
        let target = if self.to_onehot_y && classes > 1 {
            one_hot(OP, &target.to_dtype(input.dtype())?, classes)?
        } else {
            target.clone()
        };
        let dice = DiceLoss {
            include_background: self.include_background,
            sigmoid: self.sigmoid,
            softmax: self.softmax,
            other_act: self.other_act,
            squared_pred: self.squared_pred,
            jaccard: self.jaccard,
            reduction: self.reduction,
            smooth_nr: self.smooth_nr,
            smooth_dr: self.smooth_dr,
            batch: self.batch,
            weight: self.weight.clone(),
            ..DiceLoss::default()
        }
        .forward(input, &target)?;
        let focal = FocalLoss {
            include_background: self.include_background,
            gamma: self.gamma,
            alpha: self.alpha.map(ClassWeight::Scalar),
            weight: self.weight.clone(),
            reduction: self.reduction,
            ..FocalLoss::default()
        }
        .forward(input, &target)?;
        dice.mul_scalar(self.lambda_dice)?
            .add(&focal.mul_scalar(self.lambda_focal)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        let loss = DiceFocalLoss {
            softmax: true,
            to_onehot_y: true,
            weight: Some(ClassWeight::PerClass(vec![0.5, 1.0, 1.5])),
            alpha: Some(0.3),
            gamma: 1.0,
            lambda_focal: 2.0,
            ..Default::default()
        };
        check_grad(|x, y| loss.forward(x, y), &x, &y);
    }

    #[test]
    fn focal_part_is_sigmoid_focal_on_the_logits() {
        let (x, y) = (logits(&[2, 3, 4, 3], 3), labels(&[2, 1, 4, 3], 3, 4));
        let loss = DiceFocalLoss {
            softmax: true,
            to_onehot_y: true,
            lambda_dice: 0.0,
            ..Default::default()
        };
        let focal = FocalLoss {
            to_onehot_y: true,
            ..Default::default()
        };
        let (a, b) = (
            value(&loss.forward(&x, &y).unwrap()),
            value(&focal.forward(&x, &y).unwrap()),
        );
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}
