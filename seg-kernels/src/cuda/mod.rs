//! CUDA launchers: the sources in the workspace's `cuda/` folder, compiled at run time by NVRTC for the
//! device at hand (no CUDA toolkit at build time), and the functions that launch them.
//!
//! Nothing here panics when CUDA is missing: [`Gpu::new`] checks for the driver library, a device and
//! libnvrtc first and returns a [`CudaError`] that says which one is absent.

mod blas;
mod compile;
pub mod conv;
mod elementwise;
mod error;
mod gpu;
mod index;
pub mod interpolate;
mod launch;
pub mod norm;
pub mod pad;
pub mod pool;
mod reduce;
pub mod selective_scan;
mod sources;
mod strided;
pub mod window_attention;

pub use blas::matmul;
pub use compile::{compile, nvrtc_present, Compiled};
pub use elementwise::{
    binary, binary_backward, cast, compare, copy, fill, gather, select, unary, unary_backward, BinaryKernel,
    CompareKernel, UnaryKernel,
};
pub use error::CudaError;
pub use gpu::{Gpu, PoolBytes};
pub use index::{gather_along, scatter_add_along};
pub use launch::StorageFloat;
pub use reduce::{arg_rows, reduce_rows, softmax, softmax_backward, ReduceKernel};
pub use sources::{Source, CONV, NORM, SELECTIVE_SCAN, SOURCES, WINDOW_ATTENTION};
pub use strided::{CudaElement, CudaFloat, Strided, MAX_RANK};

/// cudarc's buffer and view types, re-exported for the crates that hold device buffers.
pub use cudarc::driver::{CudaSlice, CudaView};
