//! The one way kernels are launched: look the function up (compiling its source on first use), push
//! the arguments in the kernel's order, launch on the device's stream.

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
