//! Convolution on CUDA (`cuda/conv.cu`): forward, backward data and backward weight with the
//! semantics and layouts of [`crate::cpu::conv`] (NCDHW, groups, stride, padding, dilation; 1-D and 2-D
//! as 3-D with unit axes), each an implicit GEMM tiled in shared memory with f32 accumulation, for f32,
//! f16 and bf16 storage.
//!
//! A transposed convolution is the adjoint of the convolution `g` from its output shape to its input
//! shape (as `seg-tensor`'s `conv_transpose` does it on the CPU): its forward is
//! [`conv_backward_data`] of `g` followed by [`add_channel_bias`], its input gradient is
//! [`conv_forward`] of `g` on the output gradient, and its weight gradient is
//! [`conv_backward_weight`] of `g` with `x` = the output gradient and `dy` = its input.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg};

use super::launch::{
    arg_or_null, check_grid, check_len, grid_stride, launch_args, to_i32, typed_function, StorageFloat,
};
use super::{CudaError, Gpu, CONV};
use crate::cpu::conv::ConvGeometry;

/// Output tile of one block (`BM` positions by `BN` channels) and its threads (`conv.cu`).
const BM: usize = 64;
const BN: usize = 64;
const THREADS: u32 = 256;
/// Blocks the backward weight aims for (split along the reduction when the weight has fewer tiles).
const TARGET_BLOCKS: usize = 512;
/// Fewest reduction steps per split of the backward weight.
const MIN_SPLIT: usize = 256;

/// `ConvParams` of `conv.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Params {
    batch: i32,
    cin: i32,
    cout: i32,
    groups: i32,
    input: [i32; 3],
    output: [i32; 3],
    kernel: [i32; 3],
    stride: [i32; 3],
    padding: [i32; 3],
    dilation: [i32; 3],
    splits: i32,
}

// SAFETY: a plain #[repr(C)] struct of i32, laid out as `ConvParams` in conv.cu.
unsafe impl DeviceRepr for Params {}

/// Checks `g` for `op` and converts it, with every size the kernels index in 32 bits checked.
fn params(op: &str, g: &ConvGeometry) -> Result<Params, CudaError> {
    g.validate().map_err(|m| CudaError::argument(op, m))?;
    let vol = |d: [usize; 3]| d.iter().product::<usize>();
    let (in_len, out_len, kvol) = (vol(g.input), vol(g.output()), vol(g.kernel));
    to_i32(op, "batch x output positions", g.batch * out_len)?;
    to_i32(op, "input positions", in_len)?;
    to_i32(op, "in channels x kernel volume", g.in_channels * kvol)?;
    to_i32(op, "out channels x kernel volume", g.out_channels * kvol)?;
    let axes = |d: [usize; 3], what: &str| -> Result<[i32; 3], CudaError> {
        Ok([
            to_i32(op, what, d[0])?,
            to_i32(op, what, d[1])?,
            to_i32(op, what, d[2])?,
        ])
    };
    Ok(Params {
        batch: to_i32(op, "batch", g.batch)?,
        cin: to_i32(op, "in channels", g.in_channels)?,
        cout: to_i32(op, "out channels", g.out_channels)?,
        groups: to_i32(op, "groups", g.groups)?,
        input: axes(g.input, "input size")?,
        output: axes(g.output(), "output size")?,
        kernel: axes(g.kernel, "kernel size")?,
        stride: axes(g.stride, "stride")?,
        padding: axes(g.padding, "padding")?,
        dilation: axes(g.dilation, "dilation")?,
        splits: 1,
    })
}

/// The grid of a `rows x cols` product per z-slice, `slices` slices.
fn gemm_grid(op: &str, rows: usize, cols: usize, slices: usize) -> Result<LaunchConfig, CudaError> {
    Ok(LaunchConfig {
        grid_dim: (
            check_grid(op, "the output tiles", rows.div_ceil(BM), i32::MAX as usize)?,
            check_grid(op, "the channel tiles", cols.div_ceil(BN), 65535)?,
            check_grid(op, "the (sample, group) slices", slices, 65535)?,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Checks the forward's arguments (buffer lengths given); its parameters and grid.
fn plan_forward(
    g: &ConvGeometry,
    x: usize,
    w: usize,
    bias: Option<usize>,
    y: usize,
) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "conv_forward (CUDA)";
    let p = params(OP, g)?;
    check_len(OP, "x", x, g.x_len())?;
    check_len(OP, "w", w, g.w_len())?;
    check_len(OP, "y", y, g.y_len())?;
    if let Some(b) = bias {
        check_len(OP, "bias", b, g.out_channels)?;
    }
    let out_len: usize = g.output().iter().product();
    Ok((
        p,
        gemm_grid(OP, out_len, g.out_channels / g.groups, g.batch * g.groups)?,
    ))
}

/// Checks the backward data's arguments; its parameters and grid.
fn plan_backward_data(g: &ConvGeometry, dy: usize, w: usize, dx: usize) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "conv_backward_data (CUDA)";
    let p = params(OP, g)?;
    check_len(OP, "dy", dy, g.y_len())?;
    check_len(OP, "w", w, g.w_len())?;
    check_len(OP, "dx", dx, g.x_len())?;
    let in_len: usize = g.input.iter().product();
    Ok((p, gemm_grid(OP, in_len, g.in_channels / g.groups, g.batch * g.groups)?))
}

/// Checks the backward weight's arguments; its parameters (with the reduction's splits: enough for
/// [`TARGET_BLOCKS`], each at least [`MIN_SPLIT`] long) and grid.
fn plan_backward_weight(g: &ConvGeometry, x: usize, dy: usize, dw: usize) -> Result<(Params, LaunchConfig), CudaError> {
    const OP: &str = "conv_backward_weight (CUDA)";
    let mut p = params(OP, g)?;
    check_len(OP, "x", x, g.x_len())?;
    check_len(OP, "dy", dy, g.y_len())?;
    check_len(OP, "dw", dw, g.w_len())?;
    let (og, kvol) = (g.out_channels / g.groups, g.kernel.iter().product::<usize>());
    let cols = g.in_channels / g.groups * kvol;
    let reduction = g.batch * g.output().iter().product::<usize>();
    let tiles = og.div_ceil(BM) * cols.div_ceil(BN) * g.groups;
    let splits = TARGET_BLOCKS
        .div_ceil(tiles.max(1))
        .min(reduction.div_ceil(MIN_SPLIT))
        .min(65535 / g.groups.max(1))
        .max(1);
    p.splits = splits as i32;
    Ok((p, gemm_grid(OP, og, cols, g.groups * splits)?))
}

/// Checks the channel bias's arguments; `(channels, plane, len)` as the kernel takes them.
fn plan_bias(y: usize, bias: usize, plane_len: usize) -> Result<(i32, i64, i64), CudaError> {
    const OP: &str = "add_channel_bias (CUDA)";
    let per_sample = bias * plane_len;
    if per_sample == 0 || !y.is_multiple_of(per_sample) {
        return Err(CudaError::argument(
            OP,
            format!("y holds {y} values, expected a multiple of {bias} channels x {plane_len} positions"),
        ));
    }
    Ok((to_i32(OP, "channels", bias)?, plane_len as i64, y as i64))
}

/// `y = conv(x, w) + bias` (see [`crate::cpu::conv`]); `y` is overwritten.
pub fn conv_forward<T: StorageFloat>(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &CudaView<T>,
    w: &CudaView<T>,
    bias: Option<&CudaView<T>>,
    y: &mut CudaViewMut<T>,
) -> Result<(), CudaError> {
    let (p, cfg) = plan_forward(g, x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
    if g.y_len() == 0 {
        return Ok(());
    }
    let f = typed_function::<T>(gpu, &CONV, "conv_forward")?;
    let null = 0u64;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(&p).arg(x).arg(w);
    arg_or_null(&mut args, bias, &null);
    args.arg(y);
    // SAFETY: (params, x, w, bias or null, y) as conv_forward_<T> takes them; the sizes were checked
    // against the geometry above.
    unsafe { launch_args("conv_forward", &mut args, cfg) }
}

/// `dx` (overwritten) from `dy` and `w`: the adjoint of the forward in `x`.
pub fn conv_backward_data<T: StorageFloat>(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &CudaView<T>,
    w: &CudaView<T>,
    dx: &mut CudaViewMut<T>,
) -> Result<(), CudaError> {
    let (p, cfg) = plan_backward_data(g, dy.len(), w.len(), dx.len())?;
    if g.x_len() == 0 {
        return Ok(());
    }
    let f = typed_function::<T>(gpu, &CONV, "conv_backward_data")?;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(&p).arg(dy).arg(w).arg(dx);
    // SAFETY: (params, dy, w, dx) as conv_backward_data_<T> takes them; sizes checked above.
    unsafe { launch_args("conv_backward_data", &mut args, cfg) }
}

/// `dw` (overwritten) from `x` and `dy`: the adjoint of the forward in `w`. The reduction over
/// samples and positions is split so that the launch fills the GPU; the splits' f32 partials are
/// summed in a fixed order (deterministic).
pub fn conv_backward_weight<T: StorageFloat>(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &CudaView<T>,
    dy: &CudaView<T>,
    dw: &mut CudaViewMut<T>,
) -> Result<(), CudaError> {
    let (p, cfg) = plan_backward_weight(g, x.len(), dy.len(), dw.len())?;
    if g.w_len() == 0 {
        return Ok(());
    }
    let splits = p.splits as usize;
    let mut partials = gpu
        .stream()
        .alloc_zeros::<f32>(splits * g.w_len())
        .map_err(|e| CudaError::call("cuMemAlloc", e))?;
    let f = typed_function::<T>(gpu, &CONV, "conv_backward_weight")?;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(&p).arg(x).arg(dy).arg(&mut partials);
    // SAFETY: (params, x, dy, partials) as conv_backward_weight_<T> takes them; partials holds
    // `splits` weights, the other sizes were checked above.
    unsafe { launch_args("conv_backward_weight", &mut args, cfg) }?;
    let sum = typed_function::<T>(gpu, &CONV, "conv_sum_splits")?;
    let (splits, len) = (p.splits, g.w_len() as i64);
    let mut args = gpu.stream().launch_builder(&sum);
    args.arg(&partials).arg(&splits).arg(dw).arg(&len);
    // SAFETY: (partials, splits, dw, len) as conv_sum_splits_<T> takes them; partials holds
    // splits x len values, dw len.
    unsafe { launch_args("conv_sum_splits", &mut args, grid_stride(g.w_len())) }
}

/// `y[n, c, p] += bias[c]` over `y` of `(N, C, plane_len)` values, `C = bias.len()`: the bias of a
/// transposed convolution (module doc).
pub fn add_channel_bias<T: StorageFloat>(
    gpu: &Gpu,
    y: &mut CudaViewMut<T>,
    bias: &CudaView<T>,
    plane_len: usize,
) -> Result<(), CudaError> {
    let y_len = y.len();
    let (channels, plane, len) = plan_bias(y_len, bias.len(), plane_len)?;
    let f = typed_function::<T>(gpu, &CONV, "add_channel_bias")?;
    let mut args = gpu.stream().launch_builder(&f);
    args.arg(y).arg(bias).arg(&channels).arg(&plane).arg(&len);
    // SAFETY: (y, bias, channels, plane, len) as add_channel_bias_<T> takes them; y holds len values
    // and bias `channels`.
    unsafe { launch_args("add_channel_bias", &mut args, grid_stride(y_len)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> ConvGeometry {
        ConvGeometry {
            batch: 2,
            in_channels: 4,
            out_channels: 6,
            groups: 2,
            input: [5, 6, 7],
            kernel: [3, 3, 3],
            stride: [2, 1, 1],
            padding: [1, 1, 0],
            dilation: [1, 1, 2],
        }
    }

    fn message(err: CudaError) -> String {
        match err {
            CudaError::Argument { message, .. } => message,
            other => panic!("expected an argument error, found {other:?}"),
        }
    }

    #[test]
    fn good_arguments_plan_a_grid() {
        let g = geometry();
        let (p, cfg) = plan_forward(&g, g.x_len(), g.w_len(), Some(6), g.y_len()).unwrap();
        assert_eq!((p.output, p.groups), ([3, 6, 3], 2));
        assert_eq!(cfg.grid_dim, (1, 1, 4));
        let (_, cfg) = plan_backward_data(&g, g.y_len(), g.w_len(), g.x_len()).unwrap();
        assert_eq!(cfg.grid_dim, ((5 * 6 * 7usize).div_ceil(BM) as u32, 1, 4));
        let (p, cfg) = plan_backward_weight(&g, g.x_len(), g.y_len(), g.w_len()).unwrap();
        // 2 * 54 = 108 reduction steps: one split of at least MIN_SPLIT.
        assert_eq!((p.splits, cfg.grid_dim), (1, (1, 1, 2)));
        assert_eq!(plan_bias(2 * 6 * 54, 6, 54).unwrap(), (6, 54, 648));
    }

    #[test]
    fn backward_weight_splits_long_reductions() {
        let g = ConvGeometry {
            batch: 2,
            in_channels: 8,
            out_channels: 8,
            groups: 1,
            input: [32, 32, 32],
            kernel: [3, 3, 3],
            stride: [1; 3],
            padding: [1; 3],
            dilation: [1; 3],
        };
        let (p, cfg) = plan_backward_weight(&g, g.x_len(), g.y_len(), g.w_len()).unwrap();
        assert_eq!(p.splits as usize, TARGET_BLOCKS / 4);
        assert_eq!(cfg.grid_dim, (1, 4, TARGET_BLOCKS as u32 / 4));
    }

    #[test]
    fn bad_lengths_are_reported_before_any_cuda_call() {
        let g = geometry();
        let m = message(plan_forward(&g, g.x_len() - 1, g.w_len(), None, g.y_len()).unwrap_err());
        assert!(m.contains("x holds") && m.contains(&g.x_len().to_string()), "{m}");
        let m = message(plan_forward(&g, g.x_len(), g.w_len(), Some(5), g.y_len()).unwrap_err());
        assert!(m.contains("bias holds 5 values, expected 6"), "{m}");
        let m = message(plan_forward(&g, g.x_len(), g.w_len(), None, 3).unwrap_err());
        assert!(m.contains("y holds 3"), "{m}");
        let m = message(plan_backward_data(&g, g.y_len(), g.w_len() + 1, g.x_len()).unwrap_err());
        assert!(m.contains("w holds"), "{m}");
        let m = message(plan_backward_data(&g, g.y_len(), g.w_len(), 0).unwrap_err());
        assert!(m.contains("dx holds 0"), "{m}");
        let m = message(plan_backward_weight(&g, g.x_len(), g.y_len(), 1).unwrap_err());
        assert!(m.contains("dw holds 1"), "{m}");
        let m = message(plan_bias(100, 6, 54).unwrap_err());
        assert!(m.contains("y holds 100"), "{m}");
    }

    #[test]
    fn bad_geometries_and_huge_sizes_are_reported() {
        let g = ConvGeometry {
            groups: 4,
            out_channels: 6,
            ..geometry()
        };
        assert!(message(plan_forward(&g, 0, 0, None, 0).unwrap_err()).contains("groups"));
        let g = ConvGeometry {
            input: [1, 1, 1],
            padding: [0; 3],
            ..geometry()
        };
        assert!(message(plan_forward(&g, 0, 0, None, 0).unwrap_err()).contains("spans"));
        let g = ConvGeometry {
            batch: 1 << 12,
            in_channels: 1,
            out_channels: 1,
            groups: 1,
            input: [1 << 7; 3],
            kernel: [1; 3],
            stride: [1; 3],
            padding: [0; 3],
            dilation: [1; 3],
        };
        let m = message(plan_forward(&g, g.x_len(), g.w_len(), None, g.y_len()).unwrap_err());
        assert!(m.contains("32-bit"), "{m}");
        let g = ConvGeometry {
            batch: 1 << 9,
            in_channels: 256,
            out_channels: 256,
            groups: 256,
            input: [1; 3],
            ..g
        };
        let m = message(plan_forward(&g, g.x_len(), g.w_len(), None, g.y_len()).unwrap_err());
        assert!(m.contains("at most 65535"), "{m}");
    }
}
