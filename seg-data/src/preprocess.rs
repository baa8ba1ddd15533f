//! Preprocessing as nnU-Net does it: crop to the nonzero bounding box, resample to a target spacing,
//! z-score normalise on the foreground.

use std::ops::Range;

use seg_tensor::{Error, Result, Tensor};

use crate::interp::{label_majority, trilinear};
use crate::nifti::Affine;
use crate::volume::{dims3, image_values, label_values, same_dims};

/// A box of voxels: one index range per tensor axis `(D, H, W)`.
pub type BoundingBox = [Range<usize>; 3];

/// The smallest box holding every nonzero voxel of `image` (the whole volume when none is nonzero, as
/// nnU-Net keeps an image without foreground whole).
pub fn nonzero_bbox(image: &Tensor) -> Result<BoundingBox> {
    let (v, dims) = image_values(image, "nonzero_bbox")?;
    let mut lo = dims;
    let mut hi = [0usize; 3];
    for (i, _) in v.iter().enumerate().filter(|(_, &x)| x != 0.0) {
        let at = [i / (dims[1] * dims[2]), (i / dims[2]) % dims[1], i % dims[2]];
        for a in 0..3 {
            lo[a] = lo[a].min(at[a]);
            hi[a] = hi[a].max(at[a] + 1);
        }
    }
    Ok(if lo[0] == dims[0] {
        dims.map(|n| 0..n)
    } else {
        std::array::from_fn(|a| lo[a]..hi[a])
    })
}

/// The part of a rank-3 tensor inside `bbox`, as a new dense tensor.
pub fn crop(t: &Tensor, bbox: &BoundingBox) -> Result<Tensor> {
    let dims = dims3(t, "crop")?;
    let mut out = t.clone();
    for (a, r) in bbox.iter().enumerate() {
        if r.start >= r.end || r.end > dims[a] {
            return Err(Error::invalid(
                "crop",
                format!("axis {a} of size {} cannot hold the range {r:?}", dims[a]),
            ));
        }
        out = out.narrow(a as isize, r.start, r.len())?;
    }
    out.contiguous()
}

/// An image and its label map cropped to the image's [`nonzero_bbox`], and that box.
pub fn crop_to_nonzero(image: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, BoundingBox)> {
    same_dims(
        "crop_to_nonzero",
        dims3(image, "crop_to_nonzero")?,
        dims3(labels, "crop_to_nonzero")?,
    )?;
    let bbox = nonzero_bbox(image)?;
    Ok((crop(image, &bbox)?, crop(labels, &bbox)?, bbox))
}

/// The affine of a crop starting at `bbox`: `A * translate(i0, j0, k0)` with `(i0, j0, k0)` the box's
/// start in file order `(x, y, z)`.
pub fn cropped_affine(affine: &Affine, bbox: &BoundingBox) -> Affine {
    let start = [bbox[2].start, bbox[1].start, bbox[0].start].map(|s| s as f64);
    let mut out = *affine;
    for (i, row) in out.iter_mut().enumerate().take(3) {
        row[3] = affine[i][3] + (0..3).map(|j| affine[i][j] * start[j]).sum::<f64>();
    }
    out
}

/// Z-score normalisation (nnU-Net's `ZScoreNormalization` with `use_mask_for_norm`): inside the foreground
/// `x' = (x - mean) / max(std, 1e-8)` with the mean and (population) standard deviation of the foreground,
/// and 0 outside it. The foreground is `mask != 0` (a u8 tensor of the image's shape), or the nonzero
/// voxels of the image when `mask` is `None` (then the same as MONAI's `NormalizeIntensity(nonzero=True)`,
/// checked to 3e-7).
pub fn zscore_foreground(image: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (v, dims) = image_values(image, "zscore_foreground")?;
    let inside: Vec<bool> = match mask {
        Some(m) => {
            let (m, m_dims) = label_values(m, "zscore_foreground")?;
            same_dims("zscore_foreground", dims, m_dims)?;
            m.iter().map(|&x| x != 0).collect()
        }
        None => v.iter().map(|&x| x != 0.0).collect(),
    };
    let fg = || v.iter().zip(&inside).filter(|(_, &m)| m).map(|(&x, _)| x as f64);
    let n = fg().count();
    if n == 0 {
        return Err(Error::invalid(
            "zscore_foreground",
            "expected a nonempty foreground, found no voxel in it",
        ));
    }
    let mean = fg().sum::<f64>() / n as f64;
    let std = (fg().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64)
        .sqrt()
        .max(1e-8);
    let out = v
        .iter()
        .zip(&inside)
        .map(|(&x, &m)| if m { ((x as f64 - mean) / std) as f32 } else { 0.0 });
    Tensor::from_vec(out.collect::<Vec<_>>(), &dims)
}

/// The shape of a volume of shape `dims` and spacing `from` resampled to spacing `to` (nnU-Net:
/// `round(dims * from / to)`, at least 1).
pub fn resampled_shape(dims: [usize; 3], from: [f64; 3], to: [f64; 3]) -> Result<[usize; 3]> {
    if from.iter().chain(&to).any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::invalid(
            "resample",
            format!("expected positive spacings, found {from:?} -> {to:?}"),
        ));
    }
    Ok(std::array::from_fn(|a| {
        ((dims[a] as f64 * from[a] / to[a]).round() as usize).max(1)
    }))
}

/// Source coordinates of the output voxels along one axis of `n` -> `m` voxels: voxel centres aligned,
/// `src = (o + 1/2) n / m - 1/2` (PyTorch's `align_corners=False`), clamped to `[0, n - 1]`.
fn source_coords(n: usize, m: usize) -> Vec<f64> {
    (0..m)
        .map(|o| ((o as f64 + 0.5) * n as f64 / m as f64 - 0.5).clamp(0.0, (n - 1) as f64))
        .collect()
}

/// Resamples an f32 image of spacing `from` to spacing `to` (both `(D, H, W)`), trilinear: [`resize_image`]
/// to [`resampled_shape`].
pub fn resample_image(image: &Tensor, from: [f64; 3], to: [f64; 3]) -> Result<Tensor> {
    resize_image(image, resampled_shape(dims3(image, "resample_image")?, from, to)?)
}

/// Resamples a u8 label map of spacing `from` to spacing `to`: [`resize_labels`] to [`resampled_shape`].
pub fn resample_labels(labels: &Tensor, from: [f64; 3], to: [f64; 3]) -> Result<Tensor> {
    resize_labels(labels, resampled_shape(dims3(labels, "resample_labels")?, from, to)?)
}

/// An f32 image resized to `shape`, trilinear, voxel centres aligned: the same values as PyTorch's
/// `F.interpolate(x, size=shape, mode="trilinear", align_corners=False)` (checked to 1e-6).
pub fn resize_image(image: &Tensor, shape: [usize; 3]) -> Result<Tensor> {
    let (v, dims) = image_values(image, "resize_image")?;
    resize(dims, shape, |p| trilinear(&v, dims, p))
}

/// A u8 label map resized to `shape` as nnU-Net resizes segmentations: each label's indicator
/// interpolated trilinearly at the voxel centres of [`resize_image`], the largest share winning (ties to
/// the smaller label). On the same shape it is the identity.
pub fn resize_labels(labels: &Tensor, shape: [usize; 3]) -> Result<Tensor> {
    let (v, dims) = label_values(labels, "resize_labels")?;
    resize(dims, shape, |p| label_majority(&v, dims, p))
}

/// Samples an output grid of shape `out` at [`source_coords`] with `sample`.
fn resize<T: seg_tensor::Element>(dims: [usize; 3], out: [usize; 3], sample: impl Fn([f64; 3]) -> T) -> Result<Tensor> {
    if out.contains(&0) || dims.contains(&0) {
        return Err(Error::invalid(
            "resize",
            format!("expected nonempty shapes, found {dims:?} -> {out:?}"),
        ));
    }
    let [cz, cy, cx] = std::array::from_fn(|a| source_coords(dims[a], out[a]));
    let mut data = Vec::with_capacity(out.iter().product());
    for &z in &cz {
        for &y in &cy {
            data.extend(cx.iter().map(|&x| sample([z, y, x])));
        }
    }
    Tensor::from_vec(data, &out)
}

/// The inverse of [`crop`]: a volume of shape `full` (any dtype), zero outside `bbox`, `t` inside it.
pub fn uncrop(t: &Tensor, bbox: &BoundingBox, full: [usize; 3]) -> Result<Tensor> {
    let dims = dims3(t, "uncrop")?;
    let fits = (0..3).all(|a| bbox[a].len() == dims[a] && bbox[a].end <= full[a]);
    if !fits {
        return Err(Error::invalid(
            "uncrop",
            format!("a volume of shape {dims:?} at {bbox:?} inside {full:?}"),
        ));
    }
    seg_tensor::with_element!(t.dtype(), T => {
        let v = t.values::<T>()?;
        let mut out = vec![<T as seg_tensor::Element>::from_f64(0.0); full.iter().product()];
        for z in 0..dims[0] {
            for y in 0..dims[1] {
                let src = (z * dims[1] + y) * dims[2];
                let dst = ((bbox[0].start + z) * full[1] + bbox[1].start + y) * full[2] + bbox[2].start;
                out[dst..dst + dims[2]].copy_from_slice(&v[src..src + dims[2]]);
            }
        }
        Tensor::from_vec(out, &full)
    })
}

/// The affine of a volume resampled from spacing `from` to `to` by [`resample_image`]: each column scaled
/// by its axis' new-to-old voxel size, the origin moved to the first new voxel centre.
pub fn resampled_affine(affine: &Affine, dims: [usize; 3], from: [f64; 3], to: [f64; 3]) -> Result<Affine> {
    let out = resampled_shape(dims, from, to)?;
    // Tensor axis a is file axis 2 - a; scale = old voxels per new voxel.
    let scale: [f64; 3] = std::array::from_fn(|j| dims[2 - j] as f64 / out[2 - j] as f64);
    let mut a = *affine;
    for i in 0..3 {
        a[i][3] = affine[i][3] + (0..3).map(|j| affine[i][j] * (0.5 * scale[j] - 0.5)).sum::<f64>();
        (0..3).for_each(|j| a[i][j] = affine[i][j] * scale[j]);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(values: Vec<f32>, dims: [usize; 3]) -> Tensor {
        Tensor::from_vec(values, &dims).unwrap()
    }

    #[test]
    fn bbox_and_crop_of_a_small_volume() {
        let mut v = vec![0f32; 4 * 5 * 6];
        v[(5 + 2) * 6 + 3] = 1.0; // (1, 2, 3)
        v[(2 * 5 + 3) * 6 + 1] = -2.0;
        let image = vol(v, [4, 5, 6]);
        let labels = Tensor::from_vec((0..120).map(|i| (i % 3) as u8).collect::<Vec<_>>(), &[4, 5, 6]).unwrap();
        let (ci, cl, bbox) = crop_to_nonzero(&image, &labels).unwrap();
        assert_eq!(bbox, [1..3, 2..4, 1..4]);
        assert_eq!(ci.shape(), &[2, 2, 3]);
        assert_eq!(
            ci.to_vec::<f32>().unwrap(),
            vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0]
        );
        assert_eq!(cl.to_vec::<u8>().unwrap()[0], ((5 + 2) * 6 + 1) as u8 % 3);
        assert_eq!(nonzero_bbox(&vol(vec![0.0; 8], [2, 2, 2])).unwrap(), [0..2, 0..2, 0..2]);
        assert!(crop(&image, &[0..5, 0..1, 0..1])
            .unwrap_err()
            .to_string()
            .contains("axis 0 of size 4"));
        let err = crop_to_nonzero(&image, &Tensor::zeros(&[4, 5, 5], seg_tensor::DType::U8)).unwrap_err();
        assert!(err.to_string().contains("[4, 5, 5]"));
        let a = [
            [2.0, 0.0, 0.0, 10.0],
            [0.0, 3.0, 0.0, 20.0],
            [0.0, 0.0, 4.0, 30.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let c = cropped_affine(&a, &bbox);
        assert_eq!([c[0][3], c[1][3], c[2][3]], [12.0, 26.0, 34.0]);
    }

    #[test]
    fn zscore_on_the_foreground() {
        let image = vol(vec![0.0, 2.0, 4.0, 6.0, 0.0, 8.0, 0.0, 0.0], [2, 2, 2]);
        let z = zscore_foreground(&image, None).unwrap().to_vec::<f32>().unwrap();
        let fg: Vec<f32> = [1, 2, 3, 5].iter().map(|&i| z[i]).collect();
        let mean = fg.iter().sum::<f32>() / 4.0;
        let var = fg.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{mean} {var}");
        assert_eq!([z[0], z[4], z[6], z[7]], [0.0; 4]);
        let mask = Tensor::from_vec(vec![1u8, 1, 0, 0, 0, 0, 0, 0], &[2, 2, 2]).unwrap();
        let z = zscore_foreground(&image, Some(&mask)).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(z, vec![-1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(zscore_foreground(&vol(vec![0.0; 8], [2, 2, 2]), None).is_err());
    }

    #[test]
    fn resampling_shapes_values_and_affine() {
        let dims = [2, 3, 4];
        let ramp: Vec<f32> = (0..24).map(|i| (i % 4) as f32).collect();
        // Same spacing: the identity.
        let same = resample_image(&vol(ramp.clone(), dims), [1.0; 3], [1.0; 3]).unwrap();
        assert_eq!(same.to_vec::<f32>().unwrap(), ramp);
        // Halving the spacing along W doubles it; a linear ramp stays linear between the clamped ends.
        let fine = resample_image(&vol(ramp, dims), [1.0; 3], [1.0, 1.0, 0.5]).unwrap();
        assert_eq!(fine.shape(), &[2, 3, 8]);
        let row: Vec<f32> = fine.to_vec::<f32>().unwrap()[..8].to_vec();
        assert_eq!(row, vec![0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        let labels = Tensor::from_vec((0..24).map(|i| (i % 4) as u8).collect::<Vec<_>>(), &dims).unwrap();
        let coarse = resample_labels(&labels, [1.0; 3], [1.0, 1.0, 2.0]).unwrap();
        assert_eq!(coarse.shape(), &[2, 3, 2]);
        // Rows 0 1 2 3 sampled at x = 0.5 and 2.5: even shares, the smaller label wins.
        assert_eq!(coarse.to_vec::<u8>().unwrap()[..2], [0, 2]);
        let same = resize_labels(&labels, [2, 3, 4]).unwrap();
        assert_eq!(same.to_vec::<u8>().unwrap(), labels.to_vec::<u8>().unwrap());
        assert!(resample_image(&vol(vec![0.0; 24], dims), [1.0; 3], [0.0, 1.0, 1.0]).is_err());
        assert!(resize_labels(&labels, [0, 1, 1]).is_err());
        assert!(resize_image(&Tensor::zeros(&[0, 2, 2], seg_tensor::DType::F32), [1, 1, 1]).is_err());
        let bbox = [1..2, 0..2, 1..4];
        let values: Vec<f32> = (0..24).map(|i| i as f32 + 1.0).collect();
        let back = uncrop(&crop(&vol(values.clone(), dims), &bbox).unwrap(), &bbox, dims).unwrap();
        for (i, &b) in back.to_vec::<f32>().unwrap().iter().enumerate() {
            let at = [i / 12, (i / 4) % 3, i % 4];
            let inside = (0..3).all(|a| bbox[a].contains(&at[a]));
            assert_eq!(b, if inside { values[i] } else { 0.0 }, "{at:?}");
        }
        assert!(uncrop(&labels, &[0..2, 0..3, 0..4], [2, 3, 3]).is_err());
        // The centre of new voxel 0 along x: old coordinate 0.5 at spacing 2.
        let a = [
            [2.0, 0.0, 0.0, 10.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let r = resampled_affine(&a, dims, [1.0, 1.0, 2.0], [1.0, 1.0, 4.0]).unwrap();
        assert_eq!((r[0][0], r[0][3]), (4.0, 11.0));
    }
}
