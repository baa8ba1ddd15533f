//! MONAI's `FocalLoss` (Lin et al. 2017), in its sigmoid and softmax forms.

use seg_tensor::{Error, Result, Tensor};

use crate::label_sums::{LabelSums, FOCAL_NEG, FOCAL_POS};
use crate::options::{along_axis, ClassWeight, Reduction};
use crate::prepare::{scalar_like, without_background, Act, Prepare};
use crate::sigmoid_focal::sigmoid_focal;

/// `monai.losses.FocalLoss` on logits `x` and a target `t` `(B, C, spatial...)`, elementwise:
///
/// - sigmoid form (`use_softmax = false`, classes independent):
///   `l = (1 - p_t)^gamma * BCE(x, t)` with `BCE = x - x t + ln(1 + e^-x)` and
///   `(1 - p_t)^gamma = exp(gamma * logsigmoid(-x (2t - 1)))`; a scalar `alpha` multiplies by
///   `alpha t + (1 - alpha)(1 - t)`, per-class `alpha_c` multiplies where `t = 1`;
/// - softmax form: `l = -(1 - e^{s})^gamma * s * t` with `s = log_softmax(x)` along the channels
///   (over the kept channels only when `include_background = false`); a scalar `alpha` weighs the
///   background by `1 - alpha` and the other classes by `alpha` (ignored without the background, as
///   MONAI), per-class `alpha_c` weighs class `c`.
///
/// `weight` multiplies class `c`'s loss (a scalar: all). Reduction: `Mean` over all elements, `Sum`
/// of the per (batch, class) spatial means (MONAI's convention), `None` keeps `(B, C, spatial...)`.
/// With `ignore_index`, voxels of that label count as zero and `Mean` divides by the number of
/// counted voxels (per batch element and spatial position), `Sum` by that count per (batch, class).
///
/// The sigmoid form's elementwise term runs as one fused op (`sigmoid_focal.rs`), its backward too.
#[derive(Clone, Debug)]
pub struct FocalLoss {
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub gamma: f64,
    pub alpha: Option<ClassWeight>,
    pub weight: Option<ClassWeight>,
    pub reduction: Reduction,
    pub use_softmax: bool,
    pub ignore_index: Option<i64>,
}

impl Default for FocalLoss {
    /// MONAI's defaults: `gamma = 2`, no `alpha`, no `weight`, sigmoid form, mean.
    fn default() -> Self {
        Self {
            include_background: true,
            to_onehot_y: false,
            gamma: 2.0,
            alpha: None,
            weight: None,
            reduction: Reduction::Mean,
            use_softmax: false,
            ignore_index: None,
        }
    }
}

const OP: &str = "FocalLoss";

impl FocalLoss {
    /// The loss of logits `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let p = Prepare {
            op: OP,
            act: Act::default(),
            to_onehot_y: self.to_onehot_y,
            include_background: self.include_background,
            ignore_index: self.ignore_index,
        }
        .run(input, target)?;
        let (x, t) = (&p.input, &p.target);
        let mut loss = if self.use_softmax {
            let alpha = match &self.alpha {
                Some(ClassWeight::Scalar(_)) if !self.include_background => None,
                other => other.as_ref(),
            };
            self.softmax_form(x, t, alpha)?
        } else {
            self.sigmoid_form(x, t)?
        };
        if let Some(m) = &p.mask {
            loss = loss.mul(m)?;
        }
        if let Some(w) = &self.weight {
            loss = loss.mul(&class_weight(w, &loss)?)?;
        }
        let spatial: Vec<isize> = (2..loss.rank() as isize).collect();
        match (self.reduction, &p.mask) {
            (Reduction::None, _) => Ok(loss),
            (Reduction::Mean, None) => loss.mean_all(),
            (Reduction::Sum, None) => loss.mean(&spatial, false)?.sum_all(),
            (Reduction::Mean, Some(m)) => loss.sum_all()?.div(&at_least_eps(&m.sum_all()?)?),
            (Reduction::Sum, Some(m)) => {
                let counted = at_least_eps(&m.sum(&spatial, true)?)?;
                loss.sum(&spatial, true)?.div(&counted)?.sum_all()
            }
        }
    }

    /// The sigmoid form against the one-hot labels of the fused sums (`label_sums.rs`, with the
    /// focal rows), `Mean` or `Sum`: with `F1_c`, `F0_c` the sums of the term over the voxels where
    /// `t_c` is 1 and 0, class `c` contributes `w_c (alpha F1_c + (1 - alpha) F0_c)` (per-class alpha:
    /// `w_c (alpha_c F1_c + F0_c)`); `Mean` divides the total by the element count, `Sum` by the
    /// voxel count (the sum of spatial means). `use_softmax` and `ignore_index` need the composed path.
    pub(crate) fn of_label_sums(&self, sums: &LabelSums) -> Result<Tensor> {
        if self.use_softmax || self.ignore_index.is_some() || self.reduction == Reduction::None {
            return Err(Error::invalid(
                OP,
                "the fused sums hold the sigmoid form, reduced, without ignore_index",
            ));
        }
        let keep = |t: Tensor| -> Result<Tensor> {
            if self.include_background {
                Ok(t)
            } else {
                without_background(&t)
            }
        };
        let (pos, neg) = (keep(sums.row(FOCAL_POS)?)?, keep(sums.row(FOCAL_NEG)?)?);
        let mut loss = match &self.alpha {
            None => pos.add(&neg)?,
            Some(ClassWeight::Scalar(a)) => pos.mul_scalar(*a)?.add(&neg.mul_scalar(1.0 - a)?)?,
            Some(per_class) => {
                let alpha = per_class.values(OP, "alpha", pos.shape()[1])?;
                pos.mul(&along_axis(&alpha, 1, 2, &pos)?)?.add(&neg)?
            }
        };
        if let Some(w) = &self.weight {
            loss = loss.mul(&class_weight(w, &loss)?)?;
        }
        let voxels = sums.spatial() as f64;
        let count = if self.reduction == Reduction::Mean {
            loss.numel() as f64 * voxels
        } else {
            voxels
        };
        loss.sum_all()?.mul_scalar(1.0 / count)
    }

    fn sigmoid_form(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let loss = sigmoid_focal(x, t, self.gamma)?;
        let factor = match &self.alpha {
            None => return Ok(loss),
            Some(ClassWeight::Scalar(a)) => t.affine(2.0 * a - 1.0, 1.0 - a)?,
            Some(per_class) => {
                let alpha = along_axis(&per_class.values(OP, "alpha", t.shape()[1])?, 1, t.rank(), t)?;
                t.eq(&scalar_like(1.0, t)?)?.where_(&alpha, &scalar_like(1.0, t)?)?
            }
        };
        loss.mul(&factor)
    }

    fn softmax_form(&self, x: &Tensor, t: &Tensor, alpha: Option<&ClassWeight>) -> Result<Tensor> {
        let log_p = x.log_softmax(1)?;
        let focus = log_p.exp()?.affine(-1.0, 1.0)?.powf(self.gamma)?;
        let loss = focus.mul(&log_p)?.mul(t)?.neg()?;
        let classes = t.shape()[1];
        let factors = match alpha {
            None => return Ok(loss),
            Some(ClassWeight::Scalar(a)) => {
                let mut f = vec![*a; classes];
                f[0] = 1.0 - a;
                f
            }
            Some(per_class) => per_class.values(OP, "alpha", classes)?,
        };
        loss.mul(&along_axis(&factors, 1, loss.rank(), &loss)?)
    }
}

/// `weight` as a factor of the loss `(B, C, ...)`: a scalar, or one value per channel.
fn class_weight(w: &ClassWeight, loss: &Tensor) -> Result<Tensor> {
    w.expect_non_negative(OP, "weight")?;
    let classes = loss.shape()[1];
    match w {
        ClassWeight::Scalar(v) => scalar_like(*v, loss),
        ClassWeight::PerClass(_) if classes == 1 => Err(Error::invalid(
            OP,
            "a per-class weight needs more than one output channel, found 1 (give a scalar weight)",
        )),
        per_class => along_axis(&per_class.values(OP, "weight", classes)?, 1, loss.rank(), loss),
    }
}

/// `count.clamp(min = eps)` with f32's machine epsilon, as MONAI clamps mask sums.
fn at_least_eps(count: &Tensor) -> Result<Tensor> {
    count.clamp(f64::from(f32::EPSILON), f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross_entropy::BceWithLogitsLoss;
    use crate::testing::{check_grad, labels, logits, mask, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        let softmax = FocalLoss {
            to_onehot_y: true,
            use_softmax: true,
            gamma: 1.5,
            alpha: Some(ClassWeight::Scalar(0.25)),
            weight: Some(ClassWeight::PerClass(vec![1.0, 0.5, 2.0])),
            ..Default::default()
        };
        check_grad(|x, y| softmax.forward(x, y), &x, &y);
        let masked = FocalLoss {
            to_onehot_y: true,
            ignore_index: Some(1),
            reduction: Reduction::Sum,
            include_background: false,
            ..Default::default()
        };
        check_grad(|x, y| masked.forward(x, y), &x, &y);
        let sigmoid = FocalLoss {
            alpha: Some(ClassWeight::PerClass(vec![0.3, 0.8])),
            reduction: Reduction::None,
            ..Default::default()
        };
        check_grad(
            |x, y| sigmoid.forward(x, y),
            &logits(&[2, 2, 4, 3], 3),
            &mask(&[2, 2, 4, 3], 4),
        );
    }

    #[test]
    fn gamma_zero_is_binary_cross_entropy() {
        let (x, y) = (logits(&[2, 2, 5, 3], 5), mask(&[2, 2, 5, 3], 6));
        let focal = FocalLoss {
            gamma: 0.0,
            ..Default::default()
        };
        let bce = BceWithLogitsLoss::default();
        let (f, b) = (
            value(&focal.forward(&x, &y).unwrap()),
            value(&bce.forward(&x, &y).unwrap()),
        );
        assert!((f - b).abs() < 1e-12, "{f} vs {b}");
    }

    #[test]
    fn sum_reduction_sums_spatial_means() {
        let (x, y) = (logits(&[2, 3, 4, 5], 7), mask(&[2, 3, 4, 5], 8));
        let mean = FocalLoss::default().forward(&x, &y).unwrap();
        let sum = FocalLoss {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        // The mean over (B, C, 20 voxels) times B C is the sum of the 6 spatial means.
        assert!((value(&sum.forward(&x, &y).unwrap()) - 6.0 * value(&mean)).abs() < 1e-12);
    }

    #[test]
    fn bad_weights_and_alphas_are_errors() {
        let (x, y) = (logits(&[2, 1, 4], 9), mask(&[2, 1, 4], 10));
        let per_class = FocalLoss {
            weight: Some(ClassWeight::PerClass(vec![1.0])),
            ..Default::default()
        };
        assert!(per_class
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("more than one output channel"));
        let (x, y) = (logits(&[2, 3, 4], 11), mask(&[2, 3, 4], 12));
        let alpha = FocalLoss {
            alpha: Some(ClassWeight::PerClass(vec![0.5, 0.5])),
            ..Default::default()
        };
        assert!(alpha
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("alpha has 2 values"));
        let negative = FocalLoss {
            weight: Some(ClassWeight::Scalar(-0.5)),
            ..Default::default()
        };
        assert!(negative.forward(&x, &y).is_err());
    }
}
