//! The soft skeleton of clDice (Shit et al. 2021; MONAI's `soft_erode`, `soft_dilate`, `soft_open`,
//! `soft_skel`), by min/max pooling with stride 1, differentiable through the pooling.

use seg_tensor::MaxPoolOptions;
use seg_tensor::{Error, Result, Tensor};

/// Stride-1 max pooling over `(B, C, spatial...)` (2 or 3 spatial axes) with per-axis `kernel`
/// and `padding`.
fn max_pool(img: &Tensor, kernel: &[usize], padding: &[usize]) -> Result<Tensor> {
    let opts = MaxPoolOptions {
        kernel_size: kernel.to_vec(),
        stride: Some(vec![1]),
        padding: padding.to_vec(),
        dilation: vec![1],
        ceil_mode: false,
    };
    img.max_pool_with_indices(kernel.len(), &opts).map(|(y, _)| y)
}

/// The number of spatial axes of `img`, which must be 2 or 3.
fn spatial_rank(img: &Tensor) -> Result<usize> {
    match img.rank() {
        4 | 5 => Ok(img.rank() - 2),
        _ => Err(Error::ShapeMismatch {
            op: "soft_skel",
            expected: "(B, C, H, W) or (B, C, H, W, D)".into(),
            found: img.shape().to_vec(),
        }),
    }
}

/// Soft erosion: the minimum over the 3-voxel line along each spatial axis, then the minimum of
/// those (a cross-shaped minimum filter); `min_k = -max_pool(-img)` with kernel 3 along axis `k`.
pub fn soft_erode(img: &Tensor) -> Result<Tensor> {
    let rank = spatial_rank(img)?;
    let negated = img.neg()?;
    let mut eroded: Option<Tensor> = None;
    for axis in 0..rank {
        let mut kernel = vec![1; rank];
        let mut padding = vec![0; rank];
        kernel[axis] = 3;
        padding[axis] = 1;
        let line_min = max_pool(&negated, &kernel, &padding)?.neg()?;
        eroded = Some(match eroded {
            None => line_min,
            Some(e) => e.minimum(&line_min)?,
        });
    }
    Ok(eroded.expect("at least two spatial axes"))
}

/// Soft dilation: the maximum over the 3x3(x3) neighbourhood.
pub fn soft_dilate(img: &Tensor) -> Result<Tensor> {
    let rank = spatial_rank(img)?;
    max_pool(img, &vec![3; rank], &vec![1; rank])
}

/// Soft opening: `dilate(erode(img))`.
pub fn soft_open(img: &Tensor) -> Result<Tensor> {
    soft_dilate(&soft_erode(img)?)
}

/// The soft skeleton after `iter_` erosions: with `img_0 = img`, `img_{k+1} = erode(img_k)` and
/// `delta_k = relu(img_k - open(img_k))`, `skel = delta_0`, then `skel += relu(delta_k - skel delta_k)`
/// for `k = 1..=iter_`. `open(img_k) = dilate(img_{k+1})`, so each erosion is computed once (MONAI's
/// `soft_skel` computes it twice; the values and gradients are the same).
pub fn soft_skel(img: &Tensor, iter_: usize) -> Result<Tensor> {
    let mut img = img.clone();
    let mut eroded = soft_erode(&img)?;
    let mut skel = img.sub(&soft_dilate(&eroded)?)?.relu()?;
    for _ in 0..iter_ {
        img = eroded;
        eroded = soft_erode(&img)?;
        let delta = img.sub(&soft_dilate(&eroded)?)?.relu()?;
        skel = skel.add(&delta.sub(&skel.mul(&delta)?)?.relu()?)?;
    }
    Ok(skel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, logits};

    fn image(rows: &[&str]) -> Tensor {
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| f64::from(c == '#')))
            .collect();
        Tensor::from_vec(values, &[1, 1, rows.len(), rows[0].len()]).unwrap()
    }

    #[test]
    fn erosion_is_a_cross_shaped_minimum() {
        let img = image(&["#####", "#####", "#####", "###..", "#####"]);
        let expected = image(&["#####", "#####", "###..", "##...", "###.."]);
        // Outside the image counts as +inf, so borders erode only from inside.
        assert_eq!(soft_erode(&img).unwrap().to_vec_f64(), expected.to_vec_f64());
    }

    #[test]
    fn the_skeleton_of_a_thin_line_is_the_line() {
        let line = image(&[".....", "#####", "....."]);
        assert_eq!(soft_skel(&line, 3).unwrap().to_vec_f64(), line.to_vec_f64());
    }

    #[test]
    fn the_skeleton_of_a_bar_is_its_middle() {
        // As MONAI's soft_skel gives it.
        let bar = image(&[".......", ".#####.", ".#####.", ".#####.", "......."]);
        let middle = image(&[".......", ".......", "..###..", ".......", "......."]);
        assert_eq!(soft_skel(&bar, 2).unwrap().to_vec_f64(), middle.to_vec_f64());
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grad(
            |x, _| soft_skel(&x.sigmoid()?, 2)?.sum_all(),
            &logits(&[1, 2, 4, 5], 1),
            &logits(&[1], 0),
        );
        check_grad(
            |x, _| soft_skel(&x.sigmoid()?, 1),
            &logits(&[1, 1, 3, 4, 3], 2),
            &logits(&[1], 0),
        );
    }

    #[test]
    fn reusing_each_erosion_matches_monai_s_loop() {
        // MONAI's soft_skel, which erodes each image twice.
        let monai = |img: &Tensor, iter_: usize| -> Result<Tensor> {
            let mut img = img.clone();
            let mut skel = img.sub(&soft_open(&img)?)?.relu()?;
            for _ in 0..iter_ {
                img = soft_erode(&img)?;
                let delta = img.sub(&soft_open(&img)?)?.relu()?;
                skel = skel.add(&delta.sub(&skel.mul(&delta)?)?.relu()?)?;
            }
            Ok(skel)
        };
        let x = logits(&[2, 1, 6, 5, 4], 4).sigmoid().unwrap().requires_grad();
        let g = logits(&[2, 1, 6, 5, 4], 5);
        let (ours, theirs) = (soft_skel(&x, 3).unwrap(), monai(&x, 3).unwrap());
        assert_eq!(ours.to_vec_f64(), theirs.to_vec_f64());
        let (a, b) = (ours.backward_with(&g).unwrap(), theirs.backward_with(&g).unwrap());
        // The shared erosions add their gradients in another order: equal up to rounding.
        let (a, b) = (a.get(&x).unwrap().to_vec_f64(), b.get(&x).unwrap().to_vec_f64());
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs())));
    }

    #[test]
    fn other_ranks_are_errors() {
        let err = soft_skel(&logits(&[1, 2, 5], 3), 1).unwrap_err().to_string();
        assert!(err.contains("[1, 2, 5]"), "{err}");
    }
}
