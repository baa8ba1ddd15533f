//! Overlap metrics: Dice (MONAI `DiceMetric`) and IoU (MONAI `MeanIoU`), per batch item and class.

use seg_tensor::{Result, Tensor};

use super::ClassMasks;

/// `|P|`, `|G|` and `|P and G|` of a prediction `P` and ground truth `G`.
fn counts(pred: &[bool], truth: &[bool]) -> (f64, f64, f64) {
    let (mut p, mut g, mut both) = (0usize, 0usize, 0usize);
    for (&a, &b) in pred.iter().zip(truth) {
        p += usize::from(a);
        g += usize::from(b);
        both += usize::from(a && b);
    }
    (p as f64, g as f64, both as f64)
}

/// The value of a class whose ground truth is empty: NaN when `ignore_empty`, else 1 for an empty
/// prediction and 0 for any other.
fn empty_truth(ignore_empty: bool, p: f64) -> f64 {
    match (ignore_empty, p == 0.0) {
        (true, _) => f64::NAN,
        (false, true) => 1.0,
        (false, false) => 0.0,
    }
}

/// Dice `2 |P and G| / (|P| + |G|)` per batch item and class, as MONAI's `DiceMetric` (reduction
/// "none"): `pred` and `target` are binarized one-hot `(B, C, spatial...)`; a class with an empty
/// ground truth gives NaN when `ignore_empty` (MONAI's default), else 1 if the prediction is empty
/// too and 0 otherwise. Returns `(B, C)`, or `(B, C - 1)` without the background.
pub fn dice(pred: &Tensor, target: &Tensor, include_background: bool, ignore_empty: bool) -> Result<Tensor> {
    ClassMasks::new("dice", pred, target, include_background)?.map(|(p, t)| {
        let (p, g, both) = counts(p, t);
        Ok(if g > 0.0 {
            2.0 * both / (p + g)
        } else {
            empty_truth(ignore_empty, p)
        })
    })
}

/// IoU `|P and G| / |P or G|` per batch item and class, as MONAI's `MeanIoU` (reduction "none"),
/// with [`dice`]'s arguments and empty-truth convention.
pub fn mean_iou(pred: &Tensor, target: &Tensor, include_background: bool, ignore_empty: bool) -> Result<Tensor> {
    ClassMasks::new("mean_iou", pred, target, include_background)?.map(|(p, t)| {
        let (p, g, both) = counts(p, t);
        Ok(if g > 0.0 {
            both / (p + g - both)
        } else {
            empty_truth(ignore_empty, p)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A (1, 2, 4) one-hot pair from the foreground rows.
    fn pair(p: [f32; 4], g: [f32; 4]) -> (Tensor, Tensor) {
        let one_hot = |fg: [f32; 4]| {
            let mut v: Vec<f32> = fg.iter().map(|x| 1.0 - x).collect();
            v.extend(fg);
            Tensor::from_vec(v, &[1, 2, 4]).unwrap()
        };
        (one_hot(p), one_hot(g))
    }

    fn value(t: Tensor) -> f64 {
        assert_eq!(t.shape(), &[1, 1]);
        t.item().unwrap()
    }

    #[test]
    fn dice_and_iou_of_a_partial_overlap() {
        let (p, g) = pair([1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]);
        assert!((value(dice(&p, &g, false, true).unwrap()) - 2.0 / 5.0).abs() < 1e-6);
        assert!((value(mean_iou(&p, &g, false, true).unwrap()) - 1.0 / 4.0).abs() < 1e-6);
        assert_eq!(dice(&p, &g, true, true).unwrap().shape(), &[1, 2]);
    }

    #[test]
    fn empty_truth_conventions() {
        let (empty, _) = pair([0.0; 4], [0.0; 4]);
        let (some, _) = pair([1.0, 0.0, 0.0, 0.0], [0.0; 4]);
        for metric in [dice, mean_iou] {
            assert!(value(metric(&empty, &empty, false, true).unwrap()).is_nan());
            assert!(value(metric(&some, &empty, false, true).unwrap()).is_nan());
            assert_eq!(value(metric(&empty, &empty, false, false).unwrap()), 1.0);
            assert_eq!(value(metric(&some, &empty, false, false).unwrap()), 0.0);
            assert_eq!(value(metric(&empty, &some, false, true).unwrap()), 0.0);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (p, g) = pair([1.0, 0.5, 0.0, 0.0], [0.0; 4]);
        assert!(dice(&p, &g, false, true).unwrap_err().to_string().contains("found 0.5"));
        let small = Tensor::zeros(&[1, 2, 3], seg_tensor::DType::F32);
        assert!(mean_iou(&small, &g, false, true).is_err());
        assert!(dice(&Tensor::zeros(&[2, 4], seg_tensor::DType::F32), &g, false, true).is_err());
    }
}
