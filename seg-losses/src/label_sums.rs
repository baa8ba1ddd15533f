//! The fused path of the losses for a softmax against class labels (`softmax` with `to_onehot_y`):
//! one threaded pass over the logits gives every per (batch, class) sum that Dice, cross-entropy and
//! the sigmoid focal term need, one more pass gives the logits' gradient (seg-kernels'
//! `label_softmax`, whose doc has the formulas); the losses are then small functions of those
//! `(B, C)` sums, written with ordinary tensor ops. Neither the softmax, the one-hot target nor any
//! other `(B, C, spatial...)` intermediate is stored.
//!
//! The composed path (activation, one-hot, elementwise ops, reductions) stays for everything else and
//! is the reference the tests hold this one to.

use std::sync::Arc;

use rayon::prelude::*;
use seg_kernels::cpu::label_softmax::{label_softmax_backward, label_softmax_sums, LabelSoftmaxShape, PS, ROWS, TP};
pub(crate) use seg_kernels::cpu::label_softmax::{FOCAL_NEG, FOCAL_POS, LSE, NLL};
use seg_tensor::{with_element, with_float, Backward, Device, Element, Error, Result, Tensor};

use crate::overlap::Overlap;
use crate::prepare::{expect_finite, without_background};

/// What the sums are made for, beyond Dice and cross-entropy.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LabelSumsOptions {
    /// MONAI's `ignore_index` of the Dice term (a class, see [`LabelSums::applies`]).
    pub ignore_index: Option<i64>,
    /// `squared_pred`.
    pub squared: bool,
    /// The sigmoid focal term's `gamma`, when it is wanted.
    pub focal_gamma: Option<f64>,
}

/// The per (batch, class) sums of a softmax over logits `(B, C, spatial...)` against labels
/// `(B, 1, spatial...)`.
pub(crate) struct LabelSums {
    /// `(B, ROWS, C)` in the logits' dtype, differentiable in the logits.
    sums: Tensor,
    /// Voxels of each label per batch element, `(B, C)` (ignored ones included).
    counts: Vec<f64>,
    shape: LabelSoftmaxShape,
}

#[cfg(test)]
thread_local! {
    static COMPOSED_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fused path switched off, so that the losses take their composed path: the
/// reference of the tests.
#[cfg(test)]
pub(crate) fn composed_only<R>(f: impl FnOnce() -> R) -> R {
    COMPOSED_ONLY.set(true);
    let result = f();
    COMPOSED_ONLY.set(false);
    result
}

impl LabelSums {
    /// Whether the fused path takes `input` and `target`: f32 or f64 logits `(B, C, spatial...)`
    /// with `C > 1` and at least one spatial axis, labels `(B, 1, spatial...)`, and no `ignore_index`
    /// or one that is a class (an index outside the classes, which MONAI turns into background
    /// first, takes the composed path). The fused kernel runs on the CPU: tensors on a GPU take the
    /// composed path.
    pub fn applies(input: &Tensor, target: &Tensor, ignore_index: Option<i64>) -> bool {
        #[cfg(test)]
        if COMPOSED_ONLY.get() {
            return false;
        }
        let (x, y) = (input.shape(), target.shape());
        input.device() == Device::Cpu
            && target.device() == Device::Cpu
            && input.dtype().is_compute_float()
            && x.len() >= 3
            && x[1] > 1
            && y.len() == x.len()
            && y[0] == x[0]
            && y[1] == 1
            && y[2..] == x[2..]
            && ignore_index.is_none_or(|i| (0..x[1] as i64).contains(&i))
    }

    /// The sums of `input` against `target` (which [`LabelSums::applies`] accepts). Labels are
    /// truncated toward zero (`labels.long()`) and must lie in `0..C`; a NaN or an infinity in the
    /// logits (seen in the sums) or the labels is an error, as on the composed path.
    pub fn new(op: &'static str, input: &Tensor, target: &Tensor, options: LabelSumsOptions) -> Result<Self> {
        let dims = input.shape();
        let shape = LabelSoftmaxShape {
            batch: dims[0],
            classes: dims[1],
            spatial: dims[2..].iter().product(),
            ignore: options.ignore_index.map(|i| i as usize),
            squared: options.squared,
            focal_gamma: options.focal_gamma,
        };
        let (labels, counts) = class_indices(op, input, target, &shape)?;
        let sums = with_float!(input.dtype(), op, T => {
            let sums = label_softmax_sums(&shape, &input.values::<T>()?, &labels);
            let finite = sums.chunks(shape.classes).skip(LSE).step_by(ROWS).flatten().all(|v| v.is_finite());
            if !finite {
                expect_finite(op, input, target)?;
                return Err(Error::invalid(op, "the loss is not finite for these logits"));
            }
            let values: Vec<T> = sums.iter().map(|&v| T::from_f64(v)).collect();
            Tensor::from_vec(values, &[shape.batch, ROWS, shape.classes])
        })?;
        let labels = Arc::new(labels);
        let sums = Tensor::from_op(sums, &[input], |_| LabelSumsBackward {
            x: input.detach(),
            labels,
            shape,
        });
        Ok(Self { sums, counts, shape })
    }

    /// One row of the sums (`TP`, `NLL`, ... of seg-kernels' `label_softmax`), `(B, C)`.
    pub fn row(&self, row: usize) -> Result<Tensor> {
        self.sums.narrow(1, row, 1)?.squeeze(1)
    }

    /// The number of classes `C`.
    pub fn classes(&self) -> usize {
        self.shape.classes
    }

    /// The number of voxels per batch element and class.
    pub fn spatial(&self) -> usize {
        self.shape.spatial
    }

    /// Voxels of each label per batch element, `(B, C)`, in the sums' dtype; `masked` leaves out
    /// those of the ignored label.
    pub fn counts(&self, masked: bool) -> Result<Tensor> {
        let mut counts = self.counts.clone();
        if let (true, Some(i)) = (masked, self.shape.ignore) {
            counts
                .iter_mut()
                .skip(i)
                .step_by(self.shape.classes)
                .for_each(|c| *c = 0.0);
        }
        Tensor::from_vec(counts, &[self.shape.batch, self.shape.classes])?.to_dtype(self.sums.dtype())
    }

    /// MONAI's `compute_tp_fp_fn` of the softmax against the one-hot labels, both masked by
    /// `ignore_index`: `tp = TP`, `fp = PS - tp`, `fn = (label counts) - tp`, `(B, C)`, without the
    /// background unless `include_background`, summed over the batch too with `batch`. (For a one-hot
    /// target MONAI's norm form with `squared_pred` or `soft_label` gives the same `tp`.)
    pub fn overlap(&self, include_background: bool, batch: bool) -> Result<Overlap> {
        let keep = |t: Tensor| -> Result<Tensor> {
            let t = if include_background { t } else { without_background(&t)? };
            if batch {
                t.sum(&[0], false)
            } else {
                Ok(t)
            }
        };
        let tp = keep(self.row(TP)?)?;
        let pred = keep(self.row(PS)?)?;
        let ground = keep(self.counts(true)?)?;
        Ok(Overlap {
            fp: pred.sub(&tp)?,
            fn_: ground.sub(&tp)?,
            tp,
        })
    }
}

/// The labels `(B, 1, spatial...)` as class indices, and the count of each class per batch element
/// `(B, C)`, in one parallel pass; an error names the first label outside `0..C` (or the first NaN).
fn class_indices(
    op: &'static str,
    input: &Tensor,
    target: &Tensor,
    shape: &LabelSoftmaxShape,
) -> Result<(Vec<u32>, Vec<f64>)> {
    const BLOCK: usize = 1 << 14;
    let (classes, spatial) = (shape.classes, shape.spatial.max(1));
    let mut indices = vec![0u32; target.numel()];
    // Per block of one batch element: (batch element, class counts, all labels inside 0..C).
    let blocks: Vec<(usize, Vec<f64>, bool)> = with_element!(target.dtype(), L => {
        let values = target.values::<L>()?;
        indices
            .par_chunks_mut(spatial)
            .zip(values.par_chunks(spatial))
            .enumerate()
            .flat_map(|(b, (out, labels))| {
                out.par_chunks_mut(BLOCK).zip(labels.par_chunks(BLOCK)).map(move |(out, labels)| {
                    let mut counts = vec![0.0; classes];
                    let mut inside = true;
                    for (i, label) in out.iter_mut().zip(labels.iter()) {
                        // `as` truncates toward zero; NaN fails both tests.
                        let t = label.as_f64();
                        let ok = t > -1.0 && t < classes as f64;
                        inside &= ok;
                        *i = if ok { t as u32 } else { 0 };
                        counts[*i as usize] += 1.0;
                    }
                    (b, counts, inside)
                })
            })
            .collect()
    });
    if blocks.iter().any(|(_, _, inside)| !inside) {
        expect_finite(op, input, target)?;
        let values = target.to_vec_f64();
        let (i, v) = values
            .iter()
            .enumerate()
            .find(|(_, &t)| !(t > -1.0 && t < classes as f64))
            .expect("a label outside the classes");
        return Err(Error::invalid(
            op,
            format!(
                "expected labels in 0..{classes}, found {v} at flat index {i} of shape {:?}",
                target.shape()
            ),
        ));
    }
    let mut counts = vec![0.0; shape.batch * classes];
    for (b, block, _) in &blocks {
        for (total, n) in counts[b * classes..][..classes].iter_mut().zip(block) {
            *total += n;
        }
    }
    Ok((indices, counts))
}

struct LabelSumsBackward {
    x: Tensor,
    labels: Arc<Vec<u32>>,
    shape: LabelSoftmaxShape,
}

impl Backward for LabelSumsBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = grad.to_vec_f64();
        let dx = with_float!(self.x.dtype(), "label sums backward", T => {
            let dx = label_softmax_backward(&self.shape, &self.x.values::<T>()?, &self.labels, &g);
            Tensor::from_vec(dx, self.x.shape())
        })?;
        Ok(vec![Some(dx)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ClassWeight, Reduction};
    use crate::testing::{check_grad, labels, logits};
    use crate::{DiceCELoss, DiceFocalLoss, DiceLoss};
    use proptest::prelude::*;
    use seg_tensor::DType;

    type Loss<'a> = &'a dyn Fn(&Tensor, &Tensor) -> Result<Tensor>;

    /// The value of `loss(x, y)` summed, and its gradient in `x`, on the fused or the composed path.
    /// (Or the error's message.)
    fn run(loss: Loss, x: &Tensor, y: &Tensor, fused: bool) -> std::result::Result<(f64, Vec<f64>), String> {
        let go = || {
            let value = loss(x, y).map_err(|e| e.to_string())?.sum_all().unwrap();
            let grad = value.backward().unwrap().get(x).unwrap().to_vec_f64();
            Ok((value.item().unwrap(), grad))
        };
        if fused {
            go()
        } else {
            composed_only(go)
        }
    }

    /// Both the same error, or values and gradients within 1e-9 relative.
    fn close(
        a: &std::result::Result<(f64, Vec<f64>), String>,
        b: &std::result::Result<(f64, Vec<f64>), String>,
    ) -> bool {
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        match (a, b) {
            (Ok(a), Ok(b)) => {
                near(a.0, b.0) && a.1.len() == b.1.len() && a.1.iter().zip(&b.1).all(|(&a, &b)| near(a, b))
            }
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn fused_losses_match_the_composed_path(
            batch in 1usize..3, classes in 2usize..5, spatial in proptest::collection::vec(1usize..5, 1..4),
            seed in 0u64..1000, include_background in any::<bool>(), squared_pred in any::<bool>(),
            jaccard in any::<bool>(), batch_sum in any::<bool>(), reduction in 0usize..3,
            ignore in proptest::option::of(0i64..4), weighted in any::<bool>(), integer_labels in any::<bool>(),
            label_smoothing in 0.0f64..0.3, gamma in 0.0f64..3.0, alpha in proptest::option::of(0.0f64..1.0),
        ) {
            let mut shape = vec![batch, classes];
            shape.extend(&spatial);
            let x = logits(&shape, seed).mul_scalar(3.0).unwrap().requires_grad();
            shape[1] = 1;
            let mut y = labels(&shape, classes, seed + 1);
            if integer_labels {
                y = y.to_dtype(DType::I64).unwrap();
            }
            let weight: Option<Vec<f64>> = weighted.then(|| (0..classes).map(|c| 0.5 + c as f64 * 0.7).collect());
            let dice = DiceLoss {
                softmax: true,
                to_onehot_y: true,
                include_background,
                squared_pred,
                jaccard,
                batch: batch_sum,
                reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][reduction],
                smooth_nr: 1e-3,
                smooth_dr: 1e-2,
                ignore_index: ignore.filter(|&i| i < classes as i64),
                ..Default::default()
            };
            let kept = |w: &Vec<f64>| ClassWeight::PerClass(w[usize::from(!include_background)..].to_vec());
            let plain = DiceLoss { weight: weight.as_ref().map(kept), ..dice.clone() };
            let ce = DiceCELoss {
                dice: DiceLoss { reduction: [Reduction::Mean, Reduction::Sum][reduction % 2], ..dice.clone() },
                weight: weight.clone(),
                label_smoothing,
                lambda_dice: 0.7,
                lambda_ce: 1.3,
            };
            let focal = DiceFocalLoss {
                dice: DiceLoss { reduction: [Reduction::Mean, Reduction::Sum][reduction % 2], ..dice.clone() },
                weight: weight.as_ref().map(kept),
                gamma,
                alpha,
                lambda_dice: 1.1,
                lambda_focal: 0.6,
            };
            let losses: [Loss; 3] =
                [&|x, y| plain.forward(x, y), &|x, y| ce.forward(x, y), &|x, y| focal.forward(x, y)];
            for loss in losses {
                let (fused, composed) = (run(loss, &x, &y, true), run(loss, &x, &y, false));
                prop_assert!(close(&fused, &composed), "{fused:?}\n{composed:?}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = (logits(&[2, 3, 4, 3], 1), labels(&[2, 1, 4, 3], 3, 2));
        let weights = Tensor::randn(&[2, ROWS, 3], 3, DType::F64).unwrap();
        let options = LabelSumsOptions {
            ignore_index: Some(1),
            squared: true,
            focal_gamma: Some(1.5),
        };
        let weighted = |x: &Tensor, y: &Tensor| LabelSums::new("test", x, y, options)?.sums.mul(&weights)?.sum_all();
        check_grad(weighted, &x, &y);
    }

    #[test]
    fn counts_and_overlap_follow_the_labels() {
        let x = Tensor::zeros(&[1, 2, 4], DType::F32);
        let y = Tensor::from_vec(vec![0i64, 1, 1, 1], &[1, 1, 4]).unwrap();
        let options = LabelSumsOptions {
            ignore_index: Some(0),
            ..Default::default()
        };
        let sums = LabelSums::new("test", &x, &y, options).unwrap();
        assert_eq!(sums.counts(false).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 3.0]);
        let o = sums.overlap(true, false).unwrap();
        // p = 1/2 everywhere; the voxel labelled 0 is left out.
        assert_eq!(o.tp.to_vec::<f32>().unwrap(), vec![0.0, 1.5]);
        assert_eq!(o.fp.to_vec::<f32>().unwrap(), vec![1.5, 0.0]);
        assert_eq!(o.fn_.to_vec::<f32>().unwrap(), vec![0.0, 1.5]);
    }

    #[test]
    fn bad_labels_and_logits_are_errors() {
        let x = Tensor::zeros(&[1, 3, 5], DType::F32);
        let y = Tensor::from_vec(vec![-0.5f32, 2.9, 3.0, 1.0, 0.0], &[1, 1, 5]).unwrap();
        let err = LabelSums::new("Loss", &x, &y, LabelSumsOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("0..3") && err.contains("found 3 at flat index 2"), "{err}");
        let nan = Tensor::from_vec(vec![0.0f32, f32::NAN, 1.0, 1.0, 0.0], &[1, 1, 5]).unwrap();
        let err = LabelSums::new("Loss", &x, &nan, LabelSumsOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("finite target"), "{err}");
        let mut values = vec![0.0f32; 15];
        values[7] = f32::INFINITY;
        let inf = Tensor::from_vec(values, &[1, 3, 5]).unwrap();
        let y = Tensor::zeros(&[1, 1, 5], DType::F32);
        let err = LabelSums::new("Loss", &inf, &y, LabelSumsOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("finite prediction") && err.contains("flat index 7"),
            "{err}"
        );
    }
}
