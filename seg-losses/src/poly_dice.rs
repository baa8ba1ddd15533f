//! PolyDice: a Poly-1-style expansion of the log-Dice loss (ours; not in MONAI).

use seg_tensor::{Error, Result, Tensor};

use crate::options::Reduction;
use crate::prepare::{expect_finite, expect_no_dice_weight};
use crate::DiceLoss;

/// PolyDice. With `D` the soft Dice coefficient per batch element and class, computed by `dice`
/// ([`DiceLoss`]'s activation, `to_onehot_y`, `include_background`, `squared_pred`, `jaccard`,
/// `smooth_nr`, `smooth_dr`, `batch`, `soft_label`, `ignore_index`), e.g.
/// `D = (2 tp + smooth_nr) / (2 tp + fp + fn + smooth_dr)`,
///
/// - `order = None`: `loss = mean(-ln D + epsilon (1 - D))`;
/// - `order = Some(n)`: `loss = mean(sum_{j=1..n} (1 - D)^j / j + epsilon (1 - D))`.
///
/// `-ln D = sum_{j>=1} (1 - D)^j / j` is the Taylor series of the log-Dice loss around `D = 1`;
/// as Leng et al. (2022, PolyLoss) do for cross-entropy, Poly-1 perturbs the leading polynomial
/// coefficient by `epsilon`, and `order` truncates the series (`order = 1`, `epsilon = 0` is the plain
/// Dice loss `1 - D`). `dice.reduction`: the mean is over batch and class; `Sum` sums, `None` keeps
/// `(B, C, 1, ...)`. `dice.weight` must be `None`.
#[derive(Clone, Debug)]
pub struct PolyDiceLoss {
    /// How `D` is computed, and the reduction.
    pub dice: DiceLoss,
    /// The Poly-1 coefficient added to the first-order term.
    pub epsilon: f64,
    /// Terms of the series kept (at least 1); `None` keeps the exact `-ln D`.
    pub order: Option<usize>,
}

impl Default for PolyDiceLoss {
    /// DiceLoss's defaults, `epsilon = 1`, the exact logarithm (`order = None`).
    fn default() -> Self {
        Self {
            dice: DiceLoss::default(),
            epsilon: 1.0,
            order: None,
        }
    }
}

const OP: &str = "PolyDiceLoss";

impl PolyDiceLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `dice.to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if self.order == Some(0) {
            return Err(Error::invalid(OP, "order must be at least 1, found 0"));
        }
        expect_no_dice_weight(OP, &self.dice, "PolyDiceLoss takes no class weights")?;
        expect_finite(OP, input, target)?;
        let dice = DiceLoss {
            reduction: Reduction::None,
            ..self.dice.clone()
        };
        // 1 - D, shaped (B, C, 1, ...).
        let miss = dice.forward(input, target)?;
        let series = match self.order {
            None => miss.affine(-1.0, 1.0)?.log()?.neg()?,
            Some(n) => {
                let mut sum = miss.clone();
                for j in 2..=n {
                    sum = sum.add(&miss.powf(j as f64)?.mul_scalar(1.0 / j as f64)?)?;
                }
                sum
            }
        };
        self.dice
            .reduction
            .reduce_all(&series.add(&miss.mul_scalar(self.epsilon)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, softmax_onehot, value};

    fn poly(epsilon: f64, order: Option<usize>) -> PolyDiceLoss {
        PolyDiceLoss {
            dice: softmax_onehot(),
            epsilon,
            order,
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        check_grad(|x, y| poly(1.0, None).forward(x, y), &x, &y);
        check_grad(|x, y| poly(-0.5, Some(3)).forward(x, y), &x, &y);
    }

    #[test]
    fn first_order_without_epsilon_is_the_dice_loss_and_the_series_tends_to_the_log() {
        let (x, y) = (logits(&[2, 3, 4, 3], 3), labels(&[2, 1, 4, 3], 3, 4));
        let dice = softmax_onehot();
        let first = value(&poly(0.0, Some(1)).forward(&x, &y).unwrap());
        assert!((first - value(&dice.forward(&x, &y).unwrap())).abs() < 1e-12);
        let log = value(&poly(0.0, None).forward(&x, &y).unwrap());
        let long = value(&poly(0.0, Some(200)).forward(&x, &y).unwrap());
        assert!((log - long).abs() < 1e-6, "{log} vs {long}");
    }

    #[test]
    fn order_zero_and_class_weights_are_errors() {
        let (x, y) = (logits(&[1, 2, 3], 5), labels(&[1, 1, 3], 2, 6));
        assert!(poly(1.0, Some(0))
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("order"));
        let mut weighted = poly(1.0, None);
        weighted.dice.weight = Some(crate::ClassWeight::Scalar(2.0));
        assert!(weighted
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("dice.weight"));
    }
}
