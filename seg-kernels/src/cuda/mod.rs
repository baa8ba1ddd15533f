//! CUDA launchers: the sources in the workspace's `cuda/` folder, compiled at run time by NVRTC for the
//! device at hand (no CUDA toolkit at build time), and the functions that launch them.
//!
//! Nothing here panics when CUDA is missing: [`Gpu::new`] checks for the driver library, a device and
//! libnvrtc first and returns a [`CudaError`] that says which one is absent.

mod compile;
pub mod conv;
mod error;
mod gpu;
mod launch;
pub mod selective_scan;
mod sources;
pub mod window_attention;

pub use compile::{compile, nvrtc_present, Compiled};
pub use error::CudaError;
pub use gpu::Gpu;
pub use launch::CudaFloat;
pub use sources::{Source, CONV, SELECTIVE_SCAN, SOURCES, WINDOW_ATTENTION};
