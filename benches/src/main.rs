//! The `seg` benchmark suite: one JSON line per case, `{"name", "ms", "gflop"}`, named as in
//! `torch_baseline.py` (and `benches/torch_extra.py` for the cases added here) so that both can be
//! compared case by case in one sitting.
//!
//!     cargo run --release -p seg-bench -- [--only SUBSTRING] [--device cpu|cuda|cuda:N]
//!
//! With `--device cuda` the same cases run on the GPU (inputs and parameters moved there before the
//! clock starts; the clock is read after the device has finished) and are named with a `_cuda`
//! suffix; the host-only metric cases are left out, and two cases more measure the caching allocator
//! (`unet_train_step_64_uncached_cuda`: the release threshold at 0, every free handed back to the
//! driver at each synchronisation). Each GPU case also prints its peak device memory on stderr.

mod models;
mod swin;

use std::time::Instant;

use seg_tensor::memory;

use seg_losses::{DiceCELoss, DiceFocalLoss, DiceLoss, SoftDiceclDiceLoss, SoftclDiceLoss};
use seg_tensor::{ConvOptions, ConvPadding, ConvTransposeOptions, DType, Device, Result, ScanOptions, Tensor};

/// The timed body of a case.
type Body = Box<dyn FnMut() -> Result<()>>;

/// Prepares a case's inputs on a device and returns the timed body.
type Prepare = Box<dyn Fn(Device) -> Result<Body>>;

/// A benchmark case: its name, its useful work in GFLOP, and a closure that prepares inputs on a
/// device and returns the timed body; `host_only` for the metrics, which run on the host wherever
/// their inputs are.
struct Case {
    name: String,
    gflop: Option<f64>,
    prepare: Prepare,
    host_only: bool,
}

impl Case {
    fn new(name: impl Into<String>, gflop: Option<f64>, prepare: Prepare) -> Self {
        Case {
            name: name.into(),
            gflop,
            prepare,
            host_only: false,
        }
    }
}

/// Standard normal f32 values of `shape` from `seed`, on `device`.
fn randn(shape: &[usize], seed: u64, device: Device) -> Result<Tensor> {
    Tensor::randn(shape, seed, DType::F32)?.to_device(device)
}

fn matmul_case(n: usize) -> Case {
    Case::new(
        format!("matmul_f32_{n}"),
        Some(2.0 * (n * n * n) as f64 / 1e9),
        Box::new(move |device| {
            let a = randn(&[n, n], 1, device)?;
            let b = randn(&[n, n], 2, device)?;
            Ok(Box::new(move || a.matmul(&b).map(drop)))
        }),
    )
}

/// `conv3d(x, w, b)` with `x (1, c, s, s, s)`, `w (c, c, 3, 3, 3)`, padding 1; with `backward`, also the
/// gradients of x, w and b from a given upstream gradient.
fn conv3d_case(c: usize, s: usize, backward: bool) -> Case {
    let fwd_gflop = 2.0 * (c * c * 27 * s * s * s) as f64 / 1e9;
    let kind = if backward { "fwdbwd" } else { "fwd" };
    Case::new(
        format!("conv3d_{kind}_c{c}_s{s}"),
        Some(if backward { 3.0 * fwd_gflop } else { fwd_gflop }),
        Box::new(move |device| {
            let x = randn(&[1, c, s, s, s], 1, device)?;
            let w = Tensor::randn(&[c, c, 3, 3, 3], 2, DType::F32)?
                .mul_scalar(0.05)?
                .to_device(device)?;
            let b = randn(&[c], 3, device)?;
            let opts = ConvOptions {
                padding: ConvPadding::Explicit(vec![1]),
                ..Default::default()
            };
            if !backward {
                return Ok(Box::new(move || x.conv3d(&w, Some(&b), &opts).map(drop)) as Body);
            }
            let (x, w, b) = (x.requires_grad(), w.requires_grad(), b.requires_grad());
            let gy = randn(&[1, c, s, s, s], 4, device)?;
            Ok(Box::new(move || {
                x.conv3d(&w, Some(&b), &opts)?.backward_with(&gy).map(drop)
            }))
        }),
    )
}

/// `conv_transpose3d(x, w)` with `x (1, 64, 16, 16, 16)`, `w (64, 32, 2, 2, 2)`, stride 2, forward and
/// the backward for x and w.
fn conv_transpose3d_case() -> Case {
    Case::new(
        "conv_transpose3d_fwdbwd_c64_s16",
        Some(3.0 * 2.0 * (64 * 32 * 8 * 16 * 16 * 16) as f64 / 1e9),
        Box::new(|device| {
            let x = randn(&[1, 64, 16, 16, 16], 1, device)?.requires_grad();
            let w = Tensor::randn(&[64, 32, 2, 2, 2], 2, DType::F32)?
                .mul_scalar(0.05)?
                .to_device(device)?
                .requires_grad();
            let gy = randn(&[1, 32, 32, 32, 32], 3, device)?;
            let opts = ConvTransposeOptions {
                stride: vec![2],
                ..Default::default()
            };
            Ok(Box::new(move || {
                x.conv_transpose3d(&w, None, &opts)?.backward_with(&gy).map(drop)
            }))
        }),
    )
}

/// Mamba's selective scan with D, z, delta_bias and softplus: u (1, 384, len), A (384, 16), B, C
/// (1, 16, len), forward and the backward for every input.
fn selective_scan_case(len: usize) -> Case {
    Case::new(
        format!("selective_scan_fwdbwd_d384_l{len}_n16"),
        None,
        Box::new(move |device| {
            let (d, n) = (384, 16);
            let leaf = |t: Tensor| -> Result<Tensor> { Ok(t.to_device(device)?.requires_grad()) };
            let u = leaf(Tensor::randn(&[1, d, len], 1, DType::F32)?)?;
            let delta = leaf(Tensor::randn(&[1, d, len], 2, DType::F32)?.mul_scalar(0.5)?)?;
            let a = leaf(Tensor::randn(&[d, n], 3, DType::F32)?.mul_scalar(0.5)?.exp()?.neg()?)?;
            let b = leaf(Tensor::randn(&[1, n, len], 4, DType::F32)?)?;
            let c = leaf(Tensor::randn(&[1, n, len], 5, DType::F32)?)?;
            let skip = leaf(Tensor::randn(&[d], 6, DType::F32)?)?;
            let z = leaf(Tensor::randn(&[1, d, len], 7, DType::F32)?)?;
            let bias = leaf(Tensor::randn(&[d], 8, DType::F32)?.mul_scalar(0.1)?)?;
            let gy = randn(&[1, d, len], 9, device)?;
            Ok(Box::new(move || {
                let options = ScanOptions {
                    d: Some(&skip),
                    z: Some(&z),
                    delta_bias: Some(&bias),
                    delta_softplus: true,
                };
                u.selective_scan(&delta, &a, &b, &c, &options)?
                    .0
                    .backward_with(&gy)
                    .map(drop)
            }))
        }),
    )
}

/// `instance_norm(x, w, b)` with `x (1, c, s, s, s)` (eps 1e-5); with `backward`, also the gradients
/// of x, w and b from a given upstream gradient.
fn instance_norm_case(c: usize, s: usize, backward: bool) -> Case {
    let kind = if backward { "fwdbwd" } else { "fwd" };
    Case::new(
        format!("instance_norm_{kind}_c{c}_s{s}"),
        None,
        Box::new(move |device| {
            let x = randn(&[1, c, s, s, s], 1, device)?;
            let w = randn(&[c], 2, device)?;
            let b = randn(&[c], 3, device)?;
            if !backward {
                return Ok(Box::new(move || x.instance_norm(Some(&w), Some(&b), 1e-5).map(drop)) as Body);
            }
            let (x, w, b) = (x.requires_grad(), w.requires_grad(), b.requires_grad());
            let gy = randn(&[1, c, s, s, s], 4, device)?;
            Ok(Box::new(move || {
                x.instance_norm(Some(&w), Some(&b), 1e-5)?.backward_with(&gy).map(drop)
            }))
        }),
    )
}

/// A MONAI loss on logits `(2, c, s, s, s)` against labels `(2, 1, s, s, s)`, forward and the
/// backward for the logits.
fn loss_case(name: &str, c: usize, s: usize, loss: fn(&Tensor, &Tensor) -> Result<Tensor>) -> Case {
    Case::new(
        format!("{name}_fwdbwd_c{c}_s{s}"),
        None,
        Box::new(move |device| {
            let x = randn(&[2, c, s, s, s], 1, device)?.requires_grad();
            let u = Tensor::rand(&[2, 1, s, s, s], 2, DType::F32)?;
            let labels = u
                .mul_scalar(c as f64)?
                .to_dtype(DType::I64)?
                .to_dtype(DType::F32)?
                .to_device(device)?;
            Ok(Box::new(move || loss(&x, &labels)?.backward().map(drop)))
        }),
    )
}

/// One-hot `(1, 2, s, s, s)` masks of two wavy balls, as `hd95_pair` in `torch_extra.py`: the voxels
/// with `r < R (1 + 0.08 sin(k x / s) cos(k y / s))` around a centre, `(R, k)` = (0.3 s, 5) for the
/// prediction (centre shifted by 0.03 s) and (0.32 s, 3) for the truth.
fn wavy_ball_pair(s: usize) -> Result<(Tensor, Tensor)> {
    let ball = |radius: f64, waves: f64, shift: f64| {
        let n = s as f64;
        let mut fg = Vec::with_capacity(s * s * s);
        for z in 0..s {
            for y in 0..s {
                for x in 0..s {
                    let (fz, fy, fx) = (
                        z as f64 - n / 2.0 - shift,
                        y as f64 - n / 2.0,
                        x as f64 - n / 2.0 + shift,
                    );
                    let r = (fz * fz + fy * fy + fx * fx).sqrt();
                    let wave = 1.0 + 0.08 * (waves * x as f64 / n).sin() * (waves * y as f64 / n).cos();
                    fg.push(f32::from(r < radius * n * wave));
                }
            }
        }
        let mut one_hot: Vec<f32> = fg.iter().map(|v| 1.0 - v).collect();
        one_hot.extend(fg);
        Tensor::from_vec(one_hot, &[1, 2, s, s, s])
    };
    Ok((ball(0.3, 5.0, 0.03 * s as f64)?, ball(0.32, 3.0, 0.0)?))
}

/// MONAI's `HausdorffDistanceMetric(include_background=False, percentile=95)` on a `s^3` pair.
fn hd95_case(s: usize) -> Case {
    Case {
        host_only: true,
        ..Case::new(
            format!("hd95_s{s}"),
            None,
            Box::new(move |_| {
                let (pred, truth) = wavy_ball_pair(s)?;
                Ok(Box::new(move || {
                    seg_losses::metrics::hausdorff_distance(&pred, &truth, false, Some(95.0), false, None).map(drop)
                }))
            }),
        )
    }
}

/// `surface_metrics` (HD, HD95 and ASSD from one set of surface distances) of MONAI's
/// `include_background=False` on a `s^3` pair of wavy balls.
fn surface_metrics_case(s: usize) -> Case {
    Case {
        host_only: true,
        ..Case::new(
            format!("surface_metrics_s{s}"),
            None,
            Box::new(move |_| {
                let (pred, truth) = wavy_ball_pair(s)?;
                Ok(Box::new(move || {
                    seg_losses::metrics::surface_metrics(&pred, &truth, false, None).map(drop)
                }))
            }),
        )
    }
}

fn loss_cases() -> [Case; 3] {
    [
        loss_case("dice_ce", 4, 64, |x, y| {
            DiceCELoss {
                dice: DiceLoss {
                    softmax: true,
                    to_onehot_y: true,
                    ..Default::default()
                },
                ..Default::default()
            }
            .forward(x, y)
        }),
        loss_case("dice_focal", 4, 64, |x, y| {
            DiceFocalLoss {
                dice: DiceLoss {
                    softmax: true,
                    to_onehot_y: true,
                    ..Default::default()
                },
                ..Default::default()
            }
            .forward(x, y)
        }),
        loss_case("soft_dice_cldice", 2, 64, |x, y| {
            SoftDiceclDiceLoss {
                cldice: SoftclDiceLoss {
                    softmax: true,
                    to_onehot_y: true,
                    ..Default::default()
                },
                ..Default::default()
            }
            .forward(x, y)
        }),
    ]
}

/// Every case; on a GPU also the allocator's cases (see [`models::allocator_cases`]).
fn cases(device: Device) -> Vec<Case> {
    let mut cases = Vec::new();
    for (c, s) in [(32, 64), (64, 32), (128, 16), (16, 96)] {
        cases.push(conv3d_case(c, s, false));
        cases.push(conv3d_case(c, s, true));
    }
    cases.extend([conv_transpose3d_case(), matmul_case(1024), matmul_case(2048)]);
    cases.extend([instance_norm_case(32, 64, false), instance_norm_case(32, 64, true)]);
    cases.extend([1024, 8192, 65536].map(selective_scan_case));
    cases.extend([swin::window_attention_case(), swin::swin_block_case()]);
    cases.extend(loss_cases());
    cases.push(hd95_case(128));
    cases.push(surface_metrics_case(256));
    cases.extend(models::model_cases());
    if device != Device::Cpu {
        cases.extend(models::allocator_cases());
    }
    cases
}

/// Median wall time in ms of the timed body on `device` (each run timed until the device has
/// finished): 2 warm-ups, then at least 5 repetitions (3 for cases over a second).
fn measure(body: &mut dyn FnMut() -> Result<()>, device: Device) -> Result<f64> {
    let mut times = Vec::new();
    for i in 0..7 {
        device.synchronize()?;
        let start = Instant::now();
        body()?;
        device.synchronize()?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if i >= 2 {
            times.push(ms);
        }
        if i == 2 && ms > 1000.0 {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The command line: `--only SUBSTRING` and `--device NAME`, in any order.
fn parse_args() -> std::result::Result<(Option<String>, String), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut only, mut device) = (None, "cpu".to_string());
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--only" => only = Some(value.clone()),
            "--device" => device = value.clone(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((only, device))
}

/// Runs one case on `device` and prints its line (and, on a GPU, its peak device memory on stderr).
fn run_case(case: &Case, name: &str, device: Device) -> Result<()> {
    memory::reset_device_peak(device);
    let ms = (case.prepare)(device).and_then(|mut body| measure(&mut *body, device))?;
    println!(
        "{}",
        serde_json::json!({"name": name, "ms": (ms * 1000.0).round() / 1000.0, "gflop": case.gflop})
    );
    if let Device::Cuda(ordinal) = device {
        let mib = |bytes: u64| (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0;
        let pool = memory::cuda_pool_bytes(ordinal)?;
        eprintln!(
            "{}",
            serde_json::json!({
                "name": name,
                "peak_tensor_mib": mib(memory::device_peak_bytes(device) as u64),
                "pool_reserved_mib": pool.map(|p| mib(p.reserved)),
            })
        );
        // Whatever the case set, the next one starts with the caching allocator keeping everything.
        memory::set_cuda_release_threshold(ordinal, u64::MAX)?;
    }
    Ok(())
}

fn main() {
    seg_tensor::retain_freed_memory();
    let (only, device) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\nusage: seg-bench [--only SUBSTRING] [--device cpu|cuda|cuda:N]");
            std::process::exit(2);
        }
    };
    let device = match Device::parse(&device) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("seg-bench: {e}");
            std::process::exit(2);
        }
    };
    let suffix = if device == Device::Cpu { "" } else { "_cuda" };
    if device == Device::Cpu {
        if let Some(gflops) = seg_kernels::cpu::simd::measure_fma_peak(available_threads()) {
            // On stderr: stdout holds only case lines (name, ms, gflop), as the suite's format says.
            eprintln!(
                "{}",
                serde_json::json!({"name": "fma_peak", "gflops": (gflops * 10.0).round() / 10.0})
            );
        }
    }
    let mut failed = false;
    for case in cases(device) {
        let name = format!("{}{suffix}", case.name);
        if only.as_ref().is_some_and(|p| !name.contains(p.as_str())) || (case.host_only && device != Device::Cpu) {
            continue;
        }
        if let Err(e) = run_case(&case, &name, device) {
            eprintln!("{name}: {e}");
            // On the CPU every case must run; on a GPU an op without a CUDA path yet skips its case.
            if device == Device::Cpu {
                std::process::exit(1);
            }
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// The cores the process is given (rayon and the peak measurement use them all).
fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
