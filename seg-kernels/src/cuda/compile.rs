//! NVRTC compilation with the log kept: a source that compiles with warnings is an error here, so
//! that the CI test holds every kernel to a clean compile.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result, sys};

use super::{CudaError, Source};

/// Whether libnvrtc can be loaded (it is looked up on the loader's path).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { sys::is_culib_present() }
}

/// PTX for one source and architecture.
#[derive(Debug)]
pub struct Compiled {
    pub ptx: String,
}

/// Compiles `source` for `arch` (`"sm_90"`, ...) with our options: C++17, no fast-math (results stay
/// comparable with the CPU kernels), `-default-device`.
pub fn compile(source: &Source, arch: &str) -> Result<Compiled, CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    let fail = |log: String| CudaError::Compile {
        source: source.name.to_string(),
        arch: arch.to_string(),
        log,
    };
    let text = CString::new(source.program()).map_err(|_| fail("the source contains a NUL byte".into()))?;
    let name = CString::new(source.name).map_err(|_| fail("the name contains a NUL byte".into()))?;
    let prog = result::create_program(&text, Some(&name)).map_err(|e| CudaError::call("nvrtcCreateProgram", e))?;
    let options = [
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "-default-device".into(),
    ];
    // SAFETY: `prog` is a live program, destroyed once below whatever the outcome.
    let outcome = unsafe {
        let compiled = result::compile_program(prog, &options);
        let log = result::get_program_log(prog)
            .map(|raw| c_string(&raw))
            .unwrap_or_default();
        let ptx = compiled.and_then(|()| result::get_ptx(prog));
        let _ = result::destroy_program(prog);
        (ptx, log)
    };
    match outcome {
        (Ok(ptx), log) if log.trim().is_empty() => Ok(Compiled { ptx: c_string(&ptx) }),
        (_, log) => Err(fail(log)),
    }
}

/// The text of a NUL-terminated buffer from NVRTC.
fn c_string(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}
