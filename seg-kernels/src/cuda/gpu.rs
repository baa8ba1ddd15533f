//! One CUDA device: its context, its stream, and the modules compiled for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;

use super::{compile, nvrtc_present, CudaElement, CudaError, Source};

/// Threads per block of the 1D grid-stride kernels.
const BLOCK: u32 = 256;
/// Most blocks of a 1D launch; the kernels' grid-stride loops cover the rest.
const MAX_BLOCKS: usize = 1 << 16;
/// Threads per block of the row kernels (`ROW_BLOCK` in `cuda/common.cuh`).
pub(crate) const ROW_BLOCK: u32 = 256;

/// A CUDA device ready to run our kernels: one context, one stream (work is ordered on it and the host
/// waits only where it reads), and each source compiled by NVRTC once, on first use, for this device's
/// compute capability.
#[derive(Debug)]
pub struct Gpu {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    blas: OnceLock<Arc<CudaBlas>>,
}

/// Bytes of the device's memory pool: `reserved` from the driver, `used` by live buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolBytes {
    pub reserved: u64,
    pub used: u64,
}

/// Sets `CU_MEMPOOL_ATTR_RELEASE_THRESHOLD` of the default memory pool of `context`'s device to
/// `bytes`, where the device has a stream-ordered allocator.
fn set_release_threshold(context: &CudaContext, bytes: u64) -> Result<(), CudaError> {
    if !context.has_async_alloc() {
        return Ok(());
    }
    let mut threshold = bytes;
    // SAFETY: the device is valid; the attribute takes a u64.
    unsafe {
        let pool = result::device::get_default_mem_pool(context.cu_device())
            .map_err(|e| CudaError::call("cuDeviceGetDefaultMemPool", e))?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .map_err(|e| CudaError::call("cuMemPoolSetAttribute", e))
    }
}

impl Gpu {
    /// Opens device `ordinal`. Errors, never panics, when the driver library, the device or libnvrtc is
    /// missing.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        // SAFETY: only tries to open the library; cudarc panics on first use when it is absent.
        if !unsafe { sys::is_culib_present() } {
            return Err(CudaError::NoDriver);
        }
        let count = CudaContext::device_count().map_err(|e| CudaError::call("cuDeviceGetCount", e))?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::NoDevice {
                ordinal,
                count: count.max(0) as usize,
            });
        }
        if !nvrtc_present() {
            return Err(CudaError::NoNvrtc);
        }
        let context = CudaContext::new(ordinal).map_err(|e| CudaError::call("cuCtxCreate", e))?;
        let (major, minor) = context
            .compute_capability()
            .map_err(|e| CudaError::call("cuDeviceGetAttribute", e))?;
        // The caching allocator: cudarc allocates with the stream-ordered cuMemAllocAsync from the
        // device's default pool. With the release threshold at its maximum, freed blocks stay in the
        // pool (never handed back to the driver at a synchronisation) and are reused by later
        // allocations on our one stream without a driver round trip.
        set_release_threshold(&context, u64::MAX)?;
        // SAFETY: every buffer of this device is allocated, used and freed on the one stream below,
        // so stream order alone keeps each use after its allocation and before its free; cudarc's
        // per-buffer events (two driver events per allocation) would only order several streams.
        unsafe { context.disable_event_tracking() };
        let stream = context.default_stream();
        Ok(Self {
            context,
            stream,
            arch: format!("sm_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            blas: OnceLock::new(),
        })
    }

    /// Bytes the default memory pool holds from the driver and bytes in use by live buffers; `None`
    /// where the device has no stream-ordered allocator (then every free goes back to the driver).
    pub fn pool_bytes(&self) -> Result<Option<PoolBytes>, CudaError> {
        if !self.context.has_async_alloc() {
            return Ok(None);
        }
        let read = |attr| -> Result<u64, CudaError> {
            let mut value = 0u64;
            // SAFETY: the device is valid; both attributes are u64.
            unsafe {
                let pool = result::device::get_default_mem_pool(self.context.cu_device())
                    .map_err(|e| CudaError::call("cuDeviceGetDefaultMemPool", e))?;
                result::mem_pool::get_attribute(pool, attr, (&mut value as *mut u64).cast())
                    .map_err(|e| CudaError::call("cuMemPoolGetAttribute", e))?;
            }
            Ok(value)
        };
        Ok(Some(PoolBytes {
            reserved: read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?,
            used: read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?,
        }))
    }

    /// Sets the caching allocator's release threshold: the bytes of freed blocks the memory pool
    /// keeps from the driver at a synchronisation (`u64::MAX`, what [`Gpu::new`] sets, keeps them all;
    /// 0 hands them all back, so that later allocations go to the driver again). Does nothing where
    /// the device has no stream-ordered allocator.
    pub fn set_release_threshold(&self, bytes: u64) -> Result<(), CudaError> {
        set_release_threshold(&self.context, bytes)
    }

    /// Waits until everything queued on this device's stream has run (for timing).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(|e| CudaError::call("cuStreamSynchronize", e))
    }

    /// The cuBLAS handle on our stream, created on first use.
    pub fn blas(&self) -> Result<&Arc<CudaBlas>, CudaError> {
        if let Some(blas) = self.blas.get() {
            return Ok(blas);
        }
        // SAFETY: only tries to open the library; cudarc panics on first use when it is absent.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError::Unsupported("matmul: libcublas could not be loaded".into()));
        }
        let blas = CudaBlas::new(self.stream.clone()).map_err(|e| CudaError::call("cublasCreate", e))?;
        Ok(self.blas.get_or_init(|| Arc::new(blas)))
    }

    /// An uninitialised buffer of `len` elements (every launcher writes all of it).
    pub fn alloc<T: CudaElement>(&self, len: usize) -> Result<CudaSlice<T>, CudaError> {
        // SAFETY: the callers write every element before anything reads it.
        unsafe { self.stream.alloc::<T>(len) }.map_err(|e| CudaError::call("cuMemAllocAsync", e))
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: CudaElement>(&self, len: usize) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .alloc_zeros::<T>(len)
            .map_err(|e| CudaError::call("cuMemAllocAsync", e))
    }

    /// A copy of host `data` on the device.
    pub fn upload<T: CudaElement>(&self, data: &[T]) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .clone_htod(data)
            .map_err(|e| CudaError::call("cuMemcpyHtoD", e))
    }

    /// The device buffer copied to the host (waits for the stream: the one synchronisation point).
    pub fn download<T: CudaElement>(&self, data: &CudaSlice<T>) -> Result<Vec<T>, CudaError> {
        self.stream
            .clone_dtoh(data)
            .map_err(|e| CudaError::call("cuMemcpyDtoH", e))
    }

    /// The launch shape of a grid-stride kernel over `n` elements.
    pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS) as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The launch shape of a row kernel over `rows` rows (one block per row, grid-stride beyond).
    pub(crate) fn grid_rows(rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.clamp(1, MAX_BLOCKS) as u32, 1, 1),
            block_dim: (ROW_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The stream every kernel of this device runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }

    /// The NVRTC target of this device, `sm_<major><minor>`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Kernel `name` of `source`, compiling and loading the source on first use.
    pub fn function(&self, source: &'static Source, name: &str) -> Result<CudaFunction, CudaError> {
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match modules.get(source.name) {
                Some(module) => module.clone(),
                None => {
                    let compiled = compile(source, &self.arch)?;
                    let module = self
                        .context
                        .load_module(Ptx::from_src(compiled.ptx))
                        .map_err(|e| CudaError::call("cuModuleLoadData", e))?;
                    modules.insert(source.name, module.clone());
                    module
                }
            }
        };
        module
            .load_function(name)
            .map_err(|e| CudaError::call(&format!("cuModuleGetFunction({name})"), e))
    }
}
