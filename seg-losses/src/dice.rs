//! MONAI's `DiceLoss` (Milletari et al. 2016), with its Jaccard variant.

use seg_tensor::{Result, Tensor};

use crate::options::{along_axis, Activation, ClassWeight, Reduction};
use crate::overlap::{overlap, OverlapKind};
use crate::prepare::{reduce_axes, Act, Prepare};

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
        let (f, rank) = self.unweighted(input, target)?;
        let classes = f.shape()[f.rank() - 1];
        let f = match &self.weight {
            Some(w) if classes != 1 => {
                let values = w.values(OP, "weight", classes)?;
                w.expect_non_negative(OP, "weight")?;
                f.mul(&along_axis(&values, f.rank() - 1, f.rank(), &f)?)?
            }
            _ => f,
        };
        match self.reduction {
            Reduction::None => {
                let mut shape: Vec<usize> = f.shape().iter().take(2).copied().collect();
                shape.resize(shape.len() + rank - 2, 1);
                f.reshape(&shape)
            }
            r => r.reduce_all(&f),
        }
    }

    /// `f` before weighting, `(B, C)` (`(C,)` with `batch`), and the prediction's rank.
    fn unweighted(&self, input: &Tensor, target: &Tensor) -> Result<(Tensor, usize)> {
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
        let o = overlap(&p.input, &p.target, &reduce_axes(rank, self.batch), kind)?;
        let (fp, fn_) = if self.jaccard {
            (o.fp, o.fn_)
        } else {
            (o.fp.mul_scalar(0.5)?, o.fn_.mul_scalar(0.5)?)
        };
        let numerator = o.tp.mul_scalar(2.0)?.add_scalar(self.smooth_nr)?;
        let denominator = o.tp.add(&fp)?.add(&fn_)?.affine(2.0, self.smooth_dr)?;
        Ok((numerator.div(&denominator)?.affine(-1.0, 1.0)?, rank))
    }
}
