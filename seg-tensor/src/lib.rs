//! `seg-tensor`: the `Tensor` of `seg`, its ops and reverse-mode autodiff.
//!
//! ```
//! use seg_tensor::{DType, Tensor};
//!
//! # fn main() -> seg_tensor::Result<()> {
//! let x = Tensor::randn(&[4, 3], 0, DType::F32)?.requires_grad();
//! let w = Tensor::randn(&[2, 3], 1, DType::F32)?.requires_grad();
//! let loss = x.linear(&w, None)?.relu()?.sum_all()?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().shape(), &[2, 3]);
//! # Ok(())
//! # }
//! ```

mod autograd;
mod checkpoint;
mod cuda;
mod dtype;
mod error;
pub mod gradcheck;
mod host_memory;
pub mod layout;
mod ops;
mod random;
mod storage;
mod tensor;

pub use autograd::{is_grad_enabled, no_grad, Backward, Gradients};
pub use checkpoint::{checkpoint, CheckpointFn};
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use half;
pub use host_memory::retain_freed_memory;
pub use ops::{
    AvgPoolOptions, BatchNormStats, ConvOptions, ConvPadding, ConvTransposeOptions, InterpolateMode,
    InterpolateOptions, MaxPoolOptions, PadMode, RelativeBias, ScanOptions, Unary,
};
pub use storage::{memory, CpuStorage, CudaStorage, Device};
pub use tensor::{Tensor, TensorId};
