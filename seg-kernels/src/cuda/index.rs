//! Launchers of `cuda/index.cu`: gather and scatter_add along one axis. Each reads back a flag that
//! the kernel sets on an index outside the axis, so these ops wait for the device.

use cudarc::driver::CudaSlice;

use super::launch::launch;
use super::sources::INDEX;
use super::{CudaElement, CudaError, CudaFloat, Gpu, Strided};

/// Fails with `op`'s error when the kernel flagged an index outside `0..size`.
fn check_flag(gpu: &Gpu, flag: &CudaSlice<u8>, op: &'static str, size: usize) -> Result<(), CudaError> {
    if gpu.download(flag)?.iter().any(|&f| f != 0) {
        return Err(CudaError::IndexOutOfRange { op, size });
    }
    Ok(())
}

/// `out[i] = x[x_view(i) + index[index_view(i)] * stride_dim]`, dense of the index's shape:
/// `gather_<t>`. `x_view` is the data seen over the index's shape with axis `dim`'s stride set to 0,
/// `size` that axis's length.
pub fn gather_along<T: CudaElement>(
    gpu: &Gpu,
    (x, x_view): (&CudaSlice<T>, &Strided),
    (stride_dim, size): (usize, usize),
    (index, index_view): (&CudaSlice<i64>, &Strided),
) -> Result<CudaSlice<T>, CudaError> {
    let n = index_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let mut flag = gpu.zeros::<u8>(1)?;
        let (stride, len, count) = (stride_dim as i64, size as i64, n as i64);
        launch!(gpu, INDEX, format!("gather_{}", T::NAME), Gpu::grid_1d(n);
            x, x_view, &stride, &len, index, index_view, &mut out, &mut flag, &count)?;
        check_flag(gpu, &flag, "gather", size)?;
    }
    Ok(out)
}

/// `out[out_view(i) + index[index_view(i)] * stride_dim] += src[src_view(i)]` in place (atomic adds):
/// `scatter_add_<t>`. `out_view` is the dense target seen over the index's shape with axis `dim`'s
/// stride set to 0.
pub fn scatter_add_along<T: CudaFloat>(
    gpu: &Gpu,
    (out, out_view): (&mut CudaSlice<T>, &Strided),
    (stride_dim, size): (usize, usize),
    (index, index_view): (&CudaSlice<i64>, &Strided),
    (src, src_view): (&CudaSlice<T>, &Strided),
) -> Result<(), CudaError> {
    let n = index_view.numel();
    if n == 0 {
        return Ok(());
    }
    let mut flag = gpu.zeros::<u8>(1)?;
    let (stride, len, count) = (stride_dim as i64, size as i64, n as i64);
    launch!(gpu, INDEX, format!("scatter_add_{}", T::NAME), Gpu::grid_1d(n);
        out, out_view, &stride, &len, index, index_view, src, src_view, &mut flag, &count)?;
    check_flag(gpu, &flag, "scatter_add", size)
}
