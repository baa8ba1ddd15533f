//! The view descriptor every kernel reads its inputs through, and the element types kernels take.

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use half::{bf16, f16};

use super::CudaError;

/// Most axes a view handed to a kernel may have (`MAX_RANK` in `cuda/common.cuh`).
pub const MAX_RANK: usize = 8;

/// A tensor view for a kernel: element `i` (row-major over `shape`) is at
/// `offset + sum_d idx_d(i) * strides[d]`. Same layout as `struct Strided` in `cuda/common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    shape: [i64; MAX_RANK],
    strides: [i64; MAX_RANK],
    offset: i64,
    rank: i32,
    pad: i32,
}

// SAFETY: a plain `#[repr(C)]` struct of integers that matches the kernels' `Strided`.
unsafe impl DeviceRepr for Strided {}

impl Strided {
    /// A view of `shape` with `strides` (in elements) from `offset`; at most [`MAX_RANK`] axes.
    pub fn new(shape: &[usize], strides: &[usize], offset: usize) -> Result<Self, CudaError> {
        if shape.len() > MAX_RANK || strides.len() != shape.len() {
            return Err(CudaError::Unsupported(format!(
                "a view of rank {} (CUDA kernels take at most {MAX_RANK} axes)",
                shape.len()
            )));
        }
        let mut s = Strided {
            shape: [1; MAX_RANK],
            strides: [0; MAX_RANK],
            offset: offset as i64,
            rank: shape.len() as i32,
            pad: 0,
        };
        for (d, (&n, &st)) in shape.iter().zip(strides).enumerate() {
            s.shape[d] = n as i64;
            s.strides[d] = st as i64;
        }
        Ok(s)
    }

    /// Number of elements of the view.
    pub fn numel(&self) -> usize {
        self.shape[..self.rank as usize].iter().product::<i64>() as usize
    }

    /// The dense row-major view of this view's shape at offset 0.
    pub fn dense(&self) -> Self {
        let shape: Vec<usize> = self.shape[..self.rank as usize].iter().map(|&n| n as usize).collect();
        Self::contiguous(&shape).expect("same rank")
    }

    /// The dense row-major view of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Result<Self, CudaError> {
        let mut strides = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        Self::new(shape, &strides, 0)
    }
}

/// An element type that CUDA buffers hold; `NAME` is the kernels' suffix for it.
pub trait CudaElement: DeviceRepr + ValidAsZeroBits + Copy + Unpin + Send + Sync + 'static {
    const NAME: &'static str;
    /// The same bits as the unsigned integer type `copy_b*`/`fill_b*` move.
    type Bits: DeviceRepr + Copy;
    const BITS: u32;
    fn to_bits(self) -> Self::Bits;
}

macro_rules! element {
    ($t:ty, $name:literal, $bits:ty, $n:literal, $to:expr) => {
        impl CudaElement for $t {
            const NAME: &'static str = $name;
            type Bits = $bits;
            const BITS: u32 = $n;
            fn to_bits(self) -> $bits {
                $to(self)
            }
        }
    };
}
element!(f16, "f16", u16, 16, f16::to_bits);
element!(bf16, "bf16", u16, 16, bf16::to_bits);
element!(f32, "f32", u32, 32, f32::to_bits);
element!(f64, "f64", u64, 64, f64::to_bits);
element!(i64, "i64", u64, 64, |x: i64| x as u64);
element!(u8, "u8", u8, 8, |x: u8| x);

/// The types the compute kernels are instantiated for (f32, f64).
pub trait CudaFloat: CudaElement {
    fn of(x: f64) -> Self;
}

impl CudaFloat for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
}

impl CudaFloat for f64 {
    fn of(x: f64) -> Self {
        x
    }
}
