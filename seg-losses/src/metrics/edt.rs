//! Exact Euclidean distance transform with anisotropic spacing, in linear time.
//!
//! For a set of feature points `F` on an N-D grid with spacing `s`, the transform is
//!
//! `D(x) = min_{p in F} sqrt(sum_a (s_a (x_a - p_a))^2)` (`+inf` when `F` is empty).
//!
//! The squared distance separates over axes, so it is computed one axis at a time (Felzenszwalb and
//! Huttenlocher, "Distance Transforms of Sampled Functions", 2012): along a line, with the previous
//! axes' result `f`, `d(q) = min_p (s (q - p))^2 + f(p)`, the lower envelope of the parabolas rooted
//! at the finite `f(p)`. Two parabolas rooted at `p < q` cross at
//! `z = ((f(q) + s^2 q^2) - (f(p) + s^2 p^2)) / (2 s^2 (q - p))`; one pass builds the envelope, one
//! reads it off, so each line costs O(n); the first axis's pass, on the binary features themselves,
//! is a forward and a backward scan for the nearest feature. Lines run in parallel with rayon: a pass
//! transforms the contiguous last axis, then rotates the axes (the last becomes the first) so that
//! the next axis is contiguous; after one pass per axis the layout is the original one.
//! [`squared_edt_at`] skips the last rotation and reads the few points it is asked for.

use rayon::prelude::*;
use seg_tensor::{Error, Result};

/// Squared Euclidean distance (with `spacing`) from every grid point to the nearest `true` of
/// `features` (row-major over `shape`); `+inf` everywhere when there is none.
pub fn squared_edt(features: &[bool], shape: &[usize], spacing: &[f64]) -> Result<Vec<f64>> {
    let data = axis_passes(features, shape, spacing)?;
    let mut out = vec![0.0; data.len()];
    if !out.is_empty() {
        rotate_last_to_first(&data, &mut out, shape[0]);
    }
    Ok(out)
}

/// [`squared_edt`] read only at the points where `at` (row-major over `shape`) is `true`, in
/// row-major order: the same values, without the transform's last rotation of the whole grid.
pub fn squared_edt_at(features: &[bool], shape: &[usize], spacing: &[f64], at: &[bool]) -> Result<Vec<f64>> {
    if at.len() != features.len() {
        return Err(Error::invalid(
            "edt",
            format!("expected {} query points, found {}", features.len(), at.len()),
        ));
    }
    let data = axis_passes(features, shape, spacing)?;
    let (d0, plane) = (shape[0], at.len() / shape[0].max(1));
    // After the passes the grid is laid out as (shape[1..], shape[0]).
    Ok(at
        .iter()
        .enumerate()
        .filter(|(_, &a)| a)
        .map(|(i, _)| data[(i % plane) * d0 + i / plane])
        .collect())
}

/// One pass per axis, last to first, each on the contiguous axis and followed by a rotation (the
/// last axis becomes the first) except after the final one: the squared distances laid out as
/// `(shape[1..], shape[0])`.
fn axis_passes(features: &[bool], shape: &[usize], spacing: &[f64]) -> Result<Vec<f64>> {
    check_grid(features.len(), shape, spacing)?;
    let rank = shape.len();
    let mut data = vec![0.0; features.len()];
    if data.is_empty() {
        return Ok(data);
    }
    let mut scratch = vec![0.0; data.len()];
    for axis in (0..rank).rev() {
        let n = shape[axis];
        let w2 = spacing[axis] * spacing[axis];
        if axis + 1 == rank {
            // The last axis straight from the features: the distance to the nearest one on the line.
            data.par_chunks_mut(n)
                .zip(features.par_chunks(n))
                .for_each(|(line, features)| nearest_on_line(features, line, w2));
        } else {
            data.par_chunks_mut(n)
                .for_each_init(|| Envelope::with_capacity(n), |env, line| env.transform(line, w2));
        }
        if axis > 0 {
            rotate_last_to_first(&data, &mut scratch, n);
            std::mem::swap(&mut data, &mut scratch);
        }
    }
    Ok(data)
}

/// `out[q] = w2 (q - p)^2` for the nearest `p` with `features[p]` (`+inf` when there is none): a
/// forward scan for the nearest feature at or before `q`, a backward one for the nearest after it.
fn nearest_on_line(features: &[bool], out: &mut [f64], w2: f64) {
    let mut last = None;
    for (q, (&f, o)) in features.iter().zip(out.iter_mut()).enumerate() {
        if f {
            last = Some(q);
        }
        *o = last.map_or(f64::INFINITY, |p| (q - p) as f64);
    }
    let mut next = None;
    for (q, (&f, o)) in features.iter().zip(out.iter_mut()).enumerate().rev() {
        if f {
            next = Some(q);
        }
        let d = next.map_or(*o, |p| o.min((p - q) as f64));
        *o = w2 * d * d;
    }
}

/// Euclidean distance: the square root of [`squared_edt`].
pub fn edt(features: &[bool], shape: &[usize], spacing: &[f64]) -> Result<Vec<f64>> {
    let mut d = squared_edt(features, shape, spacing)?;
    d.par_iter_mut().for_each(|v| *v = v.sqrt());
    Ok(d)
}

fn check_grid(len: usize, shape: &[usize], spacing: &[f64]) -> Result<()> {
    if shape.is_empty() || shape.iter().product::<usize>() != len {
        return Err(Error::invalid(
            "edt",
            format!("expected a grid of rank >= 1 with {len} points, found shape {shape:?}"),
        ));
    }
    if spacing.len() != shape.len() || spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::invalid(
            "edt",
            format!("expected {} positive finite spacings, found {spacing:?}", shape.len()),
        ));
    }
    Ok(())
}

/// `dst = src` viewed as a `(m, n)` matrix, transposed to `(n, m)`: the last axis becomes the first.
fn rotate_last_to_first(src: &[f64], dst: &mut [f64], n: usize) {
    const ROWS: usize = 16;
    let m = src.len() / n;
    dst.par_chunks_mut(ROWS * m).enumerate().for_each(|(block, out)| {
        let r0 = block * ROWS;
        let rows = out.len() / m;
        for i in 0..m {
            let line = &src[i * n + r0..][..rows];
            for (r, &v) in line.iter().enumerate() {
                out[r * m + i] = v;
            }
        }
    });
}

/// The lower envelope of parabolas along one line: roots `v` and the boundaries `z` between them.
struct Envelope {
    v: Vec<usize>,
    z: Vec<f64>,
    f: Vec<f64>,
    g: Vec<f64>,
}

impl Envelope {
    fn with_capacity(n: usize) -> Self {
        Envelope {
            v: Vec::with_capacity(n),
            z: Vec::with_capacity(n + 1),
            f: Vec::with_capacity(n),
            g: Vec::with_capacity(n),
        }
    }

    /// `line[q] = min_p w2 (q - p)^2 + line[p]` over the finite `line[p]`, in place.
    fn transform(&mut self, line: &mut [f64], w2: f64) {
        self.f.clear();
        self.f.extend_from_slice(line);
        self.v.clear();
        self.z.clear();
        // f[q] + w2 q^2, so that two parabolas cross at (g[q] - g[p]) / (2 w2 (q - p)).
        self.g.clear();
        self.g
            .extend(self.f.iter().enumerate().map(|(q, f)| f + w2 * (q * q) as f64));
        let (f, g) = (&self.f, &self.g);
        let cross = |p: usize, q: usize| (g[q] - g[p]) / (2.0 * w2 * (q - p) as f64);
        for q in (0..f.len()).filter(|&q| f[q].is_finite()) {
            let mut s = f64::NEG_INFINITY;
            while let Some(&p) = self.v.last() {
                s = cross(p, q);
                if s > *self.z.last().expect("one boundary per root") {
                    break;
                }
                self.v.pop();
                self.z.pop();
                s = f64::NEG_INFINITY;
            }
            self.v.push(q);
            self.z.push(s);
        }
        if self.v.is_empty() {
            return;
        }
        let mut k = 0;
        for (q, out) in line.iter_mut().enumerate() {
            while k + 1 < self.v.len() && self.z[k + 1] < q as f64 {
                k += 1;
            }
            let d = q as f64 - self.v[k] as f64;
            *out = w2 * d * d + f[self.v[k]];
        }
    }
}

/// Brute force: for every point, the minimum over all features of the squared distance.
#[cfg(test)]
pub(crate) fn squared_edt_reference(features: &[bool], shape: &[usize], spacing: &[f64]) -> Vec<f64> {
    let coords = |mut i: usize| {
        let mut c = vec![0usize; shape.len()];
        for a in (0..shape.len()).rev() {
            c[a] = i % shape[a];
            i /= shape[a];
        }
        c
    };
    let points: Vec<Vec<usize>> = (0..features.len()).filter(|&i| features[i]).map(coords).collect();
    (0..features.len())
        .map(|i| {
            let x = coords(i);
            points
                .iter()
                .map(|p| {
                    (0..shape.len())
                        .map(|a| (spacing[a] * (x[a] as f64 - p[a] as f64)).powi(2))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grid() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, Vec<bool>)> {
        (1usize..=3)
            .prop_flat_map(|rank| {
                (
                    proptest::collection::vec(1usize..9, rank),
                    proptest::collection::vec(0.3f64..3.0, rank),
                    0.0f64..0.4,
                )
            })
            .prop_flat_map(|(shape, spacing, density)| {
                let n: usize = shape.iter().product();
                let mask = proptest::collection::vec(proptest::bool::weighted(density.max(0.01)), n);
                (Just(shape), Just(spacing), mask)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_brute_force((shape, spacing, mask) in grid()) {
            let fast = squared_edt(&mask, &shape, &spacing).unwrap();
            let slow = squared_edt_reference(&mask, &shape, &spacing);
            for (a, b) in fast.iter().zip(&slow) {
                prop_assert!(a == b || (a - b).abs() <= 1e-9 * b.max(1.0), "{a} vs {b}");
            }
            // Read at every other point.
            let at: Vec<bool> = (0..mask.len()).map(|i| i % 2 == 0).collect();
            let picked: Vec<f64> = fast.iter().step_by(2).copied().collect();
            prop_assert_eq!(squared_edt_at(&mask, &shape, &spacing, &at).unwrap(), picked);
        }
    }

    #[test]
    fn one_point_in_an_anisotropic_volume() {
        let mut mask = vec![false; 3 * 4 * 5];
        mask[0] = true;
        let d = edt(&mask, &[3, 4, 5], &[2.0, 1.0, 0.5]).unwrap();
        assert_eq!(d[0], 0.0);
        let last = (4.0f64 * 4.0 + 3.0 * 3.0 + 2.0 * 2.0).sqrt();
        assert!((d[59] - last).abs() < 1e-12);
    }

    #[test]
    fn no_feature_is_infinite_everywhere() {
        let d = edt(&[false; 6], &[2, 3], &[1.0, 1.0]).unwrap();
        assert!(d.iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn bad_grids_are_errors() {
        assert!(edt(&[true; 6], &[2, 2], &[1.0, 1.0]).is_err());
        assert!(edt(&[true; 4], &[2, 2], &[1.0]).is_err());
        assert!(edt(&[true; 4], &[2, 2], &[1.0, 0.0]).is_err());
    }
}
