//! Row-major N-D grids: neighbours of a cell under face (cross) or full (cube) connectivity, and
//! disjoint sets over the cells.

/// Which cells are adjacent: sharing a face (4 in 2D, 6 in 3D) or any corner (8 in 2D, 26 in 3D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    Face,
    Full,
}

/// The largest rank a [`Grid`] supports (the topology code works on 2D and 3D images).
const MAX_RANK: usize = 3;

/// A row-major grid of `shape` and the index offsets of one connectivity's neighbourhood.
#[derive(Debug, Clone)]
pub struct Grid {
    pub shape: Vec<usize>,
    strides: Vec<usize>,
    /// Per-axis steps in {-1, 0, 1} of each neighbour.
    steps: Vec<Vec<isize>>,
}

impl Grid {
    /// The grid of `shape` (rank 1 to 3: callers check their input's rank first).
    pub fn new(shape: &[usize], connectivity: Connectivity) -> Grid {
        let rank = shape.len();
        assert!((1..=MAX_RANK).contains(&rank), "grid rank {rank}");
        let mut strides = vec![1usize; rank];
        for a in (0..rank.saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * shape[a + 1];
        }
        let steps = (0..3usize.pow(rank as u32))
            .map(|code| {
                (0..rank)
                    .map(|a| (code / 3usize.pow(a as u32) % 3) as isize - 1)
                    .collect::<Vec<_>>()
            })
            .filter(|s| {
                let moved = s.iter().filter(|&&d| d != 0).count();
                moved > 0 && (connectivity == Connectivity::Full || moved == 1)
            })
            .collect();
        Grid {
            shape: shape.to_vec(),
            strides,
            steps,
        }
    }

    /// The coordinates of cell `i` (the first `rank` entries).
    fn coords(&self, i: usize) -> [usize; MAX_RANK] {
        let mut c = [0; MAX_RANK];
        for (a, (n, s)) in self.shape.iter().zip(&self.strides).enumerate() {
            c[a] = i / s % n;
        }
        c
    }

    /// Whether cell `i` lies on the grid's border (touches the outside through a face).
    pub fn on_border(&self, i: usize) -> bool {
        let c = self.coords(i);
        self.shape.iter().enumerate().any(|(a, &n)| c[a] == 0 || c[a] + 1 == n)
    }

    /// Calls `f` with every neighbour of cell `i` inside the grid.
    pub fn for_neighbors(&self, i: usize, mut f: impl FnMut(usize)) {
        let c = self.coords(i);
        'steps: for step in &self.steps {
            let mut j = 0usize;
            for a in 0..self.shape.len() {
                let x = c[a] as isize + step[a];
                if x < 0 || x >= self.shape[a] as isize {
                    continue 'steps;
                }
                j += x as usize * self.strides[a];
            }
            f(j);
        }
    }
}

/// Disjoint sets with path halving and union by the caller's choice of root.
#[derive(Debug, Clone)]
pub struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    pub fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    pub fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    /// Hangs root `child` under root `root`.
    pub fn attach(&mut self, child: usize, root: usize) {
        self.parent[child] = root;
    }
}

/// The connected components of the `true` cells of `mask` under `grid`'s connectivity, as disjoint
/// sets whose roots are each component's smallest index.
pub fn components(mask: &[bool], grid: &Grid) -> DisjointSets {
    let mut sets = DisjointSets::new(mask.len());
    for i in (0..mask.len()).filter(|&i| mask[i]) {
        grid.for_neighbors(i, |j| {
            if mask[j] {
                let (a, b) = (sets.find(i), sets.find(j));
                if a != b {
                    sets.attach(a.max(b), a.min(b));
                }
            }
        });
    }
    sets
}

/// The number of [`components`] of `mask` that hold no cell `i` with `excluded(i)`.
pub fn count_components_without(mask: &[bool], grid: &Grid, excluded: impl Fn(usize) -> bool) -> usize {
    let mut sets = components(mask, grid);
    let mut touches = vec![false; mask.len()];
    for i in (0..mask.len()).filter(|&i| mask[i] && excluded(i)) {
        let r = sets.find(i);
        touches[r] = true;
    }
    (0..mask.len())
        .filter(|&i| mask[i] && sets.find(i) == i && !touches[i])
        .count()
}

/// The number of connected components of the `true` cells of `mask` under `connectivity`; with
/// `bounded_only`, only those that touch no border cell (components enclosed by the rest).
pub fn count_components(mask: &[bool], grid: &Grid, bounded_only: bool) -> usize {
    count_components_without(mask, grid, |i| bounded_only && grid.on_border(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhood_sizes() {
        let count = |shape: &[usize], c| {
            let g = Grid::new(shape, c);
            let mut n = 0;
            g.for_neighbors(shape.iter().product::<usize>() / 2, |_| n += 1);
            n
        };
        assert_eq!(count(&[3, 3], Connectivity::Face), 4);
        assert_eq!(count(&[3, 3], Connectivity::Full), 8);
        assert_eq!(count(&[3, 3, 3], Connectivity::Face), 6);
        assert_eq!(count(&[3, 3, 3], Connectivity::Full), 26);
        assert_eq!(count(&[1, 3], Connectivity::Full), 2);
    }

    #[test]
    fn diagonal_pixels_are_one_component_only_with_full_connectivity() {
        let mask = [true, false, false, true];
        assert_eq!(
            count_components(&mask, &Grid::new(&[2, 2], Connectivity::Full), false),
            1
        );
        assert_eq!(
            count_components(&mask, &Grid::new(&[2, 2], Connectivity::Face), false),
            2
        );
        assert_eq!(
            count_components(&mask, &Grid::new(&[2, 2], Connectivity::Face), true),
            0
        );
    }
}
