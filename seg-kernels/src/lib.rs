//! Compute kernels of `seg` over plain buffers.
//!
//! Every kernel is a plain function over slices with an explicit parameter struct (shapes, strides),
//! with a scalar reference implementation beside the fast one and a property test that holds the fast
//! one to the reference. There is no tensor type here: `seg-tensor` wraps these kernels with shapes,
//! dtypes and autodiff.
//!
//! - [`cpu`]: SIMD and rayon kernels for the CPU.
//! - [`cuda`]: the sources of `cuda/`, compiled at run time by NVRTC, and their launchers.

pub mod cpu;
pub mod cuda;
