//! clDice as a metric (Shit et al. 2021, "clDice - a Novel Topology-Preserving Loss Function for
//! Tubular Structure Segmentation"), on binary masks and their topological skeletons.
//!
//! With `S` the skeleton by iterative thinning ([`super::skeletonize`]), prediction `P` and truth `G`:
//!
//! `Tprec = |S(P) ∩ G| / |S(P)|`, `Tsens = |S(G) ∩ P| / |S(G)|`, `clDice = 2 Tprec Tsens / (Tprec + Tsens)`,
//!
//! 0 when both are 0. As the paper's reference code (`np.sum(v * s) / np.sum(s)`), an empty skeleton
//! (an empty mask, or with the 2D rule a mask that thins away entirely) gives 0 / 0 = NaN, and so a
//! NaN clDice.

use seg_tensor::{Result, Tensor};

use super::skeletonize::skeletonize;
use super::ClassMasks;

/// clDice per batch item and class of binarized one-hot `pred` and `target` `(B, C, H, W)` or
/// `(B, C, D, H, W)` (values 0 or 1), as a `(B, C')` f32 tensor: classes `1..C` without the
/// background (a single channel is kept either way). No gradient: see `SoftclDiceLoss` for the loss.
pub fn cldice_metric(pred: &Tensor, target: &Tensor, include_background: bool) -> Result<Tensor> {
    let masks = ClassMasks::new("cldice_metric", pred, target, include_background)?;
    masks.map(|(p, g)| {
        let (sp, sg) = (skeletonize(p, &masks.spatial)?, skeletonize(g, &masks.spatial)?);
        let (tprec, tsens) = (covered(&sp, g), covered(&sg, p));
        Ok(if tprec + tsens == 0.0 {
            0.0
        } else {
            2.0 * tprec * tsens / (tprec + tsens)
        })
    })
}

/// The fraction of the `true` cells of `skeleton` that `mask` covers (NaN for an empty skeleton).
fn covered(skeleton: &[bool], mask: &[bool]) -> f64 {
    let total = skeleton.iter().filter(|&&s| s).count();
    let hits = skeleton.iter().zip(mask).filter(|(s, m)| **s && **m).count();
    hits as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::DType;

    /// One-hot `(1, 2, h, w)` of a foreground given per pixel.
    fn one_hot(h: usize, w: usize, fg: impl Fn(usize, usize) -> bool) -> Tensor {
        let f: Vec<f32> = (0..h * w).map(|i| f32::from(fg(i / w, i % w))).collect();
        let mut v: Vec<f32> = f.iter().map(|x| 1.0 - x).collect();
        v.extend(f);
        Tensor::from_vec(v, &[1, 2, h, w]).unwrap()
    }

    fn value(t: &Tensor) -> f64 {
        t.to_vec_f64()[0]
    }

    #[test]
    fn identical_vessels_score_one_and_a_cut_vessel_less() {
        let vessel = |y: usize, x: usize| (4..7).contains(&y) && (2..28).contains(&x);
        let g = one_hot(11, 30, vessel);
        assert_eq!(value(&cldice_metric(&g, &g, false).unwrap()), 1.0);
        // Cut the vessel in the middle: the truth's skeleton is no longer covered there.
        let cut = one_hot(11, 30, |y, x| vessel(y, x) && !(13..17).contains(&x));
        let score = value(&cldice_metric(&cut, &g, false).unwrap());
        assert!(score < 1.0 && score > 0.8, "{score}");
        // A prediction twice as thick still covers the whole skeleton of the truth, and its own
        // skeleton lies within the truth: clDice ignores thickness.
        let thick = one_hot(11, 30, |y, x| (3..8).contains(&y) && (2..28).contains(&x));
        assert_eq!(value(&cldice_metric(&thick, &g, false).unwrap()), 1.0);
    }

    #[test]
    fn disjoint_masks_score_zero_and_empty_ones_nan() {
        let a = one_hot(8, 8, |y, x| y < 3 && x > 1 && x < 7);
        let b = one_hot(8, 8, |y, x| y > 4 && x > 1 && x < 7);
        assert_eq!(value(&cldice_metric(&a, &b, false).unwrap()), 0.0);
        let empty = one_hot(8, 8, |_, _| false);
        assert!(value(&cldice_metric(&empty, &b, false).unwrap()).is_nan());
    }

    #[test]
    fn three_d_masks_and_bad_inputs() {
        let mut v = vec![0.0f32; 2 * 5 * 5 * 12];
        for i in 0..5 * 5 * 12 {
            let (z, y, x) = (i / 60, i / 12 % 5, i % 12);
            let fg = (1..4).contains(&z) && (1..4).contains(&y) && (1..11).contains(&x);
            v[i] = f32::from(!fg);
            v[300 + i] = f32::from(fg);
        }
        let t = Tensor::from_vec(v, &[1, 2, 5, 5, 12]).unwrap();
        assert_eq!(value(&cldice_metric(&t, &t, false).unwrap()), 1.0);
        assert_eq!(cldice_metric(&t, &t, true).unwrap().shape(), &[1, 2]);
        let flat = Tensor::zeros(&[1, 2, 5], DType::F32);
        assert!(cldice_metric(&flat, &flat, false).is_err());
        let soft = Tensor::full(&[1, 2, 4, 4], 0.5, DType::F32);
        assert!(cldice_metric(&soft, &soft, false).is_err());
    }
}
