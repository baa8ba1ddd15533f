//! One CUDA device: its context, its stream, and the modules compiled for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use super::{compile, nvrtc_present, CudaError, Source};

/// A CUDA device ready to run our kernels: one context, one stream (work is ordered on it and the host
/// waits only where it reads), and each source compiled by NVRTC once, on first use, for this device's
/// compute capability.
#[derive(Debug)]
pub struct Gpu {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
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
        let stream = context.default_stream();
        Ok(Self {
            context,
            stream,
            arch: format!("sm_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
        })
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
