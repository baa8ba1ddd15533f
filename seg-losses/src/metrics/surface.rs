//! Surface-distance metrics as MONAI's `HausdorffDistanceMetric` and `SurfaceDistanceMetric`.
//!
//! The surface of a mask is MONAI's `get_mask_edges`: the mask minus its binary erosion by the cross
//! (6-connected in 3D, 4-connected in 2D) structuring element, with the outside of the image taken as
//! background. The distance from an edge voxel of one mask to the other is the exact Euclidean distance
//! (with the voxel spacing) to the nearest edge voxel of the other ([`super::edt`]), computed on the
//! bounding box of the two masks grown by one voxel (the crop MONAI makes, which changes no distance).
//!
//! Empty masks follow MONAI's `get_surface_distance`: towards an empty edge set every distance is
//! `+inf`, and from an empty one the list is the other side's edges, all `+inf`; both empty gives no
//! distances, and a statistic of no distances is NaN.

use rayon::prelude::*;
use seg_tensor::{Error, Result, Tensor};

use super::edt::squared_edt_at;
use super::ClassMasks;

/// The edge voxels of `mask` (row-major over `shape`): voxels of the mask with a cross neighbour
/// outside it or outside the image, `mask and not erode(mask)`.
pub fn mask_edges(mask: &[bool], shape: &[usize]) -> Vec<bool> {
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let mut out = vec![false; mask.len()];
    if mask.is_empty() {
        return out;
    }
    let plane = mask.len() / shape[0];
    out.par_chunks_mut(plane).enumerate().for_each(|(i0, edges)| {
        let mut coord = vec![0usize; rank];
        coord[0] = i0;
        for (j, edge) in edges.iter_mut().enumerate() {
            let i = i0 * plane + j;
            *edge = mask[i]
                && (0..rank).any(|a| {
                    coord[a] == 0 || coord[a] + 1 == shape[a] || !mask[i - strides[a]] || !mask[i + strides[a]]
                });
            for a in (1..rank).rev() {
                coord[a] += 1;
                if coord[a] < shape[a] {
                    break;
                }
                coord[a] = 0;
            }
        }
    });
    out
}

/// The box `[lo, hi)` per axis around the `true` voxels of `a` or `b`, grown by one voxel and clipped
/// to the image; `None` when both are empty.
fn union_box(a: &[bool], b: &[bool], shape: &[usize]) -> Option<(Vec<usize>, Vec<usize>)> {
    let rank = shape.len();
    let n = shape[rank - 1].max(1);
    let empty = || (shape.to_vec(), vec![0usize; rank]);
    // One box per row along the last axis that holds a `true`, merged in parallel.
    let (lo, hi) = a
        .par_chunks(n)
        .zip(b.par_chunks(n))
        .enumerate()
        .filter_map(|(row, (a, b))| {
            let set = |i: &usize| a[*i] || b[*i];
            let (first, last) = ((0..n).find(set)?, (0..n).rfind(set)?);
            let (mut lo, mut hi) = (vec![first; rank], vec![last + 1; rank]);
            let mut r = row;
            for d in (0..rank - 1).rev() {
                lo[d] = r % shape[d];
                hi[d] = lo[d] + 1;
                r /= shape[d];
            }
            Some((lo, hi))
        })
        .reduce(empty, |(l1, h1), (l2, h2)| {
            let lo = l1.iter().zip(&l2).map(|(x, y)| *x.min(y)).collect();
            let hi = h1.iter().zip(&h2).map(|(x, y)| *x.max(y)).collect();
            (lo, hi)
        });
    (hi[0] > 0).then(|| {
        let lo = lo.iter().map(|l| l.saturating_sub(1)).collect();
        let hi = hi.iter().zip(shape).map(|(h, s)| (h + 1).min(*s)).collect();
        (lo, hi)
    })
}

/// The voxels of `mask` inside the box `[lo, hi)`, row-major.
fn crop(mask: &[bool], shape: &[usize], lo: &[usize], hi: &[usize]) -> Vec<bool> {
    let rank = shape.len();
    let dims: Vec<usize> = hi.iter().zip(lo).map(|(h, l)| h - l).collect();
    let mut out = Vec::with_capacity(dims.iter().product());
    let mut coord = lo.to_vec();
    loop {
        let start = coord.iter().zip(shape).fold(0, |acc, (c, s)| acc * s + c);
        out.extend_from_slice(&mask[start..start + dims[rank - 1]]);
        let mut a = rank - 1;
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            coord[a] += 1;
            if coord[a] < hi[a] {
                break;
            }
            coord[a] = lo[a];
        }
    }
}

/// MONAI's `get_surface_distance(from, to)` over edge masks: for every `from` edge voxel, the
/// distance to the nearest `to` edge voxel (`+inf` for each when `to` is empty; `+inf` for each `to`
/// voxel when only `from` is empty).
fn directed(from: &[bool], to: &[bool], shape: &[usize], spacing: &[f64]) -> Result<Vec<f64>> {
    let count = |m: &[bool]| m.iter().filter(|&&v| v).count();
    if !to.contains(&true) {
        return Ok(vec![f64::INFINITY; count(from)]);
    }
    if !from.contains(&true) {
        return Ok(vec![f64::INFINITY; count(to)]);
    }
    let mut d = squared_edt_at(to, shape, spacing, from)?;
    d.iter_mut().for_each(|v| *v = v.sqrt());
    Ok(d)
}

/// The surface distances between a prediction and a ground truth mask (row-major over `shape`, with
/// per-axis `spacing`): prediction edges to truth edges, and truth edges to prediction edges, with
/// MONAI's empty-mask conventions (see the module doc).
pub fn surface_distances(
    pred: &[bool],
    truth: &[bool],
    shape: &[usize],
    spacing: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let Some((lo, hi)) = union_box(pred, truth, shape) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let dims: Vec<usize> = hi.iter().zip(&lo).map(|(h, l)| h - l).collect();
    let pred = mask_edges(&crop(pred, shape, &lo, &hi), &dims);
    let truth = mask_edges(&crop(truth, shape, &lo, &hi), &dims);
    Ok((
        directed(&pred, &truth, &dims, spacing)?,
        directed(&truth, &pred, &dims, spacing)?,
    ))
}

/// The `q`-th percentile (`0 <= q <= 100`) of `values` with linear interpolation, as `torch.quantile`
/// (and numpy's default): with the values sorted, position `r = q / 100 (n - 1)` interpolates between
/// ranks `floor(r)` and `ceil(r)` by `torch.lerp` (so `+inf` neighbours give NaN, as PyTorch). NaN for
/// no values or any NaN.
pub fn percentile(values: &[f64], q: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&q) {
        return Err(Error::invalid(
            "percentile",
            format!("expected a percentile between 0 and 100, found {q}"),
        ));
    }
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return Ok(f64::NAN);
    }
    let mut v = values.to_vec();
    let rank = q / 100.0 * (v.len() - 1) as f64;
    let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
    let (_, &mut a, rest) = v.select_nth_unstable_by(below, f64::total_cmp);
    let b = if above == below {
        a
    } else {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let w = rank - below as f64;
    Ok(if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    })
}

/// The largest of `values`, NaN when any is NaN (as `torch.max` of a stack).
fn max_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .map(|v| if v.is_nan() { None } else { Some(v) })
        .try_fold(f64::NEG_INFINITY, |m, v| v.map(|v| m.max(v)))
        .unwrap_or(f64::NAN)
}

/// The Hausdorff statistic of one direction's distances: their `percentile`, or their maximum when
/// it is `None` or 0 (MONAI's `if not percentile`); NaN for no distances.
fn hausdorff_of(d: &[f64], pct: Option<f64>) -> Result<f64> {
    match pct {
        Some(q) if q != 0.0 => percentile(d, q),
        _ if d.is_empty() => Ok(f64::NAN),
        _ => Ok(max_nan(d.iter().copied())),
    }
}

/// The per-axis spacing of `rank` spatial axes: 1 when `None`, one value for all axes, or one per axis.
fn spacing_for(spacing: Option<&[f64]>, rank: usize, op: &'static str) -> Result<Vec<f64>> {
    match spacing {
        None => Ok(vec![1.0; rank]),
        Some([s]) => Ok(vec![*s; rank]),
        Some(s) if s.len() == rank => Ok(s.to_vec()),
        Some(s) => Err(Error::invalid(
            op,
            format!(
                "expected 1 or {rank} spacings (one per spatial axis), found {}",
                s.len()
            ),
        )),
    }
}

/// Hausdorff distance per batch item and class, as MONAI's `HausdorffDistanceMetric`: the maximum
/// over both directions (only prediction to truth when `directed`) of the `percentile` of that
/// direction's surface distances (the maximum when `percentile` is `None` or 0). `pred` and `target`
/// are binarized one-hot `(B, C, spatial...)`; `spacing` is the voxel size (one value or one per
/// spatial axis, 1 when `None`). An empty prediction or truth gives `+inf` (NaN with a percentile:
/// interpolating infinities), both empty NaN.
pub fn hausdorff_distance(
    pred: &Tensor,
    target: &Tensor,
    include_background: bool,
    percentile: Option<f64>,
    directed: bool,
    spacing: Option<&[f64]>,
) -> Result<Tensor> {
    let masks = ClassMasks::new("hausdorff_distance", pred, target, include_background)?;
    let spacing = spacing_for(spacing, masks.spatial.len(), "hausdorff_distance")?;
    masks.map(|(p, t)| {
        let (pg, gp) = surface_distances(p, t, &masks.spatial, &spacing)?;
        let forward = hausdorff_of(&pg, percentile)?;
        Ok(if directed {
            forward
        } else {
            max_nan([forward, hausdorff_of(&gp, percentile)?])
        })
    })
}

/// Average surface distance per batch item and class, as MONAI's `SurfaceDistanceMetric`: the mean of
/// the prediction-to-truth surface distances, or of both directions' together when `symmetric`; `+inf`
/// when one mask is empty, NaN when both are. Arguments as [`hausdorff_distance`].
pub fn average_surface_distance(
    pred: &Tensor,
    target: &Tensor,
    include_background: bool,
    symmetric: bool,
    spacing: Option<&[f64]>,
) -> Result<Tensor> {
    let masks = ClassMasks::new("average_surface_distance", pred, target, include_background)?;
    let spacing = spacing_for(spacing, masks.spatial.len(), "average_surface_distance")?;
    masks.map(|(p, t)| {
        let (pg, gp) = surface_distances(p, t, &masks.spatial, &spacing)?;
        Ok(mean_of(if symmetric { [pg, gp].concat() } else { pg }))
    })
}

fn mean_of(d: Vec<f64>) -> f64 {
    if d.is_empty() {
        f64::NAN
    } else {
        d.iter().sum::<f64>() / d.len() as f64
    }
}

/// Hausdorff distance, its 95th percentile and the symmetric average surface distance, each `(B, C')`.
#[derive(Debug, Clone)]
pub struct SurfaceMetrics {
    pub hd: Tensor,
    pub hd95: Tensor,
    pub assd: Tensor,
}

/// [`hausdorff_distance`] (undirected, with and without `percentile` 95) and the symmetric
/// [`average_surface_distance`], from one computation of the surface distances per class.
pub fn surface_metrics(
    pred: &Tensor,
    target: &Tensor,
    include_background: bool,
    spacing: Option<&[f64]>,
) -> Result<SurfaceMetrics> {
    let masks = ClassMasks::new("surface_metrics", pred, target, include_background)?;
    let spacing = spacing_for(spacing, masks.spatial.len(), "surface_metrics")?;
    let rows = masks
        .pairs()
        .map(|(p, t)| {
            let (pg, gp) = surface_distances(p, t, &masks.spatial, &spacing)?;
            let hd = max_nan([hausdorff_of(&pg, None)?, hausdorff_of(&gp, None)?]);
            let hd95 = max_nan([hausdorff_of(&pg, Some(95.0))?, hausdorff_of(&gp, Some(95.0))?]);
            Ok([hd, hd95, mean_of([pg, gp].concat())])
        })
        .collect::<Result<Vec<_>>>()?;
    let column = |k: usize| masks.tensor(rows.iter().map(|r| r[k]).collect());
    Ok(SurfaceMetrics {
        hd: column(0)?,
        hd95: column(1)?,
        assd: column(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_as_torch_quantile() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.0).unwrap(), 1.0);
        assert_eq!(percentile(&v, 100.0).unwrap(), 4.0);
        assert!((percentile(&v, 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert!((percentile(&v, 10.0).unwrap() - 1.3).abs() < 1e-12);
        assert!(percentile(&[1.0, f64::INFINITY], 95.0).unwrap().is_nan());
        assert!(percentile(&[], 95.0).unwrap().is_nan());
        assert!(percentile(&v, 101.0).is_err());
    }

    #[test]
    fn edges_of_a_cube_are_its_shell() {
        let shape = [5, 5, 5];
        let mask: Vec<bool> = (0..125)
            .map(|i| (1..4).contains(&(i / 25)) && i % 5 > 0 && i % 5 < 4 && (i / 5) % 5 > 0 && (i / 5) % 5 < 4)
            .collect();
        let edges = mask_edges(&mask, &shape);
        assert_eq!(edges.iter().filter(|&&e| e).count(), 26);
        assert!(!edges[2 * 25 + 2 * 5 + 2]);
        // At the image border every mask voxel is an edge.
        assert!(mask_edges(&[true; 8], &[2, 2, 2]).iter().all(|&e| e));
    }

    /// (1, 2, 1, 6) one-hot masks from foreground rows.
    fn row(fg: [f32; 6]) -> Tensor {
        let mut v: Vec<f32> = fg.iter().map(|x| 1.0 - x).collect();
        v.extend(fg);
        Tensor::from_vec(v, &[1, 2, 1, 6]).unwrap()
    }

    #[test]
    fn distances_along_a_line_with_spacing() {
        let p = row([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let g = row([0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
        let hd = hausdorff_distance(&p, &g, false, None, false, Some(&[1.0, 0.5])).unwrap();
        assert_eq!(hd.to_vec_f64(), vec![2.0]);
        let assd = average_surface_distance(&p, &g, false, true, Some(&[2.0])).unwrap();
        assert_eq!(assd.to_vec_f64(), vec![(8.0 + 6.0 + 6.0 + 8.0) / 4.0]);
        let all = surface_metrics(&p, &g, false, None).unwrap();
        assert_eq!(all.hd.to_vec_f64(), vec![4.0]);
        assert!((all.hd95.to_vec_f64()[0] - 3.95).abs() < 1e-6);
    }

    #[test]
    fn empty_mask_conventions() {
        let (empty, some) = (row([0.0; 6]), row([0.0, 1.0, 1.0, 0.0, 0.0, 0.0]));
        for (p, g) in [(&empty, &some), (&some, &empty)] {
            let m = surface_metrics(p, g, false, None).unwrap();
            assert_eq!(m.hd.to_vec_f64(), vec![f64::INFINITY]);
            assert!(m.hd95.to_vec_f64()[0].is_nan());
            assert_eq!(m.assd.to_vec_f64(), vec![f64::INFINITY]);
        }
        let m = surface_metrics(&empty, &empty, false, None).unwrap();
        assert!([m.hd, m.hd95, m.assd].iter().all(|t| t.to_vec_f64()[0].is_nan()));
        assert!(surface_metrics(&some, &some, false, Some(&[1.0, 1.0, 1.0])).is_err());
    }
}
