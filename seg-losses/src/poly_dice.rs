//! PolyDice: a Poly-1-style expansion of the log-Dice loss (ours; not in MONAI).

use seg_tensor::{Error, Result, Tensor};

use crate::options::{Activation, Reduction};
use crate::prepare::expect_finite;
use crate::DiceLoss;

/// PolyDice. With `D` the soft Dice coefficient per batch element and class, computed with
/// [`DiceLoss`]'s conventions (activation, `to_onehot_y`, `include_background`, `smooth_nr`,
/// `smooth_dr`, `batch`): `D = (2 tp + smooth_nr) / (2 tp + fp + fn + smooth_dr)`,
///
/// - `order = None`: `loss = mean(-ln D + epsilon (1 - D))`;
/// - `order = Some(n)`: `loss = mean(sum_{j=1..n} (1 - D)^j / j + epsilon (1 - D))`.
///
/// `-ln D = sum_{j>=1} (1 - D)^j / j` is the Taylor series of the log-Dice loss around `D = 1`;
/// as Leng et al. (2022, PolyLoss) do for cross-entropy, Poly-1 perturbs the leading polynomial
/// coefficient by `epsilon`, and `order` truncates the series (`order = 1`, `epsilon = 0` is the plain
/// Dice loss `1 - D`). The mean is over batch and class; `Sum` sums, `None` keeps `(B, C, 1, ...)`.
#[derive(Clone, Debug)]
pub struct PolyDiceLoss {
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub batch: bool,
    /// The Poly-1 coefficient added to the first-order term.
    pub epsilon: f64,
    /// Terms of the series kept (at least 1); `None` keeps the exact `-ln D`.
    pub order: Option<usize>,
    pub reduction: Reduction,
}

impl Default for PolyDiceLoss {
    /// DiceLoss's defaults, `epsilon = 1`, the exact logarithm (`order = None`), mean.
    fn default() -> Self {
        let d = DiceLoss::default();
        Self {
            include_background: d.include_background,
            to_onehot_y: d.to_onehot_y,
            sigmoid: d.sigmoid,
            softmax: d.softmax,
            other_act: d.other_act,
            smooth_nr: d.smooth_nr,
            smooth_dr: d.smooth_dr,
            batch: d.batch,
            epsilon: 1.0,
            order: None,
            reduction: Reduction::Mean,
        }
    }
}

impl PolyDiceLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if self.order == Some(0) {
            return Err(Error::invalid("PolyDiceLoss", "order must be at least 1, found 0"));
        }
        expect_finite("PolyDiceLoss", input, target)?;
        let dice = DiceLoss {
            include_background: self.include_background,
            to_onehot_y: self.to_onehot_y,
            sigmoid: self.sigmoid,
            softmax: self.softmax,
            other_act: self.other_act,
            smooth_nr: self.smooth_nr,
            smooth_dr: self.smooth_dr,
            batch: self.batch,
            reduction: Reduction::None,
            ..DiceLoss::default()
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
        self.reduction.reduce_all(&series.add(&miss.mul_scalar(self.epsilon)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, value};

    fn poly(epsilon: f64, order: Option<usize>) -> PolyDiceLoss {
        PolyDiceLoss {
            softmax: true,
            to_onehot_y: true,
            epsilon,
            order,
            ..Default::default()
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
        let dice = DiceLoss {
            softmax: true,
            to_onehot_y: true,
            ..Default::default()
        };
        let first = value(&poly(0.0, Some(1)).forward(&x, &y).unwrap());
        assert!((first - value(&dice.forward(&x, &y).unwrap())).abs() < 1e-12);
        let log = value(&poly(0.0, None).forward(&x, &y).unwrap());
        let long = value(&poly(0.0, Some(200)).forward(&x, &y).unwrap());
        assert!((log - long).abs() < 1e-6, "{log} vs {long}");
    }

    #[test]
    fn order_zero_is_an_error() {
        let (x, y) = (logits(&[1, 2, 3], 5), labels(&[1, 1, 3], 2, 6));
        assert!(poly(1.0, Some(0))
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("order"));
    }
}
