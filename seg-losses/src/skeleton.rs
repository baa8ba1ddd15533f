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
/// for `k = 1..=iter_`.
pub fn soft_skel(img: &Tensor, iter_: usize) -> Result<Tensor> {
    let mut img = img.clone();
    let mut skel = img.sub(&soft_open(&img)?)?.relu()?;
    for _ in 0..iter_ {
        img = soft_erode(&img)?;
        let delta = img.sub(&soft_open(&img)?)?.relu()?;
        skel = skel.add(&delta.sub(&skel.mul(&delta)?)?.relu()?)?;
    }
    Ok(skel)
}
