//! The error type of every fallible operation in `seg`.

use crate::{DType, Device};

/// What went wrong, with what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: expected {expected}, found {found:?}")]
    ShapeMismatch {
        op: &'static str,
        expected: String,
        found: Vec<usize>,
    },

    #[error("{op}: shapes {lhs:?} and {rhs:?} cannot be broadcast together")]
    Broadcast {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },

    #[error("{op}: dtype {found:?} is not supported here (expected {expected})")]
    DType {
        op: &'static str,
        expected: &'static str,
        found: DType,
    },

    #[error("{op}: expected {} for every operand (the first operand's dtype), found {rhs:?}", lhs.name())]
    DTypeMismatch { op: &'static str, lhs: DType, rhs: DType },

    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank}")]
    DimOutOfRange { op: &'static str, dim: isize, rank: usize },

    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    #[error("{op}: operands on {lhs} and {rhs}; move them to one device with to_device")]
    DeviceMismatch { op: &'static str, lhs: Device, rhs: Device },

    #[error("{op}: not implemented on {device}; move the operands with to_device(Device::Cpu)")]
    Unsupported { op: &'static str, device: Device },

    #[error("CUDA: {0}")]
    Cuda(#[from] seg_kernels::cuda::CudaError),

    #[error("backward: {0}")]
    Backward(String),

    #[error("{path}: {msg}")]
    Format { path: String, msg: String },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A bad argument to `op`, described by `msg`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }
}
