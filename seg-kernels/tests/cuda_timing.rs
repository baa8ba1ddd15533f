//! Times the CUDA kernels on the suite's shapes (../shared/bench/SUITE.md) against the GPU's memory
//! ceiling: each line gives the median time of 20 runs (CUDA events, after 3 warm-ups), the rate in
//! TFLOP/s over the counted floating-point operations, and the fewest bytes the kernel must move over
//! the measured device-to-device bandwidth. Ignored by default (it needs a GPU and minutes):
//!
//! `cargo test --release -p seg-kernels --test cuda_timing -- --ignored --nocapture`

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use seg_kernels::cpu::conv::ConvGeometry;
use seg_kernels::cpu::selective_scan::ScanShape;
use seg_kernels::cpu::window_attention::WindowAttnShape;
use seg_kernels::cuda::conv::{conv_backward_data, conv_backward_weight, conv_forward};
use seg_kernels::cuda::selective_scan::{scan_backward, scan_forward, CudaScanInputs};
use seg_kernels::cuda::window_attention::{window_attention_backward, window_attention_forward, CudaWindowAttnInputs};
use seg_kernels::cuda::{CudaError, Gpu, StorageFloat};

const WARMUP: usize = 3;
const REPS: usize = 20;

/// Median milliseconds of `f` over [`REPS`] runs, each between two events.
fn time_ms(gpu: &Gpu, mut f: impl FnMut() -> Result<(), CudaError>) -> f64 {
    let ctx = gpu.context();
    let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    for _ in 0..WARMUP {
        f().unwrap();
    }
    let mut times: Vec<f64> = (0..REPS)
        .map(|_| {
            let (start, end) = (ctx.new_event(flags).unwrap(), ctx.new_event(flags).unwrap());
            start.record(gpu.stream()).unwrap();
            f().unwrap();
            end.record(gpu.stream()).unwrap();
            start.elapsed_ms(&end).unwrap() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPS / 2]
}

/// A device buffer of `len` values of `T` filled from a fixed pattern in [-1, 1) (never zeros).
fn filled<T: StorageFloat + From16>(stream: &Arc<CudaStream>, len: usize, seed: u64) -> CudaSlice<T> {
    let host: Vec<T> = (0..len as u64)
        .map(|i| T::from_f32((((i * 2654435761 + seed * 97) % 1013) as f32 / 506.5) - 1.0))
        .collect();
    stream.clone_htod(&host).unwrap()
}

fn zeros<T: DeviceRepr + ValidAsZeroBits>(stream: &Arc<CudaStream>, len: usize) -> CudaSlice<T> {
    stream.alloc_zeros(len).unwrap()
}

/// Conversion from f32 for the fill.
trait From16: Sized {
    fn from_f32(v: f32) -> Self;
}
impl From16 for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
}
impl From16 for half::bf16 {
    fn from_f32(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
}

fn report(name: &str, ms: f64, flop: f64, bytes: f64, bandwidth: f64) {
    let floor = bytes / bandwidth * 1e3;
    println!(
        "{name:<44} {ms:>9.3} ms {:>8.2} TFLOP/s   memory floor {floor:>7.3} ms ({:.1}x)",
        flop / ms / 1e9,
        ms / floor
    );
}

/// Bytes per second of a large device-to-device copy (read + written).
fn copy_bandwidth(gpu: &Gpu) -> f64 {
    let len = 256 << 20;
    let src = filled::<f32>(gpu.stream(), len, 1);
    let mut dst = zeros::<f32>(gpu.stream(), len);
    let ms = time_ms(gpu, || {
        gpu.stream()
            .memcpy_dtod(&src, &mut dst)
            .map_err(|e| CudaError::call("memcpy", e))
    });
    let bw = 2.0 * 4.0 * len as f64 / ms * 1e3;
    println!("device-to-device copy of 1 GiB: {ms:.3} ms, {:.0} GB/s", bw / 1e9);
    bw
}

fn conv_suite<T: StorageFloat + From16>(gpu: &Gpu, bandwidth: f64) {
    let stream = gpu.stream();
    let size = std::mem::size_of::<T>() as f64;
    for (c, s) in [(32, 64), (64, 32), (128, 16), (16, 96)] {
        let g = ConvGeometry {
            batch: 1,
            in_channels: c,
            out_channels: c,
            groups: 1,
            input: [s; 3],
            kernel: [3; 3],
            stride: [1; 3],
            padding: [1; 3],
            dilation: [1; 3],
        };
        let (x, w, b, dy) = (
            filled::<T>(stream, g.x_len(), 1),
            filled::<T>(stream, g.w_len(), 2),
            filled::<T>(stream, c, 3),
            filled::<T>(stream, g.y_len(), 4),
        );
        let (mut y, mut dx, mut dw) = (
            zeros::<T>(stream, g.y_len()),
            zeros::<T>(stream, g.x_len()),
            zeros::<T>(stream, g.w_len()),
        );
        let flop = 2.0 * (g.y_len() * c * 27) as f64;
        let bytes = size * (g.x_len() + g.w_len() + g.y_len()) as f64;
        let ms = time_ms(gpu, || {
            conv_forward(
                gpu,
                &g,
                &x.as_view(),
                &w.as_view(),
                Some(&b.as_view()),
                &mut y.as_view_mut(),
            )
        });
        report(
            &format!("conv3d_fwd_c{c}_s{s}_cuda {}", T::SUFFIX),
            ms,
            flop,
            bytes,
            bandwidth,
        );
        let ms = time_ms(gpu, || {
            conv_forward(
                gpu,
                &g,
                &x.as_view(),
                &w.as_view(),
                Some(&b.as_view()),
                &mut y.as_view_mut(),
            )?;
            conv_backward_data(gpu, &g, &dy.as_view(), &w.as_view(), &mut dx.as_view_mut())?;
            conv_backward_weight(gpu, &g, &x.as_view(), &dy.as_view(), &mut dw.as_view_mut())
        });
        report(
            &format!("conv3d_fwdbwd_c{c}_s{s}_cuda {} (no db)", T::SUFFIX),
            ms,
            3.0 * flop,
            3.0 * bytes,
            bandwidth,
        );
    }
}

fn attention_suite<T: StorageFloat + From16>(gpu: &Gpu, bandwidth: f64) {
    let stream = gpu.stream();
    let s = WindowAttnShape {
        windows: 125,
        heads: 3,
        tokens: 343,
        head_dim: 16,
        mask_windows: 125,
        scale: 0.25,
    };
    let (w, h, n, d) = (s.windows, s.heads, s.tokens, s.head_dim);
    let qkv = filled::<T>(stream, w * n * 3 * h * d, 1);
    let bias = filled::<T>(stream, h * n * n, 2);
    let mask = filled::<T>(stream, w * n * n, 3);
    let dout = filled::<T>(stream, w * n * h * d, 4);
    let (mut out, mut lse) = (zeros::<T>(stream, w * n * h * d), zeros::<f32>(stream, w * h * n));
    let x = CudaWindowAttnInputs {
        qkv: qkv.as_view(),
        bias: bias.as_view(),
        mask: Some(mask.as_view()),
    };
    // Forward: S = QK^T and PV; backward: S and dP again in each of its two kernels, dQ, dK, dV.
    let mm = 2.0 * (w * h * n * n * d) as f64;
    let size = std::mem::size_of::<T>() as f64;
    let bytes = size * (2 * w * n * 3 * h * d + 2 * w * n * n + 2 * w * n * h * d) as f64;
    let ms = time_ms(gpu, || {
        window_attention_forward(gpu, &s, &x, &mut out.as_view_mut(), &mut lse.as_view_mut())?;
        window_attention_backward(gpu, &s, &x, &out.as_view(), &lse.as_view(), &dout.as_view(), true).map(|_| ())
    });
    report(
        &format!("window_attention_fwdbwd_c48_w7_n125_cuda {}", T::SUFFIX),
        ms,
        9.0 * mm,
        bytes,
        bandwidth,
    );
}

fn scan_suite<T: StorageFloat + From16>(gpu: &Gpu, bandwidth: f64) {
    let stream = gpu.stream();
    let s = ScanShape {
        batch: 1,
        dim: 384,
        len: 1024,
        state: 16,
        groups: 1,
        delta_softplus: true,
    };
    let (bdl, gnl) = (s.dim * s.len, s.state * s.len);
    let (u, delta, z, b, c) = (
        filled::<T>(stream, bdl, 1),
        filled::<T>(stream, bdl, 2),
        filled::<T>(stream, bdl, 3),
        filled::<T>(stream, gnl, 4),
        filled::<T>(stream, gnl, 5),
    );
    let a = filled::<f32>(stream, s.dim * s.state, 6);
    let (dd, db) = (filled::<f32>(stream, s.dim, 7), filled::<f32>(stream, s.dim, 8));
    let gy = filled::<T>(stream, bdl, 9);
    let x = CudaScanInputs {
        u: u.as_view(),
        delta: delta.as_view(),
        a: a.as_view(),
        b: b.as_view(),
        c: c.as_view(),
        d: Some(dd.as_view()),
        z: Some(z.as_view()),
        delta_bias: Some(db.as_view()),
    };
    let (mut y, mut last) = (zeros::<T>(stream, bdl), zeros::<f32>(stream, s.dim * s.state));
    let size = std::mem::size_of::<T>() as f64;
    // Forward reads u, delta, z, B, C and writes y; the backward reads them and gy, writes du,
    // ddelta, dz (T) and dB, dC (f32).
    let bytes = size * (4 * bdl + 2 * gnl) as f64 + size * (8 * bdl + 2 * gnl) as f64 + 8.0 * gnl as f64;
    let ms = time_ms(gpu, || {
        scan_forward(gpu, &s, &x, &mut y.as_view_mut(), &mut last.as_view_mut())?;
        scan_backward(gpu, &s, &x, &gy.as_view(), None).map(|_| ())
    });
    report(
        &format!("selective_scan_fwdbwd_d384_l1024_n16_cuda {}", T::SUFFIX),
        ms,
        0.0,
        bytes,
        bandwidth,
    );
}

#[test]
#[ignore = "needs a GPU; prints timings"]
fn cuda_kernel_times() {
    let gpu = match Gpu::new(0) {
        Ok(gpu) => gpu,
        Err(err) => {
            println!("skipped: {err}");
            return;
        }
    };
    let bandwidth = copy_bandwidth(&gpu);
    conv_suite::<f32>(&gpu, bandwidth);
    conv_suite::<half::bf16>(&gpu, bandwidth);
    attention_suite::<f32>(&gpu, bandwidth);
    attention_suite::<half::bf16>(&gpu, bandwidth);
    scan_suite::<f32>(&gpu, bandwidth);
    scan_suite::<half::bf16>(&gpu, bandwidth);
}
