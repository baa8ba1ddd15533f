//! MONAI's `TverskyLoss` (Salehi et al. 2017).

use seg_tensor::{Result, Tensor};

use crate::options::{Activation, Reduction};
use crate::overlap::{overlap, OverlapKind};
use crate::prepare::{expect_spatial, reduce_axes, Act, Prepare};

/// `monai.losses.TverskyLoss`: per batch and class (per class with `batch`), with sums over the
/// spatial axes (and the batch) `tp = sum p t`, `fp = sum p (1 - t)`, `fn = sum (1 - p) t`,
///
/// `f = 1 - (tp + smooth_nr) / (tp + alpha fp + beta fn + smooth_dr)`,
///
/// `Mean` or `Sum` over everything, or `None` keeping `(B, C)` (`(C,)` with `batch`), as MONAI.
/// Activation, `to_onehot_y`, `include_background`, `soft_label` and `ignore_index` as in
/// [`crate::DiceLoss`].
#[derive(Clone, Debug)]
pub struct TverskyLoss {
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
    /// Weight of the false positives.
    pub alpha: f64,
    /// Weight of the false negatives.
    pub beta: f64,
    pub reduction: Reduction,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub batch: bool,
    pub soft_label: bool,
    pub ignore_index: Option<i64>,
}

impl Default for TverskyLoss {
    /// MONAI's defaults: `alpha = beta = 0.5`, `smooth_nr = smooth_dr = 1e-5`, mean.
    fn default() -> Self {
        Self {
            include_background: true,
            to_onehot_y: false,
            sigmoid: false,
            softmax: false,
            other_act: None,
            alpha: 0.5,
            beta: 0.5,
            reduction: Reduction::Mean,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            batch: false,
            soft_label: false,
            ignore_index: None,
        }
    }
}

impl TverskyLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        expect_spatial("TverskyLoss", input)?;
        let p = Prepare {
            op: "TverskyLoss",
            act: Act {
                sigmoid: self.sigmoid,
                softmax: self.softmax,
                other_act: self.other_act,
            },
            to_onehot_y: self.to_onehot_y,
            include_background: self.include_background,
            ignore_index: self.ignore_index,
        }
        .run(input, target)?;
        let kind = OverlapKind {
            ord: 1,
            soft_label: self.soft_label,
            decoupled: false,
        };
        let o = overlap(&p.input, &p.target, &reduce_axes(p.input.rank(), self.batch), kind)?;
        let numerator = o.tp.add_scalar(self.smooth_nr)?;
        let denominator =
            o.tp.add(&o.fp.mul_scalar(self.alpha)?)?
                .add(&o.fn_.mul_scalar(self.beta)?)?
                .add_scalar(self.smooth_dr)?;
        self.reduction
            .reduce_all(&numerator.div(&denominator)?.affine(-1.0, 1.0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, mask, value};
    use crate::DiceLoss;

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        let loss = TverskyLoss {
            softmax: true,
            to_onehot_y: true,
            alpha: 0.3,
            beta: 0.7,
            include_background: false,
            ignore_index: Some(2),
            ..Default::default()
        };
        check_grad(|x, y| loss.forward(x, y), &x, &y);
        let soft = TverskyLoss {
            sigmoid: true,
            soft_label: true,
            batch: true,
            ..Default::default()
        };
        let y = Tensor::rand(&[2, 2, 3, 4], 5, seg_tensor::DType::F64).unwrap();
        check_grad(|x, y| soft.forward(x, y), &logits(&[2, 2, 3, 4], 6), &y);
    }

    #[test]
    fn equal_halves_without_smoothing_are_the_dice_loss() {
        let (x, y) = (logits(&[2, 2, 5, 3], 3), mask(&[2, 2, 5, 3], 4));
        let tversky = TverskyLoss {
            sigmoid: true,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            ..Default::default()
        };
        let dice = DiceLoss {
            sigmoid: true,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            ..Default::default()
        };
        let (t, d) = (
            value(&tversky.forward(&x, &y).unwrap()),
            value(&dice.forward(&x, &y).unwrap()),
        );
        assert!((t - d).abs() < 1e-12, "{t} vs {d}");
    }

    #[test]
    fn reduction_none_keeps_batch_and_class() {
        let loss = TverskyLoss {
            reduction: Reduction::None,
            ..Default::default()
        };
        let y = mask(&[2, 3, 4], 7);
        assert_eq!(loss.forward(&y, &y).unwrap().shape(), &[2, 3]);
    }
}
