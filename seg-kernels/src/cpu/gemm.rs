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

/// A matrix to read: a buffer and the layout of the matrix inside it.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub layout: MatLayout,
}

/// A matrix to write: a buffer and the layout of the matrix inside it.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub layout: MatLayout,
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

fn check_shapes<T>(a: &MatRef<T>, b: &MatRef<T>, c: &MatMut<T>) {
    let (al, bl, cl) = (a.layout, b.layout, c.layout);
    assert_eq!(al.cols, bl.rows, "gemm: inner dimensions differ");
    assert_eq!((cl.rows, cl.cols), (al.rows, bl.cols), "gemm: output shape differs");
    assert!(
        al.end() <= a.data.len() && bl.end() <= b.data.len() && cl.end() <= c.data.len(),
        "gemm: view out of bounds"
    );
}

/// `C = beta * C + A B` with the `gemm` crate; with `beta == 0` the old `C` is never read. `threads` > 1 splits the work over rayon threads;
/// callers that already run many small products in parallel pass 1.
///
/// Panics when the layouts disagree with each other or with the buffers (an internal invariant:
/// `seg-tensor` checks user shapes before calling).
pub fn gemm<T: GemmElement>(a: MatRef<T>, b: MatRef<T>, c: MatMut<T>, beta: T, threads: usize) {
    check_shapes(&a, &b, &c);
    let (a_layout, b_layout, c_layout) = (a.layout, b.layout, c.layout);
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
            c.data.as_mut_ptr().add(c_layout.offset),
            c_layout.col_stride as isize,
            c_layout.row_stride as isize,
            read_dst,
            a.data.as_ptr().add(a_layout.offset),
            a_layout.col_stride as isize,
            a_layout.row_stride as isize,
            b.data.as_ptr().add(b_layout.offset),
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
pub fn gemm_reference<T: GemmElement>(a: MatRef<T>, b: MatRef<T>, c: MatMut<T>, beta: T) {
    check_shapes(&a, &b, &c);
    for i in 0..c.layout.rows {
        for j in 0..c.layout.cols {
            let mut acc = T::ZERO;
            for p in 0..a.layout.cols {
                acc = acc + a.data[a.layout.at(i, p)] * b.data[b.layout.at(p, j)];
            }
            let dst = &mut c.data[c.layout.at(i, j)];
            *dst = if beta == T::ZERO { acc } else { beta * *dst + acc };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

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
            let (a, b) = (MatRef { data: &a, layout: a_layout }, MatRef { data: &b, layout: b_layout });
            gemm(a, b, MatMut { data: &mut fast, layout: c_layout }, beta, 2);
            gemm_reference(a, b, MatMut { data: &mut slow, layout: c_layout }, beta);
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
        let a = MatRef {
            data: &a[..],
            layout: l,
        };
        gemm(
            a,
            a,
            MatMut {
                data: &mut c,
                layout: l,
            },
            0.0,
            1,
        );
        assert_eq!(c, [7.0, 10.0, 15.0, 22.0]);
    }
}
