//! What can go wrong on the way to a CUDA kernel.

use std::fmt;

/// A CUDA failure, with what a user needs to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaError {
    /// `libcuda` (the NVIDIA driver) could not be loaded.
    NoDriver,
    /// The driver is there but the ordinal names no device.
    NoDevice { ordinal: usize, count: usize },
    /// `libnvrtc` could not be loaded.
    NoNvrtc,
    /// NVRTC rejected a source, or warned about it.
    Compile { source: String, arch: String, log: String },
    /// A driver or cuBLAS call failed.
    Call { what: String, message: String },
    /// A launcher was given arguments that do not fit (sizes, geometry); found before any CUDA call.
    Argument { op: String, message: String },
    /// An index tensor held a value outside the axis it indexes.
    IndexOutOfRange { op: &'static str, size: usize },
    /// Something the CUDA kernels do not handle (named in the message).
    Unsupported(String),
}

impl CudaError {
    /// Bad arguments to launcher `op`.
    pub fn argument(op: &str, message: impl Into<String>) -> Self {
        CudaError::Argument {
            op: op.to_string(),
            message: message.into(),
        }
    }

    /// A failed driver or library call `what`.
    pub fn call(what: &str, err: impl fmt::Debug) -> Self {
        CudaError::Call {
            what: what.to_string(),
            message: format!("{err:?}"),
        }
    }
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::NoDriver => write!(f, "no NVIDIA driver: libcuda could not be loaded"),
            CudaError::NoDevice { ordinal, count } => {
                write!(f, "no CUDA device {ordinal}: the driver sees {count} device(s)")
            }
            CudaError::NoNvrtc => write!(
                f,
                "libnvrtc could not be loaded: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` \
                 and put its lib/ folder on LD_LIBRARY_PATH"
            ),
            CudaError::Compile { source, arch, log } => {
                write!(f, "NVRTC could not compile {source} for {arch} cleanly:\n{log}")
            }
            CudaError::Call { what, message } => write!(f, "{what} failed: {message}"),
            CudaError::Argument { op, message } => write!(f, "{op}: {message}"),
            CudaError::IndexOutOfRange { op, size } => {
                write!(f, "{op}: an index is out of range for an axis of size {size}")
            }
            CudaError::Unsupported(what) => write!(f, "not supported on CUDA: {what}"),
        }
    }
}

impl std::error::Error for CudaError {}
