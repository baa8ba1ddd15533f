//! General matrix multiply over strided matrices.
//!
//! `C[i, j] = beta * C[i, j] + sum_p A[i, p] * B[p, j]` for `i < m`, `j < n`, `p < k`, where each
//! matrix is addressed through an offset and a row and column stride, so transposed operands cost
//! nothing: `A^T` is `A` with its strides swapped.
//!
//! The fast path is the `gemm` crate (runtime-dispatched AVX-512 / AVX2+FMA / NEON micro-kernels,
//! cache blocking, rayon threads); [`gemm_reference`] is the triple loop it is tested against.

/// A strided view of an `rows x cols` matrix inside a buffer: element `(r, c)` is at
/// `offset + r * row_stride + c * col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatLayout {
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl MatLayout {
    /// A dense row-major `rows x cols` matrix starting at `offset`.
    pub fn row_major(rows: usize, cols: usize, offset: usize) -> Self {
        Self {
            rows,
            cols,
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same elements seen as the transposed matrix.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            offset: self.offset,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// One past the largest index the view touches (0 for an empty matrix).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }

    fn at(&self, r: usize, c: usize) -> usize {
        self.offset + r * self.row_stride + c * self.col_stride
    }
}

/// Element types the GEMM supports.
pub trait GemmElement:
    Copy + Send + Sync + PartialEq + 'static + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
}
impl GemmElement for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}
impl GemmElement for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

fn check_shapes(a: &MatLayout, b: &MatLayout, c: &MatLayout, a_len: usize, b_len: usize, c_len: usize) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!((c.rows, c.cols), (a.rows, b.cols), "gemm: output shape differs");
    assert!(
        a.end() <= a_len && b.end() <= b_len && c.end() <= c_len,
        "gemm: view out of bounds"
    );
}

/// `C = beta * C + A B` with the `gemm` crate; with `beta == 0` the old `C` is never read. `threads` > 1 splits the work over rayon threads;
/// callers that already run many small products in parallel pass 1.
///
/// Panics when the layouts disagree with each other or with the buffers (an internal invariant:
/// `seg-tensor` checks user shapes before calling).
pub fn gemm<T: GemmElement>(
    a: &[T],
    a_layout: MatLayout,
    b: &[T],
    b_layout: MatLayout,
    c: &mut [T],
    c_layout: MatLayout,
    beta: T,
    threads: usize,
) {
    check_shapes(&a_layout, &b_layout, &c_layout, a.len(), b.len(), c.len());
    let (m, n, k) = (c_layout.rows, c_layout.cols, a_layout.cols);
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let read_dst = beta != T::ZERO;
    // SAFETY: check_shapes proved that every index the views address lies inside its buffer, and `c`
    // is borrowed mutably, so the destination cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().add(c_layout.offset),
            c_layout.col_stride as isize,
            c_layout.row_stride as isize,
            read_dst,
            a.as_ptr().add(a_layout.offset),
            a_layout.col_stride as isize,
            a_layout.row_stride as isize,
            b.as_ptr().add(b_layout.offset),
            b_layout.col_stride as isize,
            b_layout.row_stride as isize,
            beta,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The triple loop `C = beta * C + A B`, accumulated in `T` in order `p = 0, 1, ...`.
pub fn gemm_reference<T: GemmElement>(
    a: &[T],
    a_layout: MatLayout,
    b: &[T],
    b_layout: MatLayout,
    c: &mut [T],
    c_layout: MatLayout,
    beta: T,
) {
    check_shapes(&a_layout, &b_layout, &c_layout, a.len(), b.len(), c.len());
    for i in 0..c_layout.rows {
        for j in 0..c_layout.cols {
            let mut acc = T::ZERO;
            for p in 0..a_layout.cols {
                acc = acc + a[a_layout.at(i, p)] * b[b_layout.at(p, j)];
            }
            let dst = &mut c[c_layout.at(i, j)];
            *dst = if beta == T::ZERO { acc } else { beta * *dst + acc };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1009) as f64 / 504.5) - 1.0)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_reference(m in 1usize..40, n in 1usize..40, k in 1usize..40,
                             ta in any::<bool>(), tb in any::<bool>(), beta in prop_oneof![Just(0.0), Just(1.0), Just(0.5)]) {
            let a_layout = if ta { MatLayout::row_major(k, m, 3).t() } else { MatLayout::row_major(m, k, 3) };
            let b_layout = if tb { MatLayout::row_major(n, k, 1).t() } else { MatLayout::row_major(k, n, 1) };
            let c_layout = MatLayout::row_major(m, n, 2);
            let a = values(m * k + 3, 1);
            let b = values(k * n + 1, 2);
            let mut fast = values(m * n + 2, 3);
            let mut slow = fast.clone();
            gemm(&a, a_layout, &b, b_layout, &mut fast, c_layout, beta, 2);
            gemm_reference(&a, a_layout, &b, b_layout, &mut slow, c_layout, beta);
            for (x, y) in fast.iter().zip(&slow) {
                prop_assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn zero_beta_ignores_nan_in_output() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let mut c = [f32::NAN; 4];
        let l = MatLayout::row_major(2, 2, 0);
        gemm(&a, l, &a, l, &mut c, l, 0.0, 1);
        assert_eq!(c, [7.0, 10.0, 15.0, 22.0]);
    }
}
