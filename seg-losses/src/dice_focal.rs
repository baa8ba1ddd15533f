//! MONAI's `DiceFocalLoss`: Dice plus focal loss.

use seg_tensor::{Result, Tensor};

use crate::label_sums::LabelSums;
use crate::options::{ClassWeight, Reduction};
use crate::prepare::{expect_no_dice_weight, non_negative_lambda, onehot_target_first};
use crate::{DiceLoss, FocalLoss};

/// `monai.losses.DiceFocalLoss`: `lambda_dice * Dice + lambda_focal * Focal` on logits
/// `(B, C, spatial...)`. The target is made one-hot first (`dice.to_onehot_y`, more than one channel);
/// Dice is `dice` (MONAI's `include_background`, `to_onehot_y`, `sigmoid`, `softmax`, `other_act`,
/// `squared_pred`, `jaccard`, `reduction`, `smooth_nr`, `smooth_dr`, `batch`; its `soft_label` and
/// `ignore_index` apply to the Dice term only) with `weight`; Focal is
/// [`FocalLoss`] in its sigmoid form on the raw logits with `gamma`, `alpha`, `weight` and `dice`'s
/// `include_background` and `reduction` (MONAI does not pass a softmax form on). With
/// `Reduction::None` the two broadcast: `(B, C, 1, ...) + (B, C, spatial...)`.
#[derive(Clone, Debug)]
pub struct DiceFocalLoss {
    /// The Dice term and the arguments the two terms share; its own `weight` stays `None`.
    pub dice: DiceLoss,
    pub gamma: f64,
    /// Per-class weights of both terms.
    pub weight: Option<ClassWeight>,
    pub lambda_dice: f64,
    pub lambda_focal: f64,
    /// The focal loss's scalar `alpha`.
    pub alpha: Option<f64>,
}

impl Default for DiceFocalLoss {
    /// MONAI's defaults: Dice's and Focal's defaults, `lambda_dice = lambda_focal = 1`.
    fn default() -> Self {
        Self {
            dice: DiceLoss::default(),
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
    /// `(B, 1, ...)` with `dice.to_onehot_y`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        expect_no_dice_weight(OP, &self.dice, "set DiceFocalLoss.weight: it serves both terms")?;
        non_negative_lambda(OP, "lambda_dice", self.lambda_dice)?;
        non_negative_lambda(OP, "lambda_focal", self.lambda_focal)?;
        let focal = FocalLoss {
            include_background: self.dice.include_background,
            gamma: self.gamma,
            alpha: self.alpha.map(ClassWeight::Scalar),
            weight: self.weight.clone(),
            reduction: self.dice.reduction,
            ..FocalLoss::default()
        };
        let dice = DiceLoss {
            weight: self.weight.clone(),
            ..self.dice.clone()
        };
        let (dice, focal) = if dice.fuses(input, target) && dice.reduction != Reduction::None {
            let sums = LabelSums::new(OP, input, target, dice.label_sums_options(Some(self.gamma)))?;
            (dice.of_label_sums(&sums, input.rank())?, focal.of_label_sums(&sums)?)
        } else {
            let target = onehot_target_first(OP, input, target, self.dice.to_onehot_y)?;
            let dice = DiceLoss {
                to_onehot_y: false,
                ..dice
            };
            (dice.forward(input, &target)?, focal.forward(input, &target)?)
        };
        dice.mul_scalar(self.lambda_dice)?
            .add(&focal.mul_scalar(self.lambda_focal)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, softmax_onehot, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        let loss = DiceFocalLoss {
            dice: softmax_onehot(),
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
            dice: softmax_onehot(),
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

    #[test]
    fn a_dice_weight_and_a_negative_lambda_are_errors() {
        let (x, y) = (logits(&[2, 3, 4], 5), labels(&[2, 1, 4], 3, 6));
        let dice_weight = DiceFocalLoss {
            dice: DiceLoss {
                weight: Some(ClassWeight::Scalar(2.0)),
                ..softmax_onehot()
            },
            ..Default::default()
        };
        assert!(dice_weight
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("dice.weight"));
        let negative = DiceFocalLoss {
            dice: softmax_onehot(),
            lambda_focal: -1.0,
            ..Default::default()
        };
        assert!(negative
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("lambda_focal"));
    }
}
