//! Betti numbers of 2D and 3D binary masks.
//!
//! The foreground is the union of closed pixels/voxels (the closed cubical complex: two foreground
//! cells meeting at a corner are connected, 8-connectivity in 2D, 26 in 3D), so its complement is
//! connected through faces (4-/6-connectivity), and the image is surrounded by background.
//!
//! - `b0`: the foreground's full-connectivity components.
//! - 2D `b1` / 3D `b2`: holes / cavities, the background's face-connected components that do not
//!   reach the image border (Alexander duality).
//! - 3D `b1` (tunnels) from the Euler characteristic `chi = b0 - b1 + b2`, with
//!   `chi = sum over the cells of the closed complex of (-1)^dim` (vertices - edges + faces - cubes);
//!   2D `b1` also equals `b0 - chi`, which the tests hold it to.

use rayon::prelude::*;
use seg_tensor::{Error, Result, Tensor};

use super::grid::{count_components, Connectivity, Grid};

/// The Euler characteristic of the closed cubical complex of the `true` cells of `mask`: the sum of
/// `(-1)^dim` over every cell (vertex, edge, square, cube) of the closure. A cell at doubled
/// coordinates `x` (in `0..=2 n` per axis, `dim` = the number of odd ones) belongs to it when a
/// foreground cell `v` has `x_a` in `{2 v_a, 2 v_a + 1, 2 v_a + 2}` on every axis.
pub fn euler_characteristic(mask: &[bool], shape: &[usize]) -> i64 {
    let rank = shape.len();
    if rank == 0 || mask.is_empty() {
        return 0;
    }
    // The cells containing x: odd x_a pins v_a = x_a / 2, even x_a allows x_a / 2 - 1 (bit a of
    // `pick` set) and x_a / 2, where inside the image.
    let covered = |x: &[usize]| {
        (0..1usize << rank).any(|pick| {
            let mut i = 0;
            for a in 0..rank {
                let lower = x[a] & 1 == 0 && pick >> a & 1 == 1;
                let v = if lower { (x[a] / 2).wrapping_sub(1) } else { x[a] / 2 };
                if v >= shape[a] {
                    return false;
                }
                i = i * shape[a] + v;
            }
            mask[i]
        })
    };
    // One task per slab of cells with the same first doubled coordinate.
    (0..=2 * shape[0])
        .into_par_iter()
        .map(|x0| {
            let mut x = vec![0usize; rank];
            x[0] = x0;
            let mut chi = 0i64;
            loop {
                if covered(&x) {
                    let dim = x.iter().filter(|&&c| c % 2 == 1).count();
                    chi += if dim % 2 == 0 { 1 } else { -1 };
                }
                let mut a = rank;
                loop {
                    a -= 1;
                    if a == 0 {
                        return chi;
                    }
                    x[a] += 1;
                    if x[a] <= 2 * shape[a] {
                        break;
                    }
                    x[a] = 0;
                }
            }
        })
        .sum()
}

/// Betti numbers of a binary mask (row-major over `shape`, rank 2 or 3): `[b0, b1]` in 2D,
/// `[b0, b1, b2]` in 3D, with the conventions of the module doc.
pub fn betti_of(mask: &[bool], shape: &[usize]) -> Result<Vec<usize>> {
    if !(2..=3).contains(&shape.len()) || shape.iter().product::<usize>() != mask.len() {
        return Err(Error::invalid(
            "betti_numbers",
            format!(
                "expected a 2D or 3D mask of {} cells, found shape {shape:?}",
                mask.len()
            ),
        ));
    }
    let b0 = count_components(mask, &Grid::new(shape, Connectivity::Full), false);
    let background: Vec<bool> = mask.iter().map(|m| !m).collect();
    let enclosed = count_components(&background, &Grid::new(shape, Connectivity::Face), true);
    let chi = euler_characteristic(mask, shape);
    Ok(if shape.len() == 2 {
        vec![b0, enclosed]
    } else {
        let b1 = b0 as i64 + enclosed as i64 - chi;
        vec![
            b0,
            usize::try_from(b1).expect("b1 = b0 + b2 - chi is never negative"),
            enclosed,
        ]
    })
}

/// The foreground of a binary mask tensor: values 0 or 1 (an error names any other value).
pub fn binary_mask(op: &'static str, t: &Tensor) -> Result<Vec<bool>> {
    t.to_vec_f64()
        .into_iter()
        .map(|v| match v {
            0.0 => Ok(false),
            1.0 => Ok(true),
            v => Err(Error::invalid(
                op,
                format!("expected a binary mask (values 0 or 1), found {v}"),
            )),
        })
        .collect()
}

/// Betti numbers of a 2D `(H, W)` or 3D `(D, H, W)` binary mask (values 0 or 1): `[b0, b1]` or
/// `[b0, b1, b2]`, foreground 8-/26-connected, background 4-/6-connected, outside the image background.
pub fn betti_numbers(mask: &Tensor) -> Result<Vec<usize>> {
    betti_of(&binary_mask("betti_numbers", mask)?, mask.shape())
}

/// The Betti-number errors `|b_k(pred) - b_k(target)|` per dimension of two binary masks of the same
/// 2D or 3D shape (the metric of topology-aware segmentation papers).
pub fn betti_errors(pred: &Tensor, target: &Tensor) -> Result<Vec<usize>> {
    if pred.shape() != target.shape() {
        return Err(Error::ShapeMismatch {
            op: "betti_errors",
            expected: format!("a ground truth of the prediction's shape {:?}", pred.shape()),
            found: target.shape().to_vec(),
        });
    }
    let (p, t) = (betti_numbers(pred)?, betti_numbers(target)?);
    Ok(p.iter().zip(&t).map(|(a, b)| a.abs_diff(*b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 3D mask from a function of the coordinates.
    fn volume(n: [usize; 3], f: impl Fn(usize, usize, usize) -> bool) -> Vec<bool> {
        let mut m = Vec::new();
        for z in 0..n[0] {
            for y in 0..n[1] {
                for x in 0..n[2] {
                    m.push(f(z, y, x));
                }
            }
        }
        m
    }

    #[test]
    fn solid_cube_ball() {
        let m = volume([4, 4, 4], |z, y, x| {
            (1..3).contains(&z) && (1..3).contains(&y) && (1..3).contains(&x)
        });
        assert_eq!(betti_of(&m, &[4, 4, 4]).unwrap(), vec![1, 0, 0]);
        assert_eq!(euler_characteristic(&m, &[4, 4, 4]), 1);
    }

    #[test]
    fn hollow_cube_has_a_cavity() {
        let m = volume([5, 5, 5], |z, y, x| {
            let shell = |c: usize| c == 1 || c == 3;
            (1..4).contains(&z) && (1..4).contains(&y) && (1..4).contains(&x) && (shell(z) || shell(y) || shell(x))
        });
        assert_eq!(betti_of(&m, &[5, 5, 5]).unwrap(), vec![1, 0, 1]);
    }

    #[test]
    fn torus_has_a_tunnel() {
        // A square ring in one slice, thickened to two slices.
        let m = volume([4, 5, 5], |z, y, x| {
            (1..3).contains(&z) && (1..4).contains(&y) && (1..4).contains(&x) && !(y == 2 && x == 2)
        });
        assert_eq!(betti_of(&m, &[4, 5, 5]).unwrap(), vec![1, 1, 0]);
    }

    #[test]
    fn diagonal_voxels_touch() {
        let m = volume([2, 2, 2], |z, y, x| z == y && y == x);
        assert_eq!(betti_of(&m, &[2, 2, 2]).unwrap(), vec![1, 0, 0]);
    }

    #[test]
    fn betti_errors_count_the_difference_per_dimension() {
        let ring = [1.0f32, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let dots = [1.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let (p, t) = (
            Tensor::from_slice(&dots, &[3, 3]).unwrap(),
            Tensor::from_slice(&ring, &[3, 3]).unwrap(),
        );
        assert_eq!(betti_errors(&p, &t).unwrap(), vec![3, 1]);
        assert!(betti_errors(&p, &Tensor::from_slice(&ring, &[9, 1]).unwrap()).is_err());
    }

    #[test]
    fn bad_masks_are_errors() {
        assert!(betti_of(&[true; 4], &[4]).is_err());
        assert!(betti_of(&[true; 4], &[2, 3]).is_err());
        let t = Tensor::from_vec(vec![0.0f32, 0.5, 1.0, 0.0], &[2, 2]).unwrap();
        assert!(betti_numbers(&t).unwrap_err().to_string().contains("found 0.5"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// In 2D the hole count (duality) and `b0 - chi` (Euler) are two independent ways to b1.
        #[test]
        fn holes_match_the_euler_characteristic(h in 1usize..9, w in 1usize..9, bits in proptest::collection::vec(any::<bool>(), 64)) {
            let mask = &bits[..h * w];
            let b = betti_of(mask, &[h, w]).unwrap();
            prop_assert_eq!(b[0] as i64 - b[1] as i64, euler_characteristic(mask, &[h, w]));
        }

        /// Any 3D mask: padding it with background changes no Betti number (the outside is
        /// background already), and b1 from the Euler characteristic is never negative.
        #[test]
        fn padding_changes_nothing(n in proptest::collection::vec(2usize..6, 3), bits in proptest::collection::vec(any::<bool>(), 125)) {
            let shape = [n[0], n[1], n[2]];
            let mask = &bits[..n[0] * n[1] * n[2]];
            let padded = volume([n[0] + 2, n[1] + 2, n[2] + 2], |z, y, x| {
                let inside = |c: usize, n: usize| (1..=n).contains(&c);
                inside(z, n[0]) && inside(y, n[1]) && inside(x, n[2]) && mask[((z - 1) * n[1] + y - 1) * n[2] + x - 1]
            });
            prop_assert_eq!(betti_of(mask, &shape).unwrap(), betti_of(&padded, &[n[0] + 2, n[1] + 2, n[2] + 2]).unwrap());
        }
    }
}
