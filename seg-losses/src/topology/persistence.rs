//! Sublevel-set persistent homology of the cubical complex on top-dimensional cells.
//!
//! For a function `f` on the pixels (2D) or voxels (3D) of an image, the filtration is
//! `X_t = union of the closed cells c with f(c) <= t`, so cells meeting at a corner are connected
//! (8-connectivity in 2D, 26 in 3D). Cells enter in the total order of `(f(c), c)`.
//!
//! - H0 (2D and 3D): union-find over the cells in that order with the elder rule: when cell `c`
//!   joins two components, the one whose oldest cell came later dies, giving the pair
//!   `(f(birth cell), f(c))`; components alive at the end are essential, `(f(min), +inf)`.
//! - H1 (2D) by Alexander duality: a hole of `X_t` is a bounded 4-connected component of `{f > t}`.
//!   It is H0 of the superlevel filtration of `f` on the 4-connected dual, with the outside of the
//!   image as one extra, oldest cell: cells enter in the reverse order, and when cell `c` joins two
//!   components the younger one (its first cell `m`, the hole's maximum) dies, giving the H1 pair
//!   `(f(c), f(m))`: the hole is born when `c` closes it and dies when its last cell `m` fills it.
//!
//! Pairs of zero persistence are left out. Each dimension's pairs are sorted with essential classes
//! first, then by persistence `death - birth` descending, ties by birth ascending. Each pair keeps its
//! critical cells (flat indices), through which the topology loss differentiates.

use seg_tensor::{Error, Result, Tensor};

use super::grid::{Connectivity, DisjointSets, Grid};

/// One dot of a persistence diagram and its critical cells: `birth = f[birth_cell]`, and
/// `death = f[death_cell]`, or `+inf` with no death cell for an essential class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersistencePair {
    pub birth: f64,
    pub death: f64,
    pub birth_cell: usize,
    pub death_cell: Option<usize>,
}

impl PersistencePair {
    pub fn persistence(&self) -> f64 {
        self.death - self.birth
    }
}

/// The pairs of each homology dimension: `[H0, H1]` for a 2D image, `[H0]` for a 3D one.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistenceDiagram {
    pub by_dim: Vec<Vec<PersistencePair>>,
}

/// The union-find of one filtration: the oldest cell (lowest position in the filtration order) of each
/// root's component.
struct Components {
    sets: DisjointSets,
    oldest: Vec<usize>,
}

impl Components {
    /// Joins the components of `a` and `b`; returns the oldest cell of the younger one when they
    /// were distinct. `position[c]` is cell `c`'s place in the filtration order.
    fn merge(&mut self, a: usize, b: usize, position: &[usize]) -> Option<usize> {
        let (ra, rb) = (self.sets.find(a), self.sets.find(b));
        if ra == rb {
            return None;
        }
        let (old, young) = if position[self.oldest[ra]] < position[self.oldest[rb]] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.sets.attach(young, old);
        Some(self.oldest[young])
    }
}

/// Sorts by persistence descending (essential classes first), ties by birth ascending.
fn sort_pairs(pairs: &mut [PersistencePair]) {
    pairs.sort_by(|a, b| {
        b.persistence()
            .total_cmp(&a.persistence())
            .then(a.birth.total_cmp(&b.birth))
    });
}

/// H0 of the sublevel filtration with full connectivity (see the module doc).
fn h0(f: &[f64], grid: &Grid, order: &[usize], position: &[usize]) -> Vec<PersistencePair> {
    let n = f.len();
    let mut comps = Components {
        sets: DisjointSets::new(n),
        oldest: (0..n).collect(),
    };
    let mut active = vec![false; n];
    let mut pairs = Vec::new();
    for &c in order {
        active[c] = true;
        grid.for_neighbors(c, |j| {
            if active[j] {
                if let Some(m) = comps.merge(c, j, position) {
                    if f[c] > f[m] {
                        pairs.push(PersistencePair {
                            birth: f[m],
                            death: f[c],
                            birth_cell: m,
                            death_cell: Some(c),
                        });
                    }
                }
            }
        });
    }
    for c in 0..n {
        if comps.sets.find(c) == c {
            let m = comps.oldest[c];
            pairs.push(PersistencePair {
                birth: f[m],
                death: f64::INFINITY,
                birth_cell: m,
                death_cell: None,
            });
        }
    }
    sort_pairs(&mut pairs);
    pairs
}

/// H1 of a 2D sublevel filtration by duality (see the module doc): cell `n` is the outside.
fn h1_by_duality(f: &[f64], shape: &[usize], order: &[usize], position: &[usize]) -> Vec<PersistencePair> {
    let n = f.len();
    let grid = Grid::new(shape, Connectivity::Face);
    // In the dual, later cells are older; the outside is the oldest of all.
    let mut dual_position: Vec<usize> = position.iter().map(|p| n - p).collect();
    dual_position.push(0);
    let mut comps = Components {
        sets: DisjointSets::new(n + 1),
        oldest: (0..=n).collect(),
    };
    let mut active = vec![false; n];
    let mut pairs = Vec::new();
    for &c in order.iter().rev() {
        active[c] = true;
        let mut join = |j: usize, comps: &mut Components| {
            if let Some(m) = comps.merge(c, j, &dual_position) {
                if f[m] > f[c] {
                    pairs.push(PersistencePair {
                        birth: f[c],
                        death: f[m],
                        birth_cell: c,
                        death_cell: Some(m),
                    });
                }
            }
        };
        if grid.on_border(c) {
            join(n, &mut comps);
        }
        grid.for_neighbors(c, |j| {
            if active[j] {
                join(j, &mut comps);
            }
        });
    }
    sort_pairs(&mut pairs);
    pairs
}

/// The persistence diagram of `f` (row-major over `shape`, 2D or 3D; no NaN): `[H0, H1]` in 2D,
/// `[H0]` in 3D, as described in the module doc.
pub fn persistence_of(f: &[f64], shape: &[usize]) -> Result<PersistenceDiagram> {
    if !(2..=3).contains(&shape.len()) || shape.iter().product::<usize>() != f.len() || f.is_empty() {
        return Err(Error::invalid(
            "persistence_diagram",
            format!(
                "expected a non-empty 2D or 3D image of {} cells, found shape {shape:?}",
                f.len()
            ),
        ));
    }
    if let Some(i) = f.iter().position(|v| v.is_nan()) {
        return Err(Error::invalid(
            "persistence_diagram",
            format!("expected finite or infinite values, found NaN at cell {i}"),
        ));
    }
    let mut order: Vec<usize> = (0..f.len()).collect();
    order.sort_by(|&a, &b| f[a].total_cmp(&f[b]).then(a.cmp(&b)));
    let mut position = vec![0; f.len()];
    for (p, &c) in order.iter().enumerate() {
        position[c] = p;
    }
    let mut by_dim = vec![h0(f, &Grid::new(shape, Connectivity::Full), &order, &position)];
    if shape.len() == 2 {
        by_dim.push(h1_by_duality(f, shape, &order, &position));
    }
    Ok(PersistenceDiagram { by_dim })
}

/// The sublevel-set persistence diagram of a 2D `(H, W)` or 3D `(D, H, W)` function on the pixels or
/// voxels (see the module doc): `[H0, H1]` in 2D, `[H0]` in 3D, each pair with its critical cells.
pub fn persistence_diagram(f: &Tensor) -> Result<PersistenceDiagram> {
    persistence_of(&f.to_vec_f64(), f.shape())
}

#[cfg(test)]
mod tests {
    use super::super::grid::{components, count_components, count_components_without};
    use super::*;
    use proptest::prelude::*;

    /// Brute force persistent Betti numbers `beta^{s,t}` for `s <= t`: H0, the components of
    /// `X_t` that meet `X_s`; H1 (2D), the bounded 4-components of `{f > s}` holding a value `> t`.
    fn persistent_betti(f: &[f64], shape: &[usize], s: f64, t: f64) -> (usize, usize) {
        let full = Grid::new(shape, Connectivity::Full);
        let xt: Vec<bool> = f.iter().map(|&v| v <= t).collect();
        let mut sets = components(&xt, &full);
        let mut meets = vec![false; f.len()];
        for i in (0..f.len()).filter(|&i| f[i] <= s) {
            let r = sets.find(i);
            meets[r] = true;
        }
        let b0 = (0..f.len()).filter(|&i| xt[i] && sets.find(i) == i && meets[i]).count();
        let b1 = if shape.len() == 2 {
            let face = Grid::new(shape, Connectivity::Face);
            let above_s: Vec<bool> = f.iter().map(|&v| v > s).collect();
            let above_t: Vec<bool> = f.iter().map(|&v| v > t).collect();
            // All bounded components of {f > s} minus those with no value > t.
            let bounded_without_t = count_components_without(&above_s, &face, |i| above_t[i] || face.on_border(i));
            count_components(&above_s, &face, true) - bounded_without_t
        } else {
            0
        };
        (b0, b1)
    }

    fn from_pairs(pairs: &[PersistencePair], s: f64, t: f64) -> usize {
        pairs.iter().filter(|p| p.birth <= s && p.death > t).count()
    }

    fn image() -> impl Strategy<Value = (Vec<usize>, Vec<f64>)> {
        prop_oneof![
            proptest::collection::vec(1usize..7, 2),
            proptest::collection::vec(1usize..4, 3)
        ]
        .prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            // Few distinct values, so that ties are common.
            (Just(shape), proptest::collection::vec((0u8..6).prop_map(f64::from), n))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn diagram_matches_brute_force_persistent_betti_numbers((shape, f) in image()) {
            let d = persistence_of(&f, &shape).unwrap();
            let mut levels = f.clone();
            levels.sort_by(f64::total_cmp);
            levels.dedup();
            for (k, &s) in levels.iter().enumerate() {
                for &t in &levels[k..] {
                    let (b0, b1) = persistent_betti(&f, &shape, s, t);
                    prop_assert_eq!(from_pairs(&d.by_dim[0], s, t), b0, "H0 at s={} t={}", s, t);
                    if shape.len() == 2 {
                        prop_assert_eq!(from_pairs(&d.by_dim[1], s, t), b1, "H1 at s={} t={}", s, t);
                    }
                }
            }
            for pairs in &d.by_dim {
                for p in pairs {
                    prop_assert_eq!(p.birth, f[p.birth_cell]);
                    prop_assert_eq!(p.death, p.death_cell.map_or(f64::INFINITY, |c| f[c]));
                    prop_assert!(p.persistence() > 0.0);
                }
                for w in pairs.windows(2) {
                    prop_assert!(w[0].persistence() > w[1].persistence()
                        || (w[0].persistence() == w[1].persistence() && w[0].birth <= w[1].birth));
                }
            }
        }
    }

    #[test]
    fn a_ring_has_one_hole() {
        // A low ring (0) around a high centre (5), all inside a middle-valued border (2).
        let f = [
            2.0, 2.0, 2.0, 2.0, 2.0, //
            2.0, 0.0, 0.0, 0.0, 2.0, //
            2.0, 0.0, 5.0, 0.0, 2.0, //
            2.0, 0.0, 0.0, 0.0, 2.0, //
            2.0, 2.0, 2.0, 2.0, 2.0,
        ];
        let d = persistence_of(&f, &[5, 5]).unwrap();
        assert_eq!(d.by_dim[0].len(), 1);
        assert_eq!((d.by_dim[0][0].birth, d.by_dim[0][0].death), (0.0, f64::INFINITY));
        assert_eq!(d.by_dim[1].len(), 1);
        let hole = d.by_dim[1][0];
        assert_eq!((hole.birth, hole.death, hole.death_cell), (0.0, 5.0, Some(12)));
    }

    #[test]
    fn bad_images_are_errors() {
        assert!(persistence_of(&[1.0; 4], &[4]).is_err());
        assert!(persistence_of(&[1.0, f64::NAN, 0.0, 0.0], &[2, 2]).is_err());
    }
}
