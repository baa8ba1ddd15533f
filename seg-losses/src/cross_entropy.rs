//! PyTorch's `CrossEntropyLoss` and `BCEWithLogitsLoss`, the cross-entropy halves of
//! [`crate::DiceCELoss`].

use seg_tensor::{Error, Result, Tensor};

use crate::label_sums::{LabelSums, LSE, NLL};
use crate::options::{along_axis, Reduction};
use crate::prepare::{as_float_like, expect_batched, expect_finite, one_hot, scalar_like};

/// `torch.nn.CrossEntropyLoss(weight, reduction, label_smoothing)` on logits `x` `(B, C, ...)` with
/// `s = log_softmax(x)` along the channels, `C` classes and `eps = label_smoothing`:
///
/// - class-index target `y` `(B, ...)`: per element `l = (1 - eps) w_y (-s_y) + (eps / C) sum_c w_c (-s_c)`;
///   `Mean` divides the sum by `sum w_y` (by the element count without `weight`);
/// - probability target `q` of `x`'s shape: `q' = (1 - eps) q + eps / C`,
///   `l = -sum_c w_c q'_c s_c`; `Mean` divides by the element count `numel / C`.
///
/// `None` keeps the per-element losses `(B, ...)`.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyLoss {
    /// One weight per class.
    pub weight: Option<Vec<f64>>,
    pub reduction: Reduction,
    pub label_smoothing: f64,
}

const CE: &str = "CrossEntropyLoss";

impl CrossEntropyLoss {
    /// The loss of logits `input` `(B, C, ...)` against class indices `(B, ...)` (truncated toward
    /// zero, in `0..C`) or probabilities of `input`'s shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        expect_batched(CE, input)?;
        expect_finite(CE, input, target)?;
        let classes = input.shape()[1];
        self.check(classes)?;
        let log_p = input.log_softmax(1)?;
        let w = match &self.weight {
            Some(w) => Some(along_axis(w, 1, input.rank(), input)?),
            None => None,
        };
        let weighted = |t: &Tensor| w.as_ref().map_or(Ok(t.clone()), |w| t.mul(w));
        let eps = self.label_smoothing;
        if target.shape() == input.shape() {
            let q = as_float_like(target, input)?.affine(1.0 - eps, eps / classes as f64)?;
            let loss = weighted(&log_p.mul(&q)?)?.sum(&[1], false)?.neg()?;
            return self.reduce(&loss, loss.numel() as f64);
        }
        let mut expected = input.shape().to_vec();
        expected.remove(1);
        if target.shape() != expected.as_slice() {
            return Err(Error::ShapeMismatch {
                op: CE,
                expected: format!("class indices {expected:?} or probabilities {:?}", input.shape()),
                found: target.shape().to_vec(),
            });
        }
        let onehot = one_hot(CE, &as_float_like(target, input)?.unsqueeze(1)?, classes)?;
        let nll = weighted(&log_p.mul(&onehot)?)?.sum(&[1], false)?.neg()?;
        let loss = if eps == 0.0 {
            nll.clone()
        } else {
            let smooth = weighted(&log_p)?.sum(&[1], false)?.neg()?;
            nll.affine(1.0 - eps, 0.0)?
                .add(&smooth.mul_scalar(eps / classes as f64)?)?
        };
        let total_weight = match &w {
            Some(w) => seg_tensor::no_grad(|| onehot.mul(w)?.sum_all()?.item())?,
            None => nll.numel() as f64,
        };
        self.reduce(&loss, total_weight)
    }

    /// The loss against the labels of the fused sums (`label_sums.rs`), `Mean` or `Sum`: with
    /// `NLL_c`, `LSE_c` the sums of `-s_c` over the voxels labelled `c` and over all voxels, the
    /// per-element losses above sum to `sum_c w_c ((1 - eps) NLL_c + (eps / C) LSE_c)`; `Mean`
    /// divides by `sum_c w_c n_c` (`n_c` the voxels labelled `c`), or by the element count.
    pub(crate) fn of_label_sums(&self, sums: &LabelSums) -> Result<Tensor> {
        let classes = sums.classes();
        self.check(classes)?;
        let eps = self.label_smoothing;
        let per_class = sums
            .row(NLL)?
            .affine(1.0 - eps, 0.0)?
            .add(&sums.row(LSE)?.mul_scalar(eps / classes as f64)?)?;
        let (total, denominator) = match &self.weight {
            Some(w) => {
                let w = along_axis(w, 1, 2, &per_class)?;
                let counted = seg_tensor::no_grad(|| sums.counts(false)?.mul(&w)?.sum_all()?.item())?;
                (per_class.mul(&w)?.sum_all()?, counted)
            }
            None => (per_class.sum_all()?, (per_class.shape()[0] * sums.spatial()) as f64),
        };
        match self.reduction {
            Reduction::Mean => total.div(&scalar_like(denominator, &total)?),
            Reduction::Sum => Ok(total),
            Reduction::None => Err(Error::invalid(
                CE,
                "the per-element losses need the composed path, found reduction \"none\"",
            )),
        }
    }

    /// Fails when `label_smoothing` is outside `[0, 1]` or `weight` has not `classes` values.
    fn check(&self, classes: usize) -> Result<()> {
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid(
                CE,
                format!("label_smoothing must be in [0, 1], found {}", self.label_smoothing),
            ));
        }
        match &self.weight {
            Some(w) if w.len() != classes => Err(Error::invalid(
                CE,
                format!("weight has {} values, expected one per class: {classes}", w.len()),
            )),
            _ => Ok(()),
        }
    }

    /// `Mean` as `sum / denominator`, `Sum`, or `None`.
    fn reduce(&self, loss: &Tensor, denominator: f64) -> Result<Tensor> {
        match self.reduction {
            Reduction::Mean => loss.sum_all()?.div(&scalar_like(denominator, loss)?),
            r => r.reduce_all(loss),
        }
    }
}

/// `torch.nn.BCEWithLogitsLoss(pos_weight, reduction)`: per element, with `pw` the positive weight
/// (broadcast along the last axis, as PyTorch; 1 when absent),
///
/// `l = (1 - t) x + (1 + (pw - 1) t) ln(1 + e^{-x})`,
///
/// then `Mean`, `Sum`, or `None` (the input's shape).
#[derive(Clone, Debug, Default)]
pub struct BceWithLogitsLoss {
    pub pos_weight: Option<Vec<f64>>,
    pub reduction: Reduction,
}

impl BceWithLogitsLoss {
    /// The loss of logits `input` against a target of the same shape.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "BCEWithLogitsLoss";
        if target.shape() != input.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!("a target of the input's shape {:?}", input.shape()),
                found: target.shape().to_vec(),
            });
        }
        expect_finite(OP, input, target)?;
        let t = as_float_like(target, input)?;
        let log_weight = match &self.pos_weight {
            None => scalar_like(1.0, input)?,
            Some(pw) => {
                let pw = Tensor::from_vec(pw.clone(), &[pw.len()])?
                    .to_dtype(input.dtype())?
                    .to_device(input.device())?;
                pw.add_scalar(-1.0)?.mul(&t)?.add_scalar(1.0)?
            }
        };
        let loss = t
            .affine(-1.0, 1.0)?
            .mul(input)?
            .add(&log_weight.mul(&input.neg()?.softplus()?)?)?;
        if loss.shape() != input.shape() {
            return Err(Error::invalid(
                OP,
                format!(
                    "pos_weight of length {} does not broadcast along the last axis of {:?}",
                    self.pos_weight.as_ref().map_or(0, Vec::len),
                    input.shape()
                ),
            ));
        }
        self.reduction.reduce_all(&loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::one_hot;
    use crate::testing::{check_grad, labels, logits, mask, value};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 3, 2], 1), labels(&[2, 3, 2], 3, 2));
        let ce = CrossEntropyLoss {
            weight: Some(vec![0.5, 1.0, 2.0]),
            label_smoothing: 0.1,
            ..Default::default()
        };
        check_grad(|x, y| ce.forward(x, y), &x, &y);
        let probs = Tensor::rand(&[2, 3, 3, 2], 3, seg_tensor::DType::F64).unwrap();
        check_grad(|x, y| ce.forward(x, y), &x, &probs);
        let bce = BceWithLogitsLoss {
            pos_weight: Some(vec![3.0]),
            reduction: Reduction::Sum,
        };
        check_grad(
            |x, y| bce.forward(x, y),
            &logits(&[2, 1, 3, 2], 4),
            &mask(&[2, 1, 3, 2], 5),
        );
    }

    #[test]
    fn two_equal_logits_cost_ln_2() {
        let x = Tensor::zeros(&[1, 2], seg_tensor::DType::F64);
        let y = Tensor::zeros(&[1], seg_tensor::DType::F64);
        let l = value(&CrossEntropyLoss::default().forward(&x, &y).unwrap());
        assert!((l - std::f64::consts::LN_2).abs() < 1e-12);
    }

    #[test]
    fn class_indices_and_one_hot_probabilities_agree_without_weights() {
        let (x, y) = (logits(&[2, 4, 3, 3], 6), labels(&[2, 3, 3], 4, 7));
        let ce = CrossEntropyLoss {
            label_smoothing: 0.2,
            ..Default::default()
        };
        let probs = one_hot("test", &y.unsqueeze(1).unwrap(), 4).unwrap();
        let (a, b) = (
            value(&ce.forward(&x, &y).unwrap()),
            value(&ce.forward(&x, &probs).unwrap()),
        );
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn bad_targets_and_weights_are_errors() {
        let x = logits(&[2, 3, 4], 8);
        let wrong = labels(&[2, 5], 3, 9);
        assert!(CrossEntropyLoss::default()
            .forward(&x, &wrong)
            .unwrap_err()
            .to_string()
            .contains("[2, 4]"));
        let weight = CrossEntropyLoss {
            weight: Some(vec![1.0; 2]),
            ..Default::default()
        };
        assert!(weight.forward(&x, &labels(&[2, 4], 3, 10)).is_err());
        let outside = Tensor::full(&[2, 4], 3.0, seg_tensor::DType::F64);
        assert!(CrossEntropyLoss::default().forward(&x, &outside).is_err());
    }
}
