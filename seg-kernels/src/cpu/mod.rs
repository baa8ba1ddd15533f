//! CPU kernels: threads with rayon, SIMD chosen at run time.

pub mod conv;
pub mod gemm;
