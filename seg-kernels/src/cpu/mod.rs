//! CPU kernels: threads with rayon, SIMD chosen at run time.

pub mod conv;
pub mod gemm;
pub mod norm;

/// Deterministic test inputs in [-1, 1), without a random-number dependency.
#[cfg(test)]
pub(crate) mod test_values {
    pub fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1013) as f64 / 506.5) - 1.0)
            .collect()
    }
}
