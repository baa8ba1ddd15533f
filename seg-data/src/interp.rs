//! Point sampling of a `(D, H, W)` buffer at fractional voxel coordinates: trilinear for images, the
//! trilinear majority or the nearest voxel for label maps.

/// Trilinear interpolation of `data` (shape `dims`) at `p = (z, y, x)`:
/// `sum over the 8 corners c of prod_a (1 - |p_a - c_a|) * data[c]`, a corner outside the volume
/// counting as 0 (so a point more than one voxel outside gives 0, and one on the edge the edge value).
/// Points whose 8 corners are all inside take a branch-free path; [`trilinear_reference`] is the rest.
pub(crate) fn trilinear(data: &[f32], dims: [usize; 3], p: [f64; 3]) -> f32 {
    let [z, y, x] = p;
    let inside = |v: f64, n: usize| v >= 0.0 && v < (n - 1) as f64;
    if !(inside(z, dims[0]) && inside(y, dims[1]) && inside(x, dims[2])) {
        return trilinear_reference(data, dims, p);
    }
    let (z0, y0, x0) = (z as usize, y as usize, x as usize);
    let (fz, fy, fx) = ((z - z0 as f64) as f32, (y - y0 as f64) as f32, (x - x0 as f64) as f32);
    let (sy, sz) = (dims[2], dims[1] * dims[2]);
    let i = z0 * sz + y0 * sy + x0;
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let row = |i: usize| lerp(data[i], data[i + 1], fx);
    let plane = |i: usize| lerp(row(i), row(i + sy), fy);
    lerp(plane(i), plane(i + sz), fz)
}

/// [`trilinear`] for any point, corner by corner.
pub(crate) fn trilinear_reference(data: &[f32], dims: [usize; 3], p: [f64; 3]) -> f32 {
    let mut sum = 0.0;
    for_each_corner(dims, p, |index, weight| sum += weight * data[index] as f64);
    sum as f32
}

/// The label whose indicator `data == l`, interpolated trilinearly, is largest at `p` (ties go to the
/// smaller label; corners outside the volume count for no label, and a point with none inside gets 0).
/// Resizing label maps this way is nnU-Net's one-hot linear resampling: boundaries move to where the
/// classes' shares cross rather than to the nearest voxel's.
pub(crate) fn label_majority(data: &[u8], dims: [usize; 3], p: [f64; 3]) -> u8 {
    let mut shares: Vec<(u8, f64)> = Vec::with_capacity(8);
    for_each_corner(dims, p, |index, weight| {
        match shares.iter_mut().find(|(l, _)| *l == data[index]) {
            Some((_, share)) => *share += weight,
            None => shares.push((data[index], weight)),
        }
    });
    shares
        .into_iter()
        .fold(None, |best: Option<(u8, f64)>, (l, w)| match best {
            Some((bl, bw)) if bw > w || (bw == w && bl < l) => Some((bl, bw)),
            _ => Some((l, w)),
        })
        .map_or(0, |(l, _)| l)
}

/// Calls `f(index, weight)` for each of the 8 trilinear corners of `p` inside the volume with a nonzero
/// weight `prod_a (1 - |p_a - c_a|)`.
fn for_each_corner(dims: [usize; 3], p: [f64; 3], mut f: impl FnMut(usize, f64)) {
    let floor = p.map(f64::floor);
    let base: [isize; 3] = std::array::from_fn(|a| floor[a] as isize);
    let frac: [f64; 3] = std::array::from_fn(|a| p[a] - floor[a]);
    for corner in 0..8 {
        let mut weight = 1.0;
        let mut index = 0usize;
        let mut inside = true;
        for a in 0..3 {
            let up = (corner >> (2 - a)) & 1;
            let i = base[a] + up as isize;
            weight *= if up == 1 { frac[a] } else { 1.0 - frac[a] };
            inside &= i >= 0 && (i as usize) < dims[a];
            index = index * dims[a] + i.max(0) as usize;
        }
        if inside && weight != 0.0 {
            f(index, weight);
        }
    }
}

/// The value of `data` at the voxel nearest to `p = (z, y, x)` (halves round up), `fill` outside.
pub(crate) fn nearest<T: Copy>(data: &[T], dims: [usize; 3], p: [f64; 3], fill: T) -> T {
    let mut index = 0usize;
    for a in 0..3 {
        let i = (p[a] + 0.5).floor();
        if i < 0.0 || i >= dims[a] as f64 {
            return fill;
        }
        index = index * dims[a] + i as usize;
    }
    data[index]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_fast_path_matches_the_reference(
            dims in prop::array::uniform3(1usize..6),
            p in prop::array::uniform3(-1.5f64..6.5),
        ) {
            let data: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let (fast, slow) = (trilinear(&data, dims, p), trilinear_reference(&data, dims, p));
            prop_assert!((fast - slow).abs() < 1e-4, "{} vs {}", fast, slow);
        }

        #[test]
        fn the_label_majority_is_the_argmax_of_interpolated_indicators(
            dims in prop::array::uniform3(1usize..5),
            p in prop::array::uniform3(-0.5f64..4.5),
            seed in 0usize..1000,
        ) {
            let labels: Vec<u8> = (0..dims.iter().product::<usize>()).map(|i| ((i * 7 + seed) % 3) as u8).collect();
            let share = |l: u8| {
                let indicator: Vec<f32> = labels.iter().map(|&v| f32::from(v == l)).collect();
                trilinear_reference(&indicator, dims, p)
            };
            let shares = [share(0), share(1), share(2)];
            let winner = label_majority(&labels, dims, p);
            prop_assert!(shares.iter().all(|&s| s <= shares[winner as usize] + 1e-6), "{:?} {}", shares, winner);
        }
    }

    #[test]
    fn trilinear_is_exact_on_linear_functions_inside() {
        let dims = [3, 4, 5];
        let f = |z: f64, y: f64, x: f64| 2.0 * z - 0.5 * y + 0.25 * x + 1.0;
        let data: Vec<f32> = (0..60)
            .map(|i| f((i / 20) as f64, ((i / 5) % 4) as f64, (i % 5) as f64) as f32)
            .collect();
        for p in [[0.0, 0.0, 0.0], [1.5, 2.25, 3.75], [2.0, 3.0, 4.0], [0.1, 0.9, 0.3]] {
            assert!(
                (trilinear(&data, dims, p) as f64 - f(p[0], p[1], p[2])).abs() < 1e-5,
                "{p:?}"
            );
        }
        assert_eq!(trilinear(&data, dims, [-1.5, 0.0, 0.0]), 0.0);
        assert_eq!(nearest(&data, dims, [0.49, 1.5, 4.2], -1.0), data[2 * 5 + 4]);
        assert_eq!(nearest(&data, dims, [2.6, 0.0, 0.0], -1.0), -1.0);
    }
}
