//! Launchers of `cuda/norm.cu`: the fused norms (instance, group, batch, layer) over a dense input,
//! forward and backward, with the formulas of [`crate::cpu::norm`] (statistics and sums in f64).

use cudarc::driver::{CudaSlice, DeviceRepr, LaunchArgs, PushKernelArg};

use super::launch::{arg_or_null, check_len, launch_args};
use super::{CudaError, CudaFloat, Gpu, NORM};
use crate::cpu::norm::{NormGeometry, RowGeometry, StatsOver};

/// A grouping of a norm's elements (`Rows` in `norm.cu`): row `r` of `rows` covers `outer` blocks of
/// `inner` consecutive elements, block `o` starting at `r * inner + o * stride`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rows {
    rows: i64,
    inner: i64,
    outer: i64,
    stride: i64,
}

// SAFETY: a plain `#[repr(C)]` struct of integers that matches the kernels' `Rows`.
unsafe impl DeviceRepr for Rows {}

impl Rows {
    fn new(rows: usize, inner: usize, outer: usize, stride: usize) -> Self {
        let i = |v: usize| v as i64;
        Self {
            rows: i(rows),
            inner: i(inner.max(1)),
            outer: i(outer),
            stride: i(stride),
        }
    }
}

/// Which elements share statistics and which share an affine parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormLayout {
    stats: Rows,
    affine: Rows,
    len: usize,
}

impl NormLayout {
    /// A channel norm of `(N, C, S)`: statistics per (sample, group) or per channel, affine per channel.
    pub fn channels(g: &NormGeometry) -> Self {
        let (n, c, s) = (g.batch, g.channels, g.spatial);
        let per_channel = Rows::new(c, s, n, c * s);
        let stats = match g.stats {
            StatsOver::Groups(groups) => Rows::new(n * groups, c.checked_div(groups).unwrap_or(0) * s, 1, 0),
            StatsOver::Channels => per_channel,
        };
        Self {
            stats,
            affine: per_channel,
            len: n * c * s,
        }
    }

    /// Layer norm of `(M, K)`: statistics per row, affine per column.
    pub fn rows(g: &RowGeometry) -> Self {
        Self {
            stats: Rows::new(g.rows, g.len, 1, 0),
            affine: Rows::new(g.len, 1, g.rows, g.len),
            len: g.rows * g.len,
        }
    }

    /// Number of statistics groups.
    pub fn groups(&self) -> usize {
        self.stats.rows as usize
    }

    /// Number of affine parameters.
    pub fn affine_len(&self) -> usize {
        self.affine.rows as usize
    }
}

/// The mean and biased variance of every statistics group, on the device.
pub struct NormMoments {
    pub mean: CudaSlice<f64>,
    pub var: CudaSlice<f64>,
}

/// The gradients a norm's backward computes; `None` where not wanted.
pub struct NormGradients<T> {
    pub dx: Option<CudaSlice<T>>,
    pub dweight: Option<CudaSlice<T>>,
    pub dbias: Option<CudaSlice<T>>,
}

/// Kernel `base_<t>` of `norm.cu`.
fn kernel<T: CudaFloat>(gpu: &Gpu, base: &str) -> Result<cudarc::driver::CudaFunction, CudaError> {
    gpu.function(&NORM, &format!("{base}_{}", T::NAME))
}

/// Checks the input, the optional affine parameters and the moments against `layout`.
fn check<T>(
    layout: &NormLayout,
    x: &CudaSlice<T>,
    affine: [Option<&CudaSlice<T>>; 2],
    moments: Option<&NormMoments>,
) -> Result<(), CudaError> {
    check_len("norm", "x", x.len(), layout.len)?;
    for (what, t) in ["weight", "bias"].into_iter().zip(affine) {
        if let Some(t) = t {
            check_len("norm", what, t.len(), layout.affine_len())?;
        }
    }
    if let Some(m) = moments {
        check_len("norm", "mean", m.mean.len(), layout.groups())?;
        check_len("norm", "var", m.var.len(), layout.groups())?;
    }
    Ok(())
}

/// Launches what `args` was built for, as kernel `name`.
fn run(name: &str, args: &mut LaunchArgs, config: cudarc::driver::LaunchConfig) -> Result<(), CudaError> {
    // SAFETY: every caller pushes the arguments of kernel `name` in `norm.cu` in order, with buffers
    // checked against the layout (`check`).
    unsafe { launch_args(name, args, config) }
}

/// The mean and biased variance of each statistics group of `x`: `norm_moments_<t>`.
pub fn norm_moments<T: CudaFloat>(gpu: &Gpu, x: &CudaSlice<T>, layout: &NormLayout) -> Result<NormMoments, CudaError> {
    check(layout, x, [None, None], None)?;
    let groups = layout.groups();
    let mut moments = NormMoments {
        mean: gpu.zeros::<f64>(groups)?,
        var: gpu.zeros::<f64>(groups)?,
    };
    if groups > 0 {
        let f = kernel::<T>(gpu, "norm_moments")?;
        let mut args = gpu.stream().launch_builder(&f);
        args.arg(x)
            .arg(&layout.stats)
            .arg(&mut moments.mean)
            .arg(&mut moments.var);
        run("norm_moments", &mut args, Gpu::grid_rows(groups))?;
    }
    Ok(moments)
}

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` with the given moments: `norm_apply_<t>`.
pub fn norm_apply<T: CudaFloat>(
    gpu: &Gpu,
    x: &CudaSlice<T>,
    layout: &NormLayout,
    moments: &NormMoments,
    eps: f64,
    weight: Option<&CudaSlice<T>>,
    bias: Option<&CudaSlice<T>>,
) -> Result<CudaSlice<T>, CudaError> {
    check(layout, x, [weight, bias], Some(moments))?;
    let mut y = gpu.alloc::<T>(layout.len)?;
    if layout.len > 0 {
        let f = kernel::<T>(gpu, "norm_apply")?;
        let (null, n) = (0u64, layout.len as i64);
        let mut args = gpu.stream().launch_builder(&f);
        args.arg(x)
            .arg(&layout.stats)
            .arg(&moments.mean)
            .arg(&moments.var)
            .arg(&eps);
        arg_or_null(&mut args, weight, &null);
        arg_or_null(&mut args, bias, &null);
        args.arg(&layout.affine).arg(&mut y).arg(&n);
        run("norm_apply", &mut args, Gpu::grid_1d(layout.len))?;
    }
    Ok(y)
}

/// The norm's backward from the output gradient `dy`: `dx` (`norm_backward_sums_<t>`, then
/// `norm_backward_input_<t>`; with `constant` statistics only the latter) and the affine gradients
/// (`norm_affine_grads_<t>`), each when `wants` says so (`[dx, dweight, dbias]`; `dweight` needs a
/// weight).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward<T: CudaFloat>(
    gpu: &Gpu,
    (x, dy): (&CudaSlice<T>, &CudaSlice<T>),
    layout: &NormLayout,
    moments: &NormMoments,
    eps: f64,
    weight: Option<&CudaSlice<T>>,
    constant: bool,
    wants: [bool; 3],
) -> Result<NormGradients<T>, CudaError> {
    check(layout, x, [weight, None], Some(moments))?;
    check_len("norm", "dy", dy.len(), layout.len)?;
    let null = 0u64;
    let dx = if wants[0] {
        let groups = layout.groups();
        let mut sums = [gpu.zeros::<f64>(groups)?, gpu.zeros::<f64>(groups)?];
        if !constant && groups > 0 {
            let f = kernel::<T>(gpu, "norm_backward_sums")?;
            let mut args = gpu.stream().launch_builder(&f);
            args.arg(x)
                .arg(dy)
                .arg(&layout.stats)
                .arg(&moments.mean)
                .arg(&moments.var)
                .arg(&eps);
            arg_or_null(&mut args, weight, &null);
            let [sum_g, sum_gx] = &mut sums;
            args.arg(&layout.affine).arg(sum_g).arg(sum_gx);
            run("norm_backward_sums", &mut args, Gpu::grid_rows(groups))?;
        }
        let mut dx = gpu.alloc::<T>(layout.len)?;
        if layout.len > 0 {
            let f = kernel::<T>(gpu, "norm_backward_input")?;
            let (n, constant) = (layout.len as i64, i32::from(constant));
            let mut args = gpu.stream().launch_builder(&f);
            args.arg(x)
                .arg(dy)
                .arg(&layout.stats)
                .arg(&moments.mean)
                .arg(&moments.var)
                .arg(&eps);
            arg_or_null(&mut args, weight, &null);
            args.arg(&layout.affine)
                .arg(&sums[0])
                .arg(&sums[1])
                .arg(&constant)
                .arg(&mut dx)
                .arg(&n);
            run("norm_backward_input", &mut args, Gpu::grid_1d(layout.len))?;
        }
        Some(dx)
    } else {
        None
    };
    let affine_len = layout.affine_len();
    let mut dweight = (wants[1] && weight.is_some())
        .then(|| gpu.zeros::<T>(affine_len))
        .transpose()?;
    let mut dbias = wants[2].then(|| gpu.zeros::<T>(affine_len)).transpose()?;
    if (dweight.is_some() || dbias.is_some()) && affine_len > 0 {
        let f = kernel::<T>(gpu, "norm_affine_grads")?;
        let mut args = gpu.stream().launch_builder(&f);
        args.arg(x)
            .arg(dy)
            .arg(&layout.stats)
            .arg(&moments.mean)
            .arg(&moments.var)
            .arg(&eps);
        args.arg(&layout.affine);
        arg_or_null(&mut args, dweight.as_mut(), &null);
        arg_or_null(&mut args, dbias.as_mut(), &null);
        run("norm_affine_grads", &mut args, Gpu::grid_rows(affine_len))?;
    }
    Ok(NormGradients { dx, dweight, dbias })
}
