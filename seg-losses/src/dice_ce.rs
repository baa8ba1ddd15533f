//! MONAI's `DiceCELoss`: Dice plus cross-entropy.

use seg_tensor::{Error, Result, Tensor};

use crate::cross_entropy::{BceWithLogitsLoss, CrossEntropyLoss};
use crate::label_sums::LabelSums;
use crate::options::{ClassWeight, Reduction};
use crate::prepare::{expect_finite, expect_no_dice_weight, expect_target_channels, non_negative_lambda};
use crate::DiceLoss;

/// `monai.losses.DiceCELoss`: `lambda_dice * Dice + lambda_ce * CE` on logits `(B, C, spatial...)`.
///
/// Dice is `dice` (MONAI's `include_background`, `to_onehot_y`, `sigmoid`, `softmax`, `other_act`,
/// `squared_pred`, `jaccard`, `reduction`, `smooth_nr`, `smooth_dr`, `batch`; its `soft_label` and
/// `ignore_index` apply to the Dice term only), with the class weights `weight` without the background
/// when `include_background = false`. CE is [`CrossEntropyLoss`] with
/// the class `weight`, `label_smoothing` and `dice.reduction` on the raw logits, against class indices
/// when the target is labels `(B, 1, ...)` and against the target as probabilities when it has `C`
/// channels; with one prediction channel it is [`BceWithLogitsLoss`] with `pos_weight = weight`
/// instead. `dice.reduction` is `Mean` or `Sum` (MONAI's `DiceCEReduction`).
///
/// With `softmax` and `to_onehot_y` on labels both terms come from one fused pass (`label_sums.rs`).
#[derive(Clone, Debug)]
pub struct DiceCELoss {
    /// The Dice term and the arguments the two terms share; its own `weight` stays `None`.
    pub dice: DiceLoss,
    /// One weight per class (all classes, background included), for both terms.
    pub weight: Option<Vec<f64>>,
    pub lambda_dice: f64,
    pub lambda_ce: f64,
    pub label_smoothing: f64,
}

impl Default for DiceCELoss {
    /// MONAI's defaults: Dice's defaults, `lambda_dice = lambda_ce = 1`, no label smoothing.
    fn default() -> Self {
        Self {
            dice: DiceLoss::default(),
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
        let reduction = self.dice.reduction;
        if reduction == Reduction::None {
            return Err(Error::invalid(
                OP,
                "reduction must be \"mean\" or \"sum\", found \"none\"",
            ));
        }
        expect_no_dice_weight(OP, &self.dice, "set DiceCELoss.weight: it serves both terms")?;
        non_negative_lambda(OP, "lambda_dice", self.lambda_dice)?;
        non_negative_lambda(OP, "lambda_ce", self.lambda_ce)?;
        expect_target_channels(OP, input, target)?;
        let dice_weight = self.weight.as_ref().map(|w| {
            let kept = if self.dice.include_background {
                &w[..]
            } else {
                &w[1.min(w.len())..]
            };
            ClassWeight::PerClass(kept.to_vec())
        });
        let dice = DiceLoss {
            weight: dice_weight,
            ..self.dice.clone()
        };
        let ce = CrossEntropyLoss {
            weight: self.weight.clone(),
            reduction,
            label_smoothing: self.label_smoothing,
        };
        let (dice, ce) = if dice.fuses(input, target) {
            let sums = LabelSums::new(OP, input, target, dice.label_sums_options(None))?;
            (dice.of_label_sums(&sums, input.rank())?, ce.of_label_sums(&sums)?)
        } else {
            expect_finite(OP, input, target)?;
            let ce = if input.shape()[1] == 1 {
                let bce = BceWithLogitsLoss {
                    pos_weight: self.weight.clone(),
                    reduction,
                };
                bce.forward(input, target)?
            } else if target.shape()[1] == 1 {
                ce.forward(input, &target.squeeze(1)?)?
            } else {
                ce.forward(input, target)?
            };
            (dice.forward(input, target)?, ce)
        };
        dice.mul_scalar(self.lambda_dice)?.add(&ce.mul_scalar(self.lambda_ce)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, mask, softmax_onehot, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        let loss = DiceCELoss {
            dice: DiceLoss {
                include_background: false,
                ..softmax_onehot()
            },
            weight: Some(vec![0.5, 1.0, 2.0]),
            label_smoothing: 0.1,
            lambda_dice: 0.7,
            ..Default::default()
        };
        check_grad(|x, y| loss.forward(x, y), &x, &y);
        let single = DiceCELoss {
            dice: DiceLoss {
                sigmoid: true,
                reduction: Reduction::Sum,
                ..Default::default()
            },
            weight: Some(vec![2.0]),
            ..Default::default()
        };
        check_grad(
            |x, y| single.forward(x, y),
            &logits(&[2, 1, 4, 3], 3),
            &mask(&[2, 1, 4, 3], 4),
        );
    }

    #[test]
    fn is_the_weighted_sum_of_its_parts() {
        let (x, y) = (logits(&[2, 3, 4, 3], 5), labels(&[2, 1, 4, 3], 3, 6));
        let dice = softmax_onehot();
        let loss = DiceCELoss {
            dice: dice.clone(),
            lambda_dice: 0.25,
            lambda_ce: 2.0,
            ..Default::default()
        };
        let ce = CrossEntropyLoss::default().forward(&x, &y.squeeze(1).unwrap()).unwrap();
        let expected = 0.25 * value(&dice.forward(&x, &y).unwrap()) + 2.0 * value(&ce);
        assert!((value(&loss.forward(&x, &y).unwrap()) - expected).abs() < 1e-12);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let (x, y) = (logits(&[2, 3, 4], 7), labels(&[2, 1, 4], 3, 8));
        let none = DiceCELoss {
            dice: DiceLoss {
                reduction: Reduction::None,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(none.forward(&x, &y).unwrap_err().to_string().contains("\"none\""));
        let dice_weight = DiceCELoss {
            dice: DiceLoss {
                weight: Some(ClassWeight::Scalar(2.0)),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(dice_weight
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("dice.weight"));
        let negative = DiceCELoss {
            lambda_ce: -1.0,
            ..Default::default()
        };
        assert!(negative.forward(&x, &y).unwrap_err().to_string().contains("lambda_ce"));
        let two = labels(&[2, 2, 4], 2, 9);
        assert!(DiceCELoss::default()
            .forward(&x, &two)
            .unwrap_err()
            .to_string()
            .contains("1 or 3 channels"));
        let flat = labels(&[2, 4], 3, 10);
        assert!(DiceCELoss::default()
            .forward(&x, &flat)
            .unwrap_err()
            .to_string()
            .contains("rank 3"));
    }
}
