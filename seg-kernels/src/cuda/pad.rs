//! Launchers of `cuda/pad.cu`: axis remaps (pad in every mode, roll, flip), where output position
//! `o` on axis `d` reads input position `maps[d][o]`, or the fill value where that is `None`.

use cudarc::driver::{CudaSlice, CudaView};

use super::launch::launch;
use super::sources::PAD;
use super::{CudaElement, CudaError, CudaFloat, Gpu, Strided};

/// The output's dense view (its shape: the maps' lengths) and the maps concatenated, -1 for `None`.
fn maps_on_device(gpu: &Gpu, maps: &[Vec<Option<usize>>]) -> Result<(Strided, CudaSlice<i64>), CudaError> {
    let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    let flat: Vec<i64> = maps.iter().flatten().map(|m| m.map_or(-1, |i| i as i64)).collect();
    // An empty upload has no device buffer to point at: one unused entry instead.
    let flat = if flat.is_empty() { vec![-1] } else { flat };
    Ok((Strided::contiguous(&shape)?, gpu.upload(&flat)?))
}

/// The remap of the view `x_view` of `x` (its shape has the maps' rank; each map indexes its axis):
/// a dense buffer of the maps' lengths, `fill` where a map has `None`: `remap_b<bits>`.
pub fn remap<T: CudaElement>(
    gpu: &Gpu,
    (x, x_view): (&CudaSlice<T>, &Strided),
    maps: &[Vec<Option<usize>>],
    fill: T,
) -> Result<CudaSlice<T>, CudaError> {
    let (out_view, device_maps) = maps_on_device(gpu, maps)?;
    let n = out_view.numel();
    let mut out = gpu.alloc::<T>(n)?;
    if n > 0 {
        let (bits, count) = (fill.to_bits(), n as i64);
        launch!(gpu, PAD, format!("remap_b{}", T::BITS), Gpu::grid_1d(n);
            x, x_view, &out_view, &device_maps, &bits, &mut out, &count)?;
    }
    Ok(out)
}

/// The adjoint of [`remap`]: the dense gradient of the input (shape `x_shape`) from the dense output
/// gradient `dy`, positions read several times summed (atomic adds): `remap_backward_<t>`.
pub fn remap_backward<T: CudaFloat>(
    gpu: &Gpu,
    dy: &CudaView<T>,
    maps: &[Vec<Option<usize>>],
    x_shape: &[usize],
) -> Result<CudaSlice<T>, CudaError> {
    let (out_view, device_maps) = maps_on_device(gpu, maps)?;
    let x_view = Strided::contiguous(x_shape)?;
    let n = out_view.numel();
    super::launch::check_len("pad backward", "dy", dy.len(), n)?;
    let mut dx = gpu.zeros::<T>(x_view.numel())?;
    if n > 0 {
        let count = n as i64;
        launch!(gpu, PAD, format!("remap_backward_{}", T::NAME), Gpu::grid_1d(n);
            dy, &out_view, &device_maps, &mut dx, &x_view, &count)?;
    }
    Ok(dx)
}
