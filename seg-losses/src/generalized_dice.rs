//! MONAI's `GeneralizedDiceLoss` (Sudre et al. 2017).

use std::str::FromStr;

use seg_tensor::{Error, Result, Tensor};

use crate::options::{Activation, Reduction};
use crate::overlap::{overlap, OverlapKind};
use crate::prepare::{expect_spatial, reduce_axes, Act, Prepare};

/// MONAI's `Weight`: how the class weights `w` follow from the target volume `G = sum t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weight {
    /// `w = 1 / G^2` (MONAI's default).
    #[default]
    Square,
    /// `w = 1 / G`.
    Simple,
    /// `w = 1`.
    Uniform,
}

impl FromStr for Weight {
    type Err = Error;

    /// `"square"`, `"simple"` or `"uniform"`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "square" => Ok(Weight::Square),
            "simple" => Ok(Weight::Simple),
            "uniform" => Ok(Weight::Uniform),
            other => Err(Error::invalid(
                "GeneralizedDiceLoss",
                format!("w_type should be \"square\", \"simple\" or \"uniform\", found {other:?}"),
            )),
        }
    }
}

/// `monai.losses.GeneralizedDiceLoss`: with per batch and class sums over the spatial axes (and the
/// batch, when `batch`) `tp = sum p t`, `fp`, `fn` as in [`crate::DiceLoss`], and class weights `w`
/// from `G = sum t` by `w_type`,
///
/// `f = 1 - (2 sum_c w_c tp_c + smooth_nr) / (sum_c w_c (2 tp_c + fp_c + fn_c) + smooth_dr)`
///
/// per batch element (`(B, 1)`), or once over everything with `batch` (`(1,)`). A class absent from
/// the target (`w` infinite) gets the largest finite weight of its batch element (of all, with
/// `batch`), as MONAI. `Reduction::None` keeps `(B, 1, 1, ...)` (with `batch`: `(1, 1, ...)`, one axis
/// fewer, as MONAI).
#[derive(Clone, Debug)]
pub struct GeneralizedDiceLoss {
    pub include_background: bool,
    pub to_onehot_y: bool,
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
    pub w_type: Weight,
    pub reduction: Reduction,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub batch: bool,
    pub soft_label: bool,
}

impl Default for GeneralizedDiceLoss {
    /// MONAI's defaults: `w_type` square, `smooth_nr = smooth_dr = 1e-5`, mean.
    fn default() -> Self {
        Self {
            include_background: true,
            to_onehot_y: false,
            sigmoid: false,
            softmax: false,
            other_act: None,
            w_type: Weight::Square,
            reduction: Reduction::Mean,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            batch: false,
            soft_label: false,
        }
    }
}

const OP: &str = "GeneralizedDiceLoss";

impl GeneralizedDiceLoss {
    /// The loss of `input` `(B, C, spatial...)` against `target` (`(B, C, ...)`, or labels
    /// `(B, 1, ...)` with `to_onehot_y`).
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        expect_spatial(OP, input)?;
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
        let rank = p.input.rank();
        let axes = reduce_axes(rank, self.batch);
        let kind = OverlapKind {
            ord: 1,
            soft_label: self.soft_label,
            decoupled: true,
        };
        let o = overlap(&p.input, &p.target, &axes, kind)?;
        let denominator = o.tp.mul_scalar(2.0)?.add(&o.fp)?.add(&o.fn_)?;
        let w = self.class_weights(&p.target.sum(&axes, false)?)?;
        // Classes are the last axis of the reduced counts: (B, C), or (C,) with `batch`.
        let class_axis = if self.batch { 0 } else { 1 };
        let numer = o.tp.mul(&w)?.sum(&[class_axis], true)?.affine(2.0, self.smooth_nr)?;
        let denom = denominator
            .mul(&w)?
            .sum(&[class_axis], true)?
            .add_scalar(self.smooth_dr)?;
        let f = numer.div(&denom)?.affine(-1.0, 1.0)?;
        self.reduction.reduce_keeping_rank(&f, rank)
    }

    /// `w` of the target volumes `ground` (`(B, C)` or `(C,)`), MONAI's `w_func` computed in f32 as
    /// MONAI does (`ground_o.float()`), with infinite weights replaced by the largest finite one.
    fn class_weights(&self, ground: &Tensor) -> Result<Tensor> {
        let dtype = ground.dtype();
        let g = ground.to_dtype(seg_tensor::DType::F32)?;
        let w = match self.w_type {
            Weight::Simple => g.powf(-1.0)?,
            Weight::Square => g.mul(&g)?.powf(-1.0)?,
            Weight::Uniform => g.mul_scalar(0.0)?.add_scalar(1.0)?,
        };
        let on_device = |v: f64| Tensor::full_on(&[], v, w.dtype(), w.device());
        let infinite = w.abs()?.eq(&on_device(f64::INFINITY)?)?;
        let zero = on_device(0.0)?;
        let finite = infinite.where_(&zero, &w)?;
        let max = if self.batch {
            finite.flatten(0, -1)?.max_dim(0, false)?.0
        } else {
            finite.max_dim(1, true)?.0
        };
        infinite.where_(&max.broadcast_to(w.shape())?, &finite)?.to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, labels, logits, mask, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2, 2], 1), labels(&[2, 1, 3, 2, 2], 3, 2));
        for w_type in [Weight::Square, Weight::Simple, Weight::Uniform] {
            let loss = GeneralizedDiceLoss {
                softmax: true,
                to_onehot_y: true,
                w_type,
                ..Default::default()
            };
            check_grad(|x, y| loss.forward(x, y), &x, &y);
        }
        let batch = GeneralizedDiceLoss {
            sigmoid: true,
            batch: true,
            reduction: Reduction::Sum,
            ..Default::default()
        };
        check_grad(
            |x, y| batch.forward(x, y),
            &logits(&[2, 2, 4, 3], 3),
            &mask(&[2, 2, 4, 3], 4),
        );
    }

    #[test]
    fn an_absent_class_takes_the_largest_finite_weight() {
        // Class 1 is absent: its weight becomes class 0's, 1 / 3 (simple), so with p = t on class 0
        // and p = 1/2 on class 1's empty target: numer = 2 (3 w), denom = w (2 * 3) + w (1/2 * 3 + 0).
        let x = Tensor::from_vec(vec![1.0f64, 1.0, 1.0, 0.5, 0.5, 0.5], &[1, 2, 3]).unwrap();
        let y = Tensor::from_vec(vec![1.0f64, 1.0, 1.0, 0.0, 0.0, 0.0], &[1, 2, 3]).unwrap();
        let loss = GeneralizedDiceLoss {
            w_type: Weight::Simple,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            ..Default::default()
        };
        let expected = 1.0 - 6.0 / (6.0 + 1.5);
        assert!((value(&loss.forward(&x, &y).unwrap()) - expected).abs() < 1e-6);
    }

    #[test]
    fn w_type_parses_monai_names() {
        assert_eq!("simple".parse::<Weight>().unwrap(), Weight::Simple);
        assert!("cubic".parse::<Weight>().unwrap_err().to_string().contains("\"cubic\""));
    }
}
