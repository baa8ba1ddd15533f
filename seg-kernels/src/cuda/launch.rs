//! What every launcher shares: the `launch!` macro of the generic kernels, and for the conv,
//! attention and scan kernels their storage types, argument checks (made before any CUDA call) and
//! launch.

use cudarc::driver::{CudaFunction, DeviceRepr, DriverError, LaunchArgs, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::{CudaError, Gpu, Source};

/// A storage type of the kernels: `f32`, `half::f16` or `half::bf16`; kernels compute in f32.
pub trait StorageFloat: DeviceRepr + ValidAsZeroBits + Copy + Unpin + Send + Sync + 'static {
    /// The suffix of the kernels' names for this type (`conv_forward_bf16`, ...).
    const SUFFIX: &'static str;
}

impl StorageFloat for f32 {
    const SUFFIX: &'static str = "f32";
}
impl StorageFloat for half::f16 {
    const SUFFIX: &'static str = "f16";
}
impl StorageFloat for half::bf16 {
    const SUFFIX: &'static str = "bf16";
}

/// Kernel `base_<T::SUFFIX>` of `source`.
pub(crate) fn typed_function<T: StorageFloat>(
    gpu: &Gpu,
    source: &'static Source,
    base: &str,
) -> Result<CudaFunction, CudaError> {
    gpu.function(source, &format!("{base}_{}", T::SUFFIX))
}

/// Checks that buffer `what` of `op` holds `expected` values.
pub(crate) fn check_len(op: &str, what: &str, found: usize, expected: usize) -> Result<(), CudaError> {
    if found == expected {
        Ok(())
    } else {
        Err(CudaError::argument(
            op,
            format!("{what} holds {found} values, expected {expected}"),
        ))
    }
}

/// `value` as the kernels' `int`, or an error naming `what` when it does not fit.
pub(crate) fn to_i32(op: &str, what: &str, value: usize) -> Result<i32, CudaError> {
    i32::try_from(value).map_err(|_| {
        CudaError::argument(
            op,
            format!(
                "{what} = {value} exceeds the kernels' 32-bit index range ({})",
                i32::MAX
            ),
        )
    })
}

/// Checks a grid dimension against CUDA's limit (`limit` blocks; 65535 for y and z).
pub(crate) fn check_grid(op: &str, what: &str, blocks: usize, limit: usize) -> Result<u32, CudaError> {
    if blocks <= limit {
        Ok(blocks as u32)
    } else {
        Err(CudaError::argument(
            op,
            format!("{what} needs {blocks} blocks along one grid axis, at most {limit}"),
        ))
    }
}

/// Launches the kernel that `args` was built for.
///
/// # Safety
/// The arguments pushed into `args` match the kernel's parameters in number, order and type, and
/// every buffer holds what the kernel reads and writes under `config`.
pub(crate) unsafe fn launch_args(name: &str, args: &mut LaunchArgs, config: LaunchConfig) -> Result<(), CudaError> {
    args.launch(config)
        .map(|_| ())
        .map_err(|e: DriverError| CudaError::call(&format!("launch {name}"), e))
}

/// Pushes `value`, or for an absent optional input the null device pointer `null` (the kernels test
/// their optional pointers against 0).
pub(crate) fn arg_or_null<'a, A>(args: &mut LaunchArgs<'a>, value: Option<A>, null: &'a u64)
where
    LaunchArgs<'a>: PushKernelArg<A> + PushKernelArg<&'a u64>,
{
    match value {
        Some(v) => PushKernelArg::<A>::arg(args, v),
        None => PushKernelArg::<&u64>::arg(args, null),
    };
}

/// A grid-stride launch over `len` elements (256 threads a block, at most 65536 blocks).
pub(crate) fn grid_stride(len: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (len.div_ceil(256).clamp(1, 65536) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `launch!(gpu, SOURCE, name, config; args...)`: launches kernel `name` of `SOURCE`. The arguments
/// must match the kernel's parameter list in `cuda/` one for one (each launcher sits next to a
/// comment naming its kernel), which is what makes the launch sound.
macro_rules! launch {
    ($gpu:expr, $source:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        let name: &str = &$name;
        let function = $gpu.function(&$source, name)?;
        let mut builder = $gpu.stream().launch_builder(&function);
        $(cudarc::driver::PushKernelArg::arg(&mut builder, $arg);)*
        // SAFETY: the arguments match the kernel's parameters (see the macro's doc), and every
        // buffer is as long as the views and counts passed with it say.
        unsafe { builder.launch($cfg) }
            .map(|_| ())
            .map_err(|e| $crate::cuda::CudaError::call(name, e))
    }};
}
pub(crate) use launch;
