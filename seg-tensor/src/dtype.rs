//! Element types: f32 for compute, f64 for gradient checks, f16/bf16 for storage, i64/u8 for labels
//! and masks.

use half::{bf16, f16};

use seg_kernels::cuda::{CudaElement, CudaSlice};

use crate::storage::{CpuStorage, CudaStorage};

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I64,
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 => 1,
        }
    }

    /// The lower-case name PyTorch uses (`f32` is `torch.float32`'s short form).
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// Whether ops compute in this type (f32, f64); f16/bf16 are converted first.
    pub fn is_compute_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// A Rust type that can be the element of a tensor.
pub trait Element: CudaElement + Copy + Send + Sync + PartialOrd + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn wrap(data: Vec<Self>) -> CpuStorage;
    fn unwrap(storage: &CpuStorage) -> Option<&[Self]>;
    fn wrap_cuda(data: CudaSlice<Self>) -> CudaStorage;
    fn unwrap_cuda(storage: &CudaStorage) -> Option<&CudaSlice<Self>>;
    fn as_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
            fn unwrap(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap_cuda(data: CudaSlice<Self>) -> CudaStorage {
                CudaStorage::$variant(data)
            }
            fn unwrap_cuda(storage: &CudaStorage) -> Option<&CudaSlice<Self>> {
                match storage {
                    CudaStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn as_f64(self) -> f64 {
                $to(self)
            }
            fn from_f64(x: f64) -> Self {
                $from(x)
            }
        }
    };
}
element!(f16, F16, f16::to_f64, f16::from_f64);
element!(bf16, BF16, bf16::to_f64, bf16::from_f64);
element!(f32, F32, |x: f32| x as f64, |x: f64| x as f32);
element!(f64, F64, |x: f64| x, |x: f64| x);
element!(i64, I64, |x: i64| x as f64, |x: f64| x as i64);
element!(u8, U8, |x: u8| x as f64, |x: f64| x as u8);

/// The floating-point types ops compute in (f32, f64).
pub trait Float: Element + num_traits::Float + num_traits::FloatConst + seg_kernels::cpu::gemm::GemmElement {
    /// The error function.
    fn erf(self) -> Self;
}

impl Float for f32 {
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Float for f64 {
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// Runs `$body` with the type alias `$T` bound to the compute float type of `$dtype` (f32 or f64),
/// or returns a dtype error for `$op`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            found => Err($crate::Error::DType {
                op: $op,
                expected: "f32 or f64",
                found,
            }),
        }
    };
}

/// Runs `$body` with the type alias `$T` bound to the element type of `$dtype` (any dtype).
#[macro_export]
#[doc(hidden)]
macro_rules! with_element {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F16 => {
                type $T = $crate::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = $crate::half::bf16;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
        }
    };
}

/// Runs `$body` with the type alias `$T` bound to the element type of `$dtype` when it is one that
/// comparisons support (f32, f64, i64, u8), or returns a dtype error for `$op`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_comparable {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            found => Err($crate::Error::DType {
                op: $op,
                expected: "f32, f64, i64 or u8",
                found,
            }),
        }
    };
}
