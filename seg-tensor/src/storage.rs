//! Buffers that hold tensor elements, the devices they live on, and the accounting of their memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use half::{bf16, f16};

use crate::DType;

/// Where a tensor's storage lives. The CUDA variant arrives with the CUDA backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    Cpu,
}

/// A dense buffer of one element type in host memory.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bytes(&self) -> usize {
        self.len() * self.dtype().size_in_bytes()
    }
}

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A tensor buffer; counts its bytes in [`memory`] while it lives.
#[derive(Debug)]
pub struct Storage {
    data: CpuStorage,
}

impl Storage {
    pub fn new(data: CpuStorage) -> Self {
        let live = LIVE_BYTES.fetch_add(data.bytes(), Ordering::Relaxed) + data.bytes();
        PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        Self { data }
    }

    pub fn cpu(&self) -> &CpuStorage {
        &self.data
    }

    pub fn device(&self) -> Device {
        Device::Cpu
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.data.bytes(), Ordering::Relaxed);
    }
}

/// Process-wide accounting of tensor storage: bytes alive now and the peak since the last reset.
pub mod memory {
    use super::*;

    /// Bytes held by all tensor storages alive now.
    pub fn live_bytes() -> usize {
        LIVE_BYTES.load(Ordering::Relaxed)
    }

    /// The most bytes alive at once since the last [`reset_peak`] (or process start).
    pub fn peak_bytes() -> usize {
        PEAK_BYTES.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement from the bytes alive now.
    pub fn reset_peak() {
        PEAK_BYTES.store(live_bytes(), Ordering::Relaxed);
    }
}
