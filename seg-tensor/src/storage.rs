//! Buffers that hold tensor elements, the devices they live on, and the accounting of their memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use half::{bf16, f16};
use seg_kernels::cuda::{CudaSlice, Gpu};

use crate::{DType, Error, Result};

/// Where a tensor's storage lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    Cpu,
    /// The CUDA device of this ordinal (open it with [`Device::cuda`]).
    Cuda(usize),
}

impl Device {
    /// CUDA device `ordinal`, opened now (driver, device and libnvrtc checked, the context created):
    /// an error, never a panic, where that is impossible.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        gpu(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }

    /// Waits until everything queued on this device has run (a no-op on the CPU, whose ops finish
    /// before they return): what a timer reads after.
    pub fn synchronize(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(ordinal) => Ok(gpu(ordinal)?.synchronize()?),
        }
    }

    /// `cpu`, `cuda` (device 0) or `cuda:N`, as a command line names a device; a CUDA device is
    /// opened (see [`Device::cuda`]), so one that cannot be used is an error here.
    pub fn parse(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Device::cuda(0),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(ordinal) => Device::cuda(ordinal),
                None => Err(Error::invalid(
                    "device",
                    format!("expected cpu, cuda or cuda:N, found {other:?}"),
                )),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

/// The open GPUs by ordinal: each is opened once per process and shared by its tensors.
pub(crate) fn gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let mut gpus = GPUS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(gpu) = gpus.get(&ordinal) {
        return Ok(gpu.clone());
    }
    let gpu = Arc::new(Gpu::new(ordinal)?);
    gpus.insert(ordinal, gpu.clone());
    Ok(gpu)
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
}

/// A dense buffer of one element type in the memory of a CUDA device.
#[derive(Debug)]
pub enum CudaStorage {
    F16(CudaSlice<f16>),
    BF16(CudaSlice<bf16>),
    F32(CudaSlice<f32>),
    F64(CudaSlice<f64>),
    I64(CudaSlice<i64>),
    U8(CudaSlice<u8>),
}

impl CudaStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CudaStorage::F16(_) => DType::F16,
            CudaStorage::BF16(_) => DType::BF16,
            CudaStorage::F32(_) => DType::F32,
            CudaStorage::F64(_) => DType::F64,
            CudaStorage::I64(_) => DType::I64,
            CudaStorage::U8(_) => DType::U8,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            CudaStorage::F16(v) => v.len(),
            CudaStorage::BF16(v) => v.len(),
            CudaStorage::F32(v) => v.len(),
            CudaStorage::F64(v) => v.len(),
            CudaStorage::I64(v) => v.len(),
            CudaStorage::U8(v) => v.len(),
        }
    }
}

/// A device buffer with the GPU it lives on.
#[derive(Debug)]
pub struct CudaBuffer {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) data: CudaStorage,
}

#[derive(Debug)]
enum Data {
    Cpu(CpuStorage),
    Cuda { ordinal: usize, buffer: CudaBuffer },
}

/// Bytes alive now and the peak since the last reset, for one device.
struct Counters {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn add(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }
}

static CPU: Counters = Counters::new();
/// CUDA ordinals beyond this share the last counters (no machine has that many GPUs).
const COUNTED_GPUS: usize = 16;
static CUDA: [Counters; COUNTED_GPUS] = [const { Counters::new() }; COUNTED_GPUS];

fn counters(device: Device) -> &'static Counters {
    match device {
        Device::Cpu => &CPU,
        Device::Cuda(ordinal) => &CUDA[ordinal.min(COUNTED_GPUS - 1)],
    }
}

/// A tensor buffer; counts its bytes in [`memory`] for its device while it lives.
#[derive(Debug)]
pub struct Storage {
    data: Data,
}

impl Storage {
    pub fn new(data: CpuStorage) -> Self {
        Self::counted(Data::Cpu(data))
    }

    /// A storage of a device buffer of CUDA device `gpu`.
    pub(crate) fn new_cuda(gpu: Arc<Gpu>, data: CudaStorage) -> Self {
        let ordinal = gpu.context().ordinal();
        Self::counted(Data::Cuda {
            ordinal,
            buffer: CudaBuffer { gpu, data },
        })
    }

    fn counted(data: Data) -> Self {
        let storage = Self { data };
        counters(storage.device()).add(storage.bytes());
        storage
    }

    fn bytes(&self) -> usize {
        let len = match &self.data {
            Data::Cpu(data) => data.len(),
            Data::Cuda { buffer, .. } => buffer.data.len(),
        };
        len * self.dtype().size_in_bytes()
    }

    /// The host buffer; `None` for a device buffer.
    pub fn cpu(&self) -> Option<&CpuStorage> {
        match &self.data {
            Data::Cpu(data) => Some(data),
            Data::Cuda { .. } => None,
        }
    }

    /// The device buffer; `None` for a host buffer.
    pub(crate) fn cuda(&self) -> Option<&CudaBuffer> {
        match &self.data {
            Data::Cpu(_) => None,
            Data::Cuda { buffer, .. } => Some(buffer),
        }
    }

    /// The host buffer, or the error for an op `op` that has no kernel for this device.
    pub(crate) fn expect_cpu(&self, op: &'static str) -> Result<&CpuStorage> {
        self.cpu().ok_or(Error::Unsupported {
            op,
            device: self.device(),
        })
    }

    pub fn dtype(&self) -> DType {
        match &self.data {
            Data::Cpu(data) => data.dtype(),
            Data::Cuda { buffer, .. } => buffer.data.dtype(),
        }
    }

    pub fn device(&self) -> Device {
        match &self.data {
            Data::Cpu(_) => Device::Cpu,
            Data::Cuda { ordinal, .. } => Device::Cuda(*ordinal),
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        counters(self.device()).live.fetch_sub(self.bytes(), Ordering::Relaxed);
    }
}

/// Accounting of tensor storage: bytes alive now and the peak since the last reset, on the CPU
/// (`live_bytes`, ...) and per device (`device_live_bytes`, ...), and the CUDA allocator's pool.
pub mod memory {
    use super::*;

    /// Bytes held by all tensor storages in host memory alive now.
    pub fn live_bytes() -> usize {
        device_live_bytes(Device::Cpu)
    }

    /// The most host bytes alive at once since the last [`reset_peak`] (or process start).
    pub fn peak_bytes() -> usize {
        device_peak_bytes(Device::Cpu)
    }

    /// Starts a new peak measurement of host memory from the bytes alive now.
    pub fn reset_peak() {
        reset_device_peak(Device::Cpu)
    }

    /// Bytes held by the tensor storages on `device` alive now.
    pub fn device_live_bytes(device: Device) -> usize {
        counters(device).live.load(Ordering::Relaxed)
    }

    /// The most bytes alive at once on `device` since the last [`reset_device_peak`].
    pub fn device_peak_bytes(device: Device) -> usize {
        counters(device).peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement on `device` from the bytes alive now.
    pub fn reset_device_peak(device: Device) {
        let c = counters(device);
        c.peak.store(c.live.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The caching allocator of CUDA device `ordinal`: bytes its memory pool holds from the driver
    /// (`reserved`) and bytes in live buffers (`used`); `reserved - used` is what freed buffers left
    /// for reuse. `None` where the device has no stream-ordered allocator.
    pub fn cuda_pool_bytes(ordinal: usize) -> Result<Option<seg_kernels::cuda::PoolBytes>> {
        Ok(gpu(ordinal)?.pool_bytes()?)
    }

    /// Sets the release threshold of CUDA device `ordinal`'s caching allocator: the bytes of freed
    /// buffers its pool keeps at a synchronisation (`u64::MAX`, the default, keeps all; 0 none, so
    /// that every allocation goes to the driver again).
    pub fn set_cuda_release_threshold(ordinal: usize, bytes: u64) -> Result<()> {
        Ok(gpu(ordinal)?.set_release_threshold(bytes)?)
    }
}
