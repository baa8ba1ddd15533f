//! CPU kernels: threads with rayon, SIMD chosen at run time.

pub mod conv;
pub mod conv_direct;
pub mod gemm;
pub mod interpolate;
pub mod label_softmax;
pub mod norm;
pub mod pool;
pub mod selective_scan;
pub mod simd;
pub mod window_attention;

/// A buffer that parallel tasks write through at places no two tasks share (each user says why
/// its places are disjoint where it writes).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(*mut T, usize);
// SAFETY: writes go through `write`, whose callers guarantee disjoint places per task.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    pub(crate) fn new(buffer: &mut [T]) -> Self {
        Self(buffer.as_mut_ptr(), buffer.len())
    }

    /// Copies `values` to `offset..`.
    ///
    /// # Safety
    /// No other task reads or writes `offset..offset + values.len()` meanwhile.
    pub(crate) unsafe fn write(self, offset: usize, values: &[T])
    where
        T: Copy,
    {
        assert!(offset + values.len() <= self.1, "SharedOut: write past the end");
        std::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(offset), values.len());
    }
}

/// Deterministic test inputs in [-1, 1), without a random-number dependency.
#[cfg(test)]
pub(crate) mod test_values {
    pub fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1013) as f64 / 506.5) - 1.0)
            .collect()
    }
}
