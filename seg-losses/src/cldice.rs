//! MONAI's `SoftclDiceLoss` and `SoftDiceclDiceLoss` (Shit et al. 2021, clDice).

use seg_tensor::{Error, Result, Tensor};

use crate::options::{Activation, Reduction};
use crate::prepare::{expect_spatial, onehot_target_first, Act, Prepare};
use crate::skeleton::soft_skel;
use crate::DiceLoss;

/// `monai.losses.SoftclDiceLoss`: with soft skeletons `S_p = soft_skel(p, iter_)`,
/// `S_t = soft_skel(t, iter_)` and sums over all axes but the batch,
///
/// `Tprec = (sum S_p t + smooth_nr) / (sum S_p + smooth_dr)`,
/// `Tsens = (sum S_t p + smooth_nr) / (sum S_t + smooth_dr)`,
/// `f = 1 - 2 Tprec Tsens / (Tprec + Tsens + smooth)` per batch element,
///
/// then `Mean`, `Sum`, or `None` keeping `(B,)`. Inputs are `(B, C, H, W)` or `(B, C, H, W, D)`;
/// activation, `to_onehot_y` and `include_background` as in [`DiceLoss`].
#[derive(Clone, Debug)]
pub struct SoftclDiceLoss {
    /// Erosion steps of the skeleton.
    pub iter_: usize,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    /// Added to the harmonic mean's denominator; positive.
    pub smooth: f64,
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
    pub reduction: Reduction,
}

impl Default for SoftclDiceLoss {
    /// MONAI's defaults: `iter_ = 3`, `smooth_nr = smooth_dr = 1`, `smooth = 1e-4`, mean.
    fn default() -> Self {
        Self {
            iter_: 3,
            smooth_nr: 1.0,
            smooth_dr: 1.0,
            smooth: 1e-4,
            include_background: true,
            to_onehot_y: false,
            sigmoid: false,
            softmax: false,
            other_act: None,
            reduction: Reduction::Mean,
        }
    }
}

impl SoftclDiceLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "SoftclDiceLoss";
        expect_spatial(OP, input)?;
        if self.smooth <= 0.0 {
            return Err(Error::invalid(
                OP,
                format!("smooth must be positive, found {}", self.smooth),
            ));
        }
        let p = Prepare {
            op: OP,
            act: Act {
                sigmoid: self.sigmoid,
                softmax: self.softmax,
                other_act: self.other_act,
            },
            to_onehot_y: self.to_onehot_y,
            include_background: self.include_background,
            ignore_index: None,
        }
        .run(input, target)?;
        let (x, t) = (&p.input, &p.target);
        let skel_pred = soft_skel(x, self.iter_)?;
        let skel_true = soft_skel(t, self.iter_)?;
        let axes: Vec<isize> = (1..x.rank() as isize).collect();
        let ratio = |skel: &Tensor, other: &Tensor| -> Result<Tensor> {
            let num = skel.mul(other)?.sum(&axes, false)?.add_scalar(self.smooth_nr)?;
            num.div(&skel.sum(&axes, false)?.add_scalar(self.smooth_dr)?)
        };
        let tprec = ratio(&skel_pred, t)?;
        let tsens = ratio(&skel_true, x)?;
        let harmonic = tprec.mul(&tsens)?.div(&tprec.add(&tsens)?.add_scalar(self.smooth)?)?;
        self.reduction.reduce_all(&harmonic.affine(-2.0, 1.0)?)
    }
}

/// `monai.losses.SoftDiceclDiceLoss`: `(1 - alpha) Dice + alpha clDice`, the target made one-hot
/// first (`cldice.to_onehot_y`); clDice is `cldice` (MONAI's `iter_`, `smooth_nr`, `smooth_dr`,
/// `smooth`, `include_background`, `to_onehot_y`, `sigmoid`, `softmax`, `other_act`, `reduction`) and
/// Dice is [`DiceLoss`] with its `smooth_nr`, `smooth_dr` (default 1, not Dice's 1e-5), activation,
/// `include_background` and `reduction`. With `Reduction::None` the two broadcast as in MONAI.
#[derive(Clone, Debug)]
pub struct SoftDiceclDiceLoss {
    /// The clDice term and the arguments the two terms share.
    pub cldice: SoftclDiceLoss,
    /// The clDice share, in `[0, 1]`.
    pub alpha: f64,
}

impl Default for SoftDiceclDiceLoss {
    /// MONAI's defaults: `iter_ = 3`, `alpha = 0.5`, `smooth_nr = smooth_dr = 1`, `smooth = 1e-4`, mean.
    fn default() -> Self {
        Self {
            cldice: SoftclDiceLoss::default(),
            alpha: 0.5,
        }
    }
}

impl SoftDiceclDiceLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `cldice.to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "SoftDiceclDiceLoss";
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::invalid(
                OP,
                format!("alpha must be in [0, 1], found {}", self.alpha),
            ));
        }
        let c = &self.cldice;
        let target = onehot_target_first(OP, input, target, c.to_onehot_y)?;
        let dice = DiceLoss {
            include_background: c.include_background,
            sigmoid: c.sigmoid,
            softmax: c.softmax,
            other_act: c.other_act,
            reduction: c.reduction,
            smooth_nr: c.smooth_nr,
            smooth_dr: c.smooth_dr,
            ..DiceLoss::default()
        }
        .forward(input, &target)?;
        let cldice = SoftclDiceLoss {
            to_onehot_y: false,
            ..c.clone()
        }
        .forward(input, &target)?;
        dice.mul_scalar(1.0 - self.alpha)?.add(&cldice.mul_scalar(self.alpha)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, mask, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 4, 3, 3], 1), labels(&[2, 1, 4, 3, 3], 3, 2));
        let loss = SoftclDiceLoss {
            softmax: true,
            to_onehot_y: true,
            iter_: 2,
            ..Default::default()
        };
        check_grad(|x, y| loss.forward(x, y), &x, &y);
        let combined = SoftDiceclDiceLoss {
            cldice: SoftclDiceLoss {
                softmax: true,
                to_onehot_y: true,
                include_background: false,
                ..Default::default()
            },
            alpha: 0.3,
        };
        check_grad(|x, y| combined.forward(x, y), &x, &y);
        let sigmoid = SoftclDiceLoss {
            sigmoid: true,
            reduction: Reduction::None,
            ..Default::default()
        };
        check_grad(
            |x, y| sigmoid.forward(x, y),
            &logits(&[2, 2, 6, 5], 3),
            &mask(&[2, 2, 6, 5], 4),
        );
    }

    #[test]
    fn a_perfect_binary_prediction_has_almost_zero_loss() {
        let y = mask(&[2, 1, 6, 6, 4], 5);
        let l = value(&SoftclDiceLoss::default().forward(&y, &y).unwrap());
        assert!(l.abs() < 1e-3, "{l}");
    }

    #[test]
    fn alpha_mixes_dice_and_cldice() {
        let (x, y) = (logits(&[2, 2, 5, 6], 6), mask(&[2, 2, 5, 6], 7));
        let cl = SoftclDiceLoss {
            sigmoid: true,
            ..Default::default()
        };
        let mixed = |alpha| SoftDiceclDiceLoss {
            cldice: cl.clone(),
            alpha,
        };
        let at = |alpha| value(&mixed(alpha).forward(&x, &y).unwrap());
        assert!((at(1.0) - value(&cl.forward(&x, &y).unwrap())).abs() < 1e-12);
        assert!((at(0.25) - (0.75 * at(0.0) + 0.25 * at(1.0))).abs() < 1e-12);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let (x, y) = (logits(&[2, 2, 5], 8), mask(&[2, 2, 5], 9));
        assert!(SoftclDiceLoss::default()
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("(B, C, H, W)"));
        let smooth = SoftclDiceLoss {
            smooth: 0.0,
            ..Default::default()
        };
        assert!(smooth.forward(&x, &y).unwrap_err().to_string().contains("smooth"));
        let alpha = SoftDiceclDiceLoss {
            alpha: 1.5,
            ..Default::default()
        };
        assert!(alpha.forward(&x, &y).unwrap_err().to_string().contains("alpha"));
    }
}
