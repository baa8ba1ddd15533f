//! MONAI's `DiceLoss` (Milletari et al. 2016), with its Jaccard variant.

use seg_tensor::{Result, Tensor};

use crate::label_sums::{LabelSums, LabelSumsOptions};
use crate::options::{along_axis, Activation, ClassWeight, Reduction};
use crate::overlap::{overlap, Overlap, OverlapKind};
use crate::prepare::{expect_spatial, reduce_axes, Act, Prepare};

/// `monai.losses.DiceLoss`: for a prediction `p` and target `t` `(B, C, spatial...)`, per batch and
/// class (per class only when `batch`), with sums over the spatial axes (and the batch):
///
/// `f = 1 - (2 tp + smooth_nr) / (2 tp + fp + fn + smooth_dr)` (Dice), or with `jaccard`
/// `f = 1 - (2 tp + smooth_nr) / (2 (tp + fp + fn) + smooth_dr)`,
///
/// where `tp = sum p t`, `fp = sum p - tp`, `fn = sum t - tp` (`squared_pred`: `p^2`, `t^2`, as
/// MONAI's `compute_tp_fp_fn`). `f` is multiplied by the class `weight` (when there is more than one
/// class), then reduced: `Mean` over batch and class, `Sum`, or `None` keeping `(B, C, 1, ...)`
/// (`(C, 1, ...)` with `batch`).
///
/// The prediction is activated (`sigmoid`, `softmax` along channels, or `other_act`); `to_onehot_y`
/// turns labels `(B, 1, ...)` into one-hot; `include_background=false` drops channel 0;
/// `ignore_index` zeroes prediction and target where the original target holds that label.
///
/// With `softmax` and `to_onehot_y` on labels the sums come from one fused pass over the logits
/// (`label_sums.rs`), without the one-hot target or the softmax in memory.
#[derive(Clone, Debug)]
pub struct DiceLoss {
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
    /// Per-class weights of `f`: a scalar for every class or one per (kept) class, non-negative.
    pub weight: Option<ClassWeight>,
    pub soft_label: bool,
    pub ignore_index: Option<i64>,
}

impl Default for DiceLoss {
    /// MONAI's defaults: background included, no activation, `smooth_nr = smooth_dr = 1e-5`, mean.
    fn default() -> Self {
        Self {
            include_background: true,
            to_onehot_y: false,
            sigmoid: false,
            softmax: false,
            other_act: None,
            squared_pred: false,
            jaccard: false,
            reduction: Reduction::Mean,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            batch: false,
            weight: None,
            soft_label: false,
            ignore_index: None,
        }
    }
}

const OP: &str = "DiceLoss";

impl DiceLoss {
    /// The loss of `input` (logits or probabilities `(B, C, spatial...)`) against `target`
    /// (`(B, C, ...)`, or labels `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        expect_spatial(OP, input)?;
        if self.fuses(input, target) {
            let sums = LabelSums::new(OP, input, target, self.label_sums_options(None))?;
            return self.of_label_sums(&sums, input.rank());
        }
        let (o, rank) = self.composed_overlap(input, target)?;
        self.of_overlap(o, rank)
    }

    /// Whether [`DiceLoss::forward`] takes the fused path of `label_sums.rs`: `softmax` (and no
    /// other activation) with `to_onehot_y` on labels it accepts ([`LabelSums::applies`]).
    pub(crate) fn fuses(&self, input: &Tensor, target: &Tensor) -> bool {
        self.softmax
            && !self.sigmoid
            && self.other_act.is_none()
            && self.to_onehot_y
            && LabelSums::applies(input, target, self.ignore_index)
    }

    /// The options of the fused sums this loss needs, plus the focal rows with `focal_gamma`.
    pub(crate) fn label_sums_options(&self, focal_gamma: Option<f64>) -> LabelSumsOptions {
        LabelSumsOptions {
            ignore_index: self.ignore_index,
            squared: self.squared_pred,
            focal_gamma,
        }
    }

    /// The loss from the fused sums of a prediction of rank `rank`.
    pub(crate) fn of_label_sums(&self, sums: &LabelSums, rank: usize) -> Result<Tensor> {
        self.of_overlap(sums.overlap(self.include_background, self.batch)?, rank)
    }

    /// `f` from the overlap `(B, C)` (`(C,)` with `batch`), weighted and reduced.
    fn of_overlap(&self, o: Overlap, rank: usize) -> Result<Tensor> {
        let (fp, fn_) = if self.jaccard {
            (o.fp, o.fn_)
        } else {
            (o.fp.mul_scalar(0.5)?, o.fn_.mul_scalar(0.5)?)
        };
        let numerator = o.tp.mul_scalar(2.0)?.add_scalar(self.smooth_nr)?;
        let denominator = o.tp.add(&fp)?.add(&fn_)?.affine(2.0, self.smooth_dr)?;
        let f = numerator.div(&denominator)?.affine(-1.0, 1.0)?;
        let classes = f.shape()[f.rank() - 1];
        let f = match &self.weight {
            Some(w) if classes != 1 => {
                let values = w.values(OP, "weight", classes)?;
                w.expect_non_negative(OP, "weight")?;
                f.mul(&along_axis(&values, f.rank() - 1, f.rank(), &f)?)?
            }
            _ => f,
        };
        self.reduction.reduce_keeping_rank(&f, rank)
    }

    /// The overlap by the composed path (activation, one-hot target, masks, elementwise sums), and
    /// the prediction's rank.
    fn composed_overlap(&self, input: &Tensor, target: &Tensor) -> Result<(Overlap, usize)> {
        let p = Prepare {
            op: OP,
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
        let rank = p.input.rank();
        let kind = OverlapKind {
            ord: if self.squared_pred { 2 } else { 1 },
            soft_label: self.soft_label,
            decoupled: true,
        };
        Ok((
            overlap(&p.input, &p.target, &reduce_axes(rank, self.batch), kind)?,
            rank,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, mask, softmax_onehot, value};
    use seg_tensor::DType;

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        check_grad(|x, y| softmax_onehot().forward(x, y), &x, &y);
        let weighted = DiceLoss {
            include_background: false,
            weight: Some(ClassWeight::PerClass(vec![0.4, 1.6])),
            ignore_index: Some(1),
            reduction: Reduction::Sum,
            ..softmax_onehot()
        };
        check_grad(|x, y| weighted.forward(x, y), &x, &y);
        let multilabel = DiceLoss {
            sigmoid: true,
            squared_pred: true,
            jaccard: true,
            batch: true,
            ..Default::default()
        };
        let (x, y) = (logits(&[2, 2, 4, 3], 3), mask(&[2, 2, 4, 3], 4));
        check_grad(|x, y| multilabel.forward(x, y), &x, &y);
    }

    #[test]
    fn a_perfect_prediction_has_zero_loss_and_a_disjoint_one_almost_one() {
        let y = mask(&[2, 2, 5, 4], 5);
        let loss = DiceLoss::default();
        assert!(value(&loss.forward(&y, &y).unwrap()).abs() < 1e-9);
        let opposite = y.affine(-1.0, 1.0).unwrap();
        assert!((value(&loss.forward(&opposite, &y).unwrap()) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn reduction_none_keeps_broadcastable_shapes() {
        let (x, y) = (logits(&[2, 3, 4, 3, 2], 6), labels(&[2, 1, 4, 3, 2], 3, 7));
        let none = DiceLoss {
            reduction: Reduction::None,
            ..softmax_onehot()
        };
        assert_eq!(none.forward(&x, &y).unwrap().shape(), &[2, 3, 1, 1, 1]);
        let batch = DiceLoss { batch: true, ..none };
        assert_eq!(batch.forward(&x, &y).unwrap().shape(), &[3, 1, 1, 1]);
    }

    #[test]
    fn single_channel_softmax_and_onehot_are_skipped() {
        let (x, y) = (
            Tensor::rand(&[2, 1, 4, 4], 8, DType::F64).unwrap(),
            mask(&[2, 1, 4, 4], 9),
        );
        let skipped = softmax_onehot().forward(&x, &y).unwrap();
        let plain = DiceLoss::default().forward(&x, &y).unwrap();
        assert_eq!(value(&skipped), value(&plain));
    }

    #[test]
    fn other_act_and_integer_labels_are_accepted() {
        let (x, y) = (logits(&[2, 3, 4, 3], 13), labels(&[2, 1, 4, 3], 3, 14));
        let by_flag = value(&softmax_onehot().forward(&x, &y).unwrap());
        let by_fn = DiceLoss {
            softmax: false,
            other_act: Some(|t: &Tensor| t.softmax(1)),
            ..softmax_onehot()
        };
        assert_eq!(value(&by_fn.forward(&x, &y).unwrap()), by_flag);
        let int_labels = y.to_dtype(DType::I64).unwrap();
        assert_eq!(value(&softmax_onehot().forward(&x, &int_labels).unwrap()), by_flag);
    }

    #[test]
    fn bad_shapes_and_weights_are_errors() {
        let (x, y) = (logits(&[2, 3, 4, 4], 10), labels(&[2, 1, 4, 4], 3, 11));
        let err = DiceLoss::default().forward(&x, &y).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 4, 4]") && err.contains("[2, 1, 4, 4]"), "{err}");
        let short = DiceLoss {
            weight: Some(ClassWeight::PerClass(vec![1.0, 2.0])),
            ..softmax_onehot()
        };
        assert!(short.forward(&x, &y).unwrap_err().to_string().contains("2 values"));
        let negative = DiceLoss {
            weight: Some(ClassWeight::Scalar(-1.0)),
            ..softmax_onehot()
        };
        assert!(negative
            .forward(&x, &y)
            .unwrap_err()
            .to_string()
            .contains("no less than 0"));
        let flat = logits(&[4], 12);
        assert!(DiceLoss::default().forward(&flat, &flat).is_err());
    }
}
