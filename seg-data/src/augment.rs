//! Seeded data augmentation of an image patch and its labels, as nnU-Net does it (batchgenerators'
//! defaults): rotation and scaling, Gaussian noise, gamma, mirroring; on CPU buffers.

use seg_tensor::{Element, Error, Result, Tensor};

use crate::interp::{nearest, trilinear};
use crate::volume::{image_values, label_values, same_dims};
use crate::Rng;

/// What to apply, with which probability and range. `Default` is nnU-Net's.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    /// Axes `(D, H, W)` that may be flipped, each with probability 1/2. Leave out an axis whose flip
    /// would leak (the left-right axis of a symmetric template whose halves are split between sets).
    pub flip_axes: [bool; 3],
    /// Probability of rotating, and the largest angle (radians) about each axis: drawn uniformly in
    /// `[-max, max]` per axis (nnU-Net: 0.2, 30 degrees).
    pub rotation_prob: f64,
    pub max_rotation: f64,
    /// Probability of scaling, and the range of the factor (nnU-Net: 0.2, 0.7..1.4).
    pub scale_prob: f64,
    pub scale_range: (f64, f64),
    /// Probability of additive Gaussian noise, and the range of its variance (nnU-Net: 0.1, 0..0.1).
    pub noise_prob: f64,
    pub noise_variance: (f64, f64),
    /// Probability of a gamma transform, and the range of gamma (nnU-Net: 0.3, 0.7..1.5).
    pub gamma_prob: f64,
    pub gamma_range: (f64, f64),
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            flip_axes: [true; 3],
            rotation_prob: 0.2,
            max_rotation: 30f64.to_radians(),
            scale_prob: 0.2,
            scale_range: (0.7, 1.4),
            noise_prob: 0.1,
            noise_variance: (0.0, 0.1),
            gamma_prob: 0.3,
            gamma_range: (0.7, 1.5),
        }
    }
}

impl Augment {
    /// Augments an f32 image patch and its u8 labels (same `(D, H, W)` shape), drawing every choice from
    /// `rng`: rotation/scaling (trilinear image, nearest labels, 0 outside), noise, gamma, then flips.
    pub fn apply(&self, image: &Tensor, labels: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let (image, dims) = image_values(image, "Augment::apply")?;
        let (labels, label_dims) = label_values(labels, "Augment::apply")?;
        same_dims("Augment::apply", dims, label_dims)?;
        let (mut image, mut labels) = (image.into_owned(), labels.into_owned());
        let rotate = rng.chance(self.rotation_prob);
        let angles = if rotate {
            [(); 3].map(|_| rng.range(-self.max_rotation, self.max_rotation))
        } else {
            [0.0; 3]
        };
        let scale = if rng.chance(self.scale_prob) {
            rng.range(self.scale_range.0, self.scale_range.1)
        } else {
            1.0
        };
        if rotate || scale != 1.0 {
            let m = sampling_matrix(angles, scale);
            image = transform(dims, &m, |p| trilinear(&image, dims, p));
            labels = transform(dims, &m, |p| nearest(&labels, dims, p, 0));
        }
        if rng.chance(self.noise_prob) {
            let std = rng.range(self.noise_variance.0, self.noise_variance.1).sqrt();
            image.iter_mut().for_each(|x| *x += (std * rng.normal()) as f32);
        }
        if rng.chance(self.gamma_prob) {
            let (lo, hi) = self.gamma_range;
            let g = if rng.chance(0.5) && lo < 1.0 {
                rng.range(lo, 1.0)
            } else {
                rng.range(lo.max(1.0), hi)
            };
            gamma_in_place(&mut image, g);
        }
        for axis in 0..3 {
            if self.flip_axes[axis] && rng.chance(0.5) {
                image = flip_buffer(&image, dims, axis);
                labels = flip_buffer(&labels, dims, axis);
            }
        }
        Ok((Tensor::from_vec(image, &dims)?, Tensor::from_vec(labels, &dims)?))
    }
}

/// The volume reversed along `axis` (0, 1, 2 = D, H, W) of a rank-3 tensor of any dtype.
pub fn flip(t: &Tensor, axis: usize) -> Result<Tensor> {
    let dims = crate::volume::dims3(t, "flip")?;
    if axis > 2 {
        return Err(Error::DimOutOfRange {
            op: "flip",
            dim: axis as isize,
            rank: 3,
        });
    }
    seg_tensor::with_element!(t.dtype(), T => Tensor::from_vec(flip_buffer(&t.values::<T>()?, dims, axis), &dims))
}

fn flip_buffer<T: Element>(data: &[T], dims: [usize; 3], axis: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    let [d, h, w] = dims;
    for z in 0..d {
        let z = if axis == 0 { d - 1 - z } else { z };
        for y in 0..h {
            let y = if axis == 1 { h - 1 - y } else { y };
            let row = &data[(z * h + y) * w..(z * h + y + 1) * w];
            if axis == 2 {
                out.extend(row.iter().rev());
            } else {
                out.extend_from_slice(row);
            }
        }
    }
    out
}

/// The matrix taking an output voxel's offset from the patch centre to its source offset:
/// `M = scale * Rx(a0) Ry(a1) Rz(a2)`, with `R(a)` the rotation by `a` about tensor axis 0, 1 or 2. A scale
/// above 1 samples a larger region (structures shrink), as in batchgenerators.
pub fn sampling_matrix(angles: [f64; 3], scale: f64) -> [[f64; 3]; 3] {
    let rot = |axis: usize, a: f64| {
        let (s, c) = a.sin_cos();
        let (i, j) = ((axis + 1) % 3, (axis + 2) % 3);
        let mut r = [[0.0; 3]; 3];
        r[axis][axis] = 1.0;
        (r[i][i], r[i][j], r[j][i], r[j][j]) = (c, -s, s, c);
        r
    };
    let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
        std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
    };
    mul(mul(rot(0, angles[0]), rot(1, angles[1])), rot(2, angles[2])).map(|row| row.map(|v| v * scale))
}

/// Samples a volume of shape `dims` at `c + M (o - c)` for every output voxel `o`, `c` the centre
/// `(dims - 1) / 2`; the source point advances by M's last column along each output row.
fn transform<T>(dims: [usize; 3], m: &[[f64; 3]; 3], sample: impl Fn([f64; 3]) -> T) -> Vec<T> {
    let c = dims.map(|n| (n as f64 - 1.0) / 2.0);
    let mut out = Vec::with_capacity(dims.iter().product());
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            let (oz, oy, ox) = (z as f64 - c[0], y as f64 - c[1], -c[2]);
            let start: [f64; 3] = std::array::from_fn(|i| c[i] + m[i][0] * oz + m[i][1] * oy + m[i][2] * ox);
            out.extend((0..dims[2]).map(|x| sample(std::array::from_fn(|i| start[i] + m[i][2] * x as f64))));
        }
    }
    out
}

/// Gamma with the statistics kept (batchgenerators' `augment_gamma`, `retain_stats`):
/// `u = ((x - min) / (range + 1e-7))^gamma * (range + 1e-7) + min`, then `u` shifted and scaled to the
/// mean and standard deviation `x` had.
pub fn gamma(image: &Tensor, gamma: f64) -> Result<Tensor> {
    let (v, dims) = image_values(image, "gamma")?;
    let mut v = v.into_owned();
    gamma_in_place(&mut v, gamma);
    Tensor::from_vec(v, &dims)
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

fn gamma_in_place(v: &mut [f32], gamma: f64) {
    let (mean, std) = mean_std(v);
    let min = v.iter().fold(f32::INFINITY, |a, &b| a.min(b)) as f64;
    let range = v.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64 - min + 1e-7;
    v.iter_mut()
        .for_each(|x| *x = (((*x as f64 - min) / range).powf(gamma) * range + min) as f32);
    let (new_mean, new_std) = mean_std(v);
    v.iter_mut()
        .for_each(|x| *x = ((*x as f64 - new_mean) / (new_std + 1e-8) * std + mean) as f32);
}

#[cfg(test)]
mod tests {
    use seg_tensor::DType;

    use super::*;

    fn ramp(dims: [usize; 3]) -> Tensor {
        let n = dims.iter().product::<usize>();
        Tensor::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), &dims).unwrap()
    }

    fn labels(dims: [usize; 3]) -> Tensor {
        let n = dims.iter().product::<usize>();
        Tensor::from_vec((0..n).map(|i| (i % 3) as u8).collect::<Vec<_>>(), &dims).unwrap()
    }

    #[test]
    fn flips_are_involutions_and_reverse_one_axis() {
        let t = ramp([2, 3, 4]);
        for axis in 0..3 {
            let f = flip(&t, axis).unwrap();
            assert_ne!(f.to_vec::<f32>().unwrap(), t.to_vec::<f32>().unwrap());
            assert_eq!(
                flip(&f, axis).unwrap().to_vec::<f32>().unwrap(),
                t.to_vec::<f32>().unwrap()
            );
        }
        let v = t.to_vec::<f32>().unwrap();
        let f = flip(&t, 1).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(f[(12 + 4) + 3], v[12 + 4 + 3]); // y = 1 is the middle of 3
        assert_eq!(f[3], v[2 * 4 + 3]);
        assert_eq!(flip(&labels([2, 3, 4]), 2).unwrap().to_vec::<u8>().unwrap()[0], 3 % 3);
        assert!(flip(&t, 3).is_err());
    }

    #[test]
    fn quarter_turns_permute_and_four_give_the_identity() {
        let dims = [3, 5, 5];
        let (image, lab) = (ramp(dims), labels(dims));
        let quarter = sampling_matrix([std::f64::consts::FRAC_PI_2, 0.0, 0.0], 1.0);
        let (mut im, mut lb) = (image.to_vec::<f32>().unwrap(), lab.to_vec::<u8>().unwrap());
        for turn in 0..4 {
            im = transform(dims, &quarter, |p| trilinear(&im, dims, p));
            lb = transform(dims, &quarter, |p| nearest(&lb, dims, p, 0));
            let mut sorted = im.clone();
            sorted.sort_by(f32::total_cmp);
            let mut want = image.to_vec::<f32>().unwrap();
            want.sort_by(f32::total_cmp);
            assert!(
                sorted.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
                "turn {turn} is a permutation"
            );
        }
        let back = image.to_vec::<f32>().unwrap();
        assert!(im.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-5));
        assert_eq!(lb, lab.to_vec::<u8>().unwrap());
    }

    #[test]
    fn scaling_samples_a_larger_region() {
        let dims = [1, 1, 9];
        let x = Tensor::from_vec((0..9).map(|i| i as f32).collect::<Vec<_>>(), &dims).unwrap();
        let (v, _) = image_values(&x, "t").unwrap();
        let out = transform(dims, &sampling_matrix([0.0; 3], 0.5), |p| trilinear(&v, dims, p));
        assert_eq!(out, vec![2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]);
        let out = transform(dims, &sampling_matrix([0.0; 3], 2.0), |p| trilinear(&v, dims, p));
        assert_eq!(out, vec![0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0, 0.0, 0.0]);
    }

    #[test]
    fn gamma_keeps_mean_and_std() {
        let t = ramp([4, 4, 4]);
        let g = gamma(&t, 1.4).unwrap().to_vec::<f32>().unwrap();
        let (m0, s0) = mean_std(&t.to_vec::<f32>().unwrap());
        let (m1, s1) = mean_std(&g);
        assert!((m0 - m1).abs() < 1e-5 && (s0 - s1).abs() < 1e-5);
        assert_ne!(g, t.to_vec::<f32>().unwrap());
        let same = gamma(&t, 1.0).unwrap().to_vec::<f32>().unwrap();
        assert!(same
            .iter()
            .zip(t.to_vec::<f32>().unwrap())
            .all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn apply_is_seeded_and_keeps_labels_consistent() {
        let dims = [6, 7, 8];
        let (image, lab) = (ramp(dims), labels(dims));
        let all = Augment {
            rotation_prob: 1.0,
            scale_prob: 1.0,
            noise_prob: 1.0,
            gamma_prob: 1.0,
            ..Augment::default()
        };
        let run = |seed| {
            let (i, l) = all.apply(&image, &lab, &mut Rng::new(seed)).unwrap();
            (i.to_vec::<f32>().unwrap(), l.to_vec::<u8>().unwrap())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1).0, run(2).0);
        assert!(run(3).1.iter().all(|&l| l < 3));
        // Nothing on: the identity.
        let none = Augment {
            flip_axes: [false; 3],
            rotation_prob: 0.0,
            scale_prob: 0.0,
            noise_prob: 0.0,
            gamma_prob: 0.0,
            ..all
        };
        let (i, l) = none.apply(&image, &lab, &mut Rng::new(0)).unwrap();
        assert_eq!(i.to_vec::<f32>().unwrap(), image.to_vec::<f32>().unwrap());
        assert_eq!(l.to_vec::<u8>().unwrap(), lab.to_vec::<u8>().unwrap());
        assert!(none
            .apply(&image, &Tensor::zeros(&dims, DType::F32), &mut Rng::new(0))
            .is_err());
        // Only W may flip: a volume constant along D and H stays so.
        let only_w = Augment {
            flip_axes: [false, false, true],
            ..none
        };
        let mut rng = Rng::new(9);
        let flipped = (0..20)
            .filter(|_| {
                only_w.apply(&image, &lab, &mut rng).unwrap().0.to_vec::<f32>().unwrap()
                    != image.to_vec::<f32>().unwrap()
            })
            .count();
        assert!((4..17).contains(&flipped), "{flipped}");
    }
}
