//! Training patches: the held-out axial slab, and patch sampling with foreground oversampling as nnU-Net.

use std::ops::Range;

use seg_tensor::{Error, Result, Tensor};

use crate::volume::{dims3, image_values, label_values, same_dims};
use crate::Rng;

/// A split of a volume along its axial axis (tensor axis 0, `D`): one held-out validation slab, and the
/// training slabs below and above it. Slabs are whole axial slices, so the left and right halves of a
/// symmetric brain never end up on different sides of the split.
#[derive(Clone, Debug, PartialEq)]
pub struct AxialSplit {
    pub train: Vec<Range<usize>>,
    pub val: Range<usize>,
}

impl AxialSplit {
    /// Holds out `round(depth * fraction)` slices starting at slice `round(depth * start)`.
    pub fn new(depth: usize, start: f64, fraction: f64) -> Result<Self> {
        let first = (depth as f64 * start).round() as usize;
        let len = (depth as f64 * fraction).round() as usize;
        if !(0.0..1.0).contains(&start) || len == 0 || first + len > depth || len == depth {
            return Err(Error::invalid(
                "AxialSplit",
                format!(
                    "expected a held-out slab of at least one slice, inside {depth} slices, leaving slices to \
                     train on; found start {start}, fraction {fraction} (slices {first}..{})",
                    first + len
                ),
            ));
        }
        let train = [0..first, first + len..depth]
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect();
        Ok(AxialSplit {
            train,
            val: first..first + len,
        })
    }

    /// The slices `range` of a volume (a new dense tensor).
    pub fn slab(t: &Tensor, range: &Range<usize>) -> Result<Tensor> {
        let depth = dims3(t, "AxialSplit::slab")?[0];
        if range.is_empty() || range.end > depth {
            return Err(Error::invalid(
                "AxialSplit::slab",
                format!("slices {range:?} of a volume of depth {depth}"),
            ));
        }
        t.narrow(0, range.start, range.len())?.contiguous()
    }
}

/// One patch: image (f32) and labels (u8), both of the patch shape `(D, H, W)`, and where it was taken.
#[derive(Clone, Debug)]
pub struct Patch {
    pub image: Tensor,
    pub labels: Tensor,
    /// Index of the case it came from.
    pub case: usize,
    /// The voxel of the case at the patch's first voxel (negative where the patch starts in padding).
    pub origin: [isize; 3],
    /// Whether it was centred on a foreground voxel.
    pub foreground: bool,
}

/// A case kept for sampling: its buffers and the voxel indices of each foreground class.
struct Case {
    image: Vec<f32>,
    labels: Vec<u8>,
    dims: [usize; 3],
    /// `classes[k]`: indices of the voxels of the k-th nonzero class present.
    classes: Vec<Vec<u32>>,
}

/// Draws training patches from image/label cases as nnU-Net's data loader does:
///
/// - a case is chosen with probability proportional to its number of voxels (the cases here are often
///   slabs of one volume; nnU-Net, whose cases are whole scans, chooses uniformly);
/// - a foreground patch picks a class uniformly among the nonzero classes present, a voxel of that class
///   uniformly, and puts it at the patch centre (`origin = max(lb, voxel - patch / 2)`);
/// - a random patch draws its origin uniformly in `[lb, ub]` per axis, with `lb = -pad / 2` and
///   `ub = size + pad / 2 + pad % 2 - patch`, `pad = max(patch - size, 0)`;
/// - a patch reaching outside the volume is padded with 0 (image and background label);
/// - in a batch of `n`, the last `n - round(n * (1 - oversample))` patches are foreground patches.
pub struct PatchSampler {
    cases: Vec<Case>,
    patch: [usize; 3],
    oversample: f64,
    rng: Rng,
}

impl PatchSampler {
    /// A sampler over `cases` (rank-3 f32 image, u8 labels of the same shape) drawing patches of shape
    /// `patch`, a fraction `oversample` of them on foreground (nnU-Net: 0.33), seeded by `seed`.
    pub fn new(cases: &[(Tensor, Tensor)], patch: [usize; 3], oversample: f64, seed: u64) -> Result<Self> {
        if cases.is_empty() || patch.contains(&0) || !(0.0..=1.0).contains(&oversample) {
            return Err(Error::invalid(
                "PatchSampler",
                format!(
                    "expected at least one case, a nonzero patch and oversample in [0, 1]; found {} cases, \
                     patch {patch:?}, oversample {oversample}",
                    cases.len()
                ),
            ));
        }
        let cases = cases
            .iter()
            .map(|(image, labels)| {
                let (image, dims) = image_values(image, "PatchSampler")?;
                let (labels, label_dims) = label_values(labels, "PatchSampler")?;
                same_dims("PatchSampler", dims, label_dims)?;
                let mut by_class = vec![Vec::new(); 256];
                labels
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l != 0)
                    .for_each(|(i, &l)| by_class[l as usize].push(i as u32));
                let classes = by_class.into_iter().filter(|v| !v.is_empty()).collect();
                Ok(Case {
                    image: image.into_owned(),
                    labels: labels.into_owned(),
                    dims,
                    classes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PatchSampler {
            cases,
            patch,
            oversample,
            rng: Rng::new(seed),
        })
    }

    /// One patch from a random case, centred on foreground when `foreground` (and the case has any).
    pub fn sample(&mut self, foreground: bool) -> Result<Patch> {
        let total: usize = self.cases.iter().map(|c| c.image.len()).sum();
        let mut pick = self.rng.below(total);
        let mut case = 0;
        while pick >= self.cases[case].image.len() {
            pick -= self.cases[case].image.len();
            case += 1;
        }
        let c = &self.cases[case];
        let (patch, dims) = (self.patch, c.dims);
        let pad: [usize; 3] = std::array::from_fn(|a| patch[a].saturating_sub(dims[a]));
        let lb: [isize; 3] = std::array::from_fn(|a| -((pad[a] / 2) as isize));
        let ub: [isize; 3] = std::array::from_fn(|a| (dims[a] + pad[a] / 2 + pad[a] % 2) as isize - patch[a] as isize);
        let foreground = foreground && !c.classes.is_empty();
        let origin: [isize; 3] = if foreground {
            let class = &c.classes[self.rng.below(c.classes.len())];
            let v = class[self.rng.below(class.len())] as usize;
            let at = [v / (dims[1] * dims[2]), (v / dims[2]) % dims[1], v % dims[2]];
            std::array::from_fn(|a| lb[a].max(at[a] as isize - (patch[a] / 2) as isize))
        } else {
            std::array::from_fn(|a| lb[a] + self.rng.below((ub[a] - lb[a] + 1) as usize) as isize)
        };
        Ok(Patch {
            image: Tensor::from_vec(extract(&c.image, dims, origin, patch, 0.0), &patch)?,
            labels: Tensor::from_vec(extract(&c.labels, dims, origin, patch, 0), &patch)?,
            case,
            origin,
            foreground,
        })
    }

    /// `n` patches, the last `n - round(n * (1 - oversample))` of them foreground patches.
    pub fn batch(&mut self, n: usize) -> Result<Vec<Patch>> {
        let random = (n as f64 * (1.0 - self.oversample)).round() as usize;
        (0..n).map(|i| self.sample(i >= random)).collect()
    }
}

/// The box of shape `patch` at `origin` of a volume of shape `dims`, `fill` outside the volume; copied
/// row by row.
fn extract<T: Copy>(data: &[T], dims: [usize; 3], origin: [isize; 3], patch: [usize; 3], fill: T) -> Vec<T> {
    let mut out = vec![fill; patch.iter().product()];
    let inside = |a: usize, o: usize| {
        let i = origin[a] + o as isize;
        (i >= 0 && (i as usize) < dims[a]).then_some(i as usize)
    };
    let x0 = (0..patch[2]).find(|&o| inside(2, o).is_some());
    let Some(x0) = x0 else { return out };
    let x1 = (x0..patch[2]).take_while(|&o| inside(2, o).is_some()).count() + x0;
    let src_x = inside(2, x0).expect("found inside");
    for pz in 0..patch[0] {
        let Some(z) = inside(0, pz) else { continue };
        for py in 0..patch[1] {
            let Some(y) = inside(1, py) else { continue };
            let src = (z * dims[1] + y) * dims[2] + src_x;
            let dst = (pz * patch[1] + py) * patch[2];
            out[dst + x0..dst + x1].copy_from_slice(&data[src..src + (x1 - x0)]);
        }
    }
    out
}

/// Stacks patches into a batch: images `(N, 1, D, H, W)` f32 and labels `(N, 1, D, H, W)` u8.
pub fn stack(patches: &[Patch]) -> Result<(Tensor, Tensor)> {
    let first = patches
        .first()
        .ok_or_else(|| Error::invalid("stack", "expected at least one patch, found none"))?;
    let shape = first.image.shape().to_vec();
    let mut images = Vec::with_capacity(patches.len() * first.image.numel());
    let mut labels = Vec::with_capacity(patches.len() * first.image.numel());
    for p in patches {
        let (image, dims) = image_values(&p.image, "stack")?;
        let (label, label_dims) = label_values(&p.labels, "stack")?;
        same_dims("stack", [shape[0], shape[1], shape[2]], dims)?;
        same_dims("stack", dims, label_dims)?;
        images.extend_from_slice(&image);
        labels.extend_from_slice(&label);
    }
    let batch = [patches.len(), 1, shape[0], shape[1], shape[2]];
    Ok((Tensor::from_vec(images, &batch)?, Tensor::from_vec(labels, &batch)?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A volume whose voxel value is its own linear index + 1, and labels 1 on one small cube.
    fn case(dims: [usize; 3], cube: [Range<usize>; 3]) -> (Tensor, Tensor) {
        let n = dims.iter().product::<usize>();
        let image = Tensor::from_vec((0..n).map(|i| i as f32 + 1.0).collect::<Vec<_>>(), &dims).unwrap();
        let labels: Vec<u8> = (0..n)
            .map(|i| {
                let at = [i / (dims[1] * dims[2]), (i / dims[2]) % dims[1], i % dims[2]];
                (0..3).all(|a| cube[a].contains(&at[a])) as u8
            })
            .collect();
        (image, Tensor::from_vec(labels, &dims).unwrap())
    }

    #[test]
    fn split_holds_out_a_slab() {
        let s = AxialSplit::new(100, 0.6, 0.2).unwrap();
        assert_eq!(
            s,
            AxialSplit {
                train: vec![0..60, 80..100],
                val: 60..80
            }
        );
        assert_eq!(AxialSplit::new(10, 0.0, 0.3).unwrap().train, vec![3..10]);
        assert!(AxialSplit::new(10, 0.9, 0.3)
            .unwrap_err()
            .to_string()
            .contains("slices 9..12"));
        assert!(AxialSplit::new(10, 0.0, 1.0).is_err());
        let (image, _) = case([10, 2, 3], [0..0, 0..0, 0..0]);
        let slab = AxialSplit::slab(&image, &(3..5)).unwrap();
        assert_eq!(slab.shape(), &[2, 2, 3]);
        assert_eq!(slab.to_vec::<f32>().unwrap()[0], 3.0 * 6.0 + 1.0);
        assert!(AxialSplit::slab(&image, &(8..11)).is_err());
    }

    #[test]
    fn a_third_of_the_patches_hit_a_small_foreground() {
        let mut sampler =
            PatchSampler::new(&[case([64, 64, 64], [31..33, 31..33, 31..33])], [8, 8, 8], 0.33, 7).unwrap();
        let (mut hits, mut forced, n) = (0, 0, 900);
        for _ in 0..n / 3 {
            for p in sampler.batch(3).unwrap() {
                let fg = p.labels.to_vec::<u8>().unwrap().contains(&1);
                hits += fg as usize;
                forced += p.foreground as usize;
                assert!(!p.foreground || fg, "a foreground patch must hold foreground");
            }
        }
        assert_eq!(forced, n / 3);
        let rate = hits as f64 / n as f64;
        assert!((0.32..0.37).contains(&rate), "{rate}");
    }

    #[test]
    fn seeded_and_padded() {
        let cases = [case([4, 4, 4], [1..2, 1..2, 1..2]), case([5, 6, 7], [0..1, 0..1, 0..1])];
        let draw = |seed| {
            let mut s = PatchSampler::new(&cases, [6, 6, 6], 0.5, seed).unwrap();
            (0..6).map(|_| s.sample(false).unwrap().origin).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        // A 4^3 volume in a 6^3 patch: always centred, one voxel of padding on each side.
        let mut s = PatchSampler::new(&cases[..1], [6, 6, 6], 0.0, 1).unwrap();
        let p = s.sample(false).unwrap();
        assert_eq!(p.origin, [-1, -1, -1]);
        let v = p.image.to_vec::<f32>().unwrap();
        assert_eq!(v[0], 0.0);
        assert_eq!(v[(6 + 1) * 6 + 1], 1.0);
        assert_eq!(v[(4 * 6 + 4) * 6 + 4], 64.0);
        let (images, labels) = stack(&[p.clone(), p]).unwrap();
        assert_eq!(images.shape(), &[2, 1, 6, 6, 6]);
        assert_eq!(labels.shape(), &[2, 1, 6, 6, 6]);
        assert!(PatchSampler::new(&[(cases[0].0.clone(), cases[1].1.clone())], [2, 2, 2], 0.3, 0).is_err());
    }

    /// The row-wise copy against a voxel-by-voxel reference.
    fn extract_reference(data: &[f32], dims: [usize; 3], origin: [isize; 3], patch: [usize; 3]) -> Vec<f32> {
        let mut out = Vec::new();
        for pz in 0..patch[0] as isize {
            for py in 0..patch[1] as isize {
                for px in 0..patch[2] as isize {
                    let at = [origin[0] + pz, origin[1] + py, origin[2] + px];
                    let inside = (0..3).all(|a| at[a] >= 0 && (at[a] as usize) < dims[a]);
                    out.push(if inside {
                        data[(at[0] as usize * dims[1] + at[1] as usize) * dims[2] + at[2] as usize]
                    } else {
                        0.0
                    });
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn extract_matches_the_reference(
            dims in prop::array::uniform3(1usize..7),
            patch in prop::array::uniform3(1usize..9),
            origin in prop::array::uniform3(-9isize..9),
        ) {
            let data: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| i as f32 + 1.0).collect();
            prop_assert_eq!(extract(&data, dims, origin, patch, 0.0), extract_reference(&data, dims, origin, patch));
        }
    }
}
