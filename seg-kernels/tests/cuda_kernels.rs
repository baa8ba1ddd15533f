//! The CUDA kernels against the CPU reference loops (in f64, on the same inputs rounded to the storage
//! type), on shapes that are not multiples of any tile: groups, stride, dilation, padding, clipped
//! windows, masks, optional scan inputs. Outputs are poisoned with NaN before each launch. Without a
//! GPU every test prints `skipped: <reason>` and passes.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use seg_kernels::cpu::conv::{
    conv_backward_data_reference, conv_backward_weight_reference, conv_forward_reference, ConvGeometry,
};
use seg_kernels::cpu::selective_scan::{scan_backward_reference, scan_forward_reference, ScanInputs, ScanShape};
use seg_kernels::cpu::window_attention::{
    window_attention_backward_reference, window_attention_forward_reference, WindowAttnInputs, WindowAttnShape,
};
use seg_kernels::cuda::conv::{add_channel_bias, conv_backward_data, conv_backward_weight, conv_forward};
use seg_kernels::cuda::selective_scan::{scan_backward, scan_forward, CudaScanInputs};
use seg_kernels::cuda::window_attention::{window_attention_backward, window_attention_forward, CudaWindowAttnInputs};
use seg_kernels::cuda::{Gpu, StorageFloat};

fn gpu() -> Option<Gpu> {
    match Gpu::new(0) {
        Ok(gpu) => Some(gpu),
        Err(err) => {
            println!("skipped: {err}");
            None
        }
    }
}

/// A storage type under test: conversions and the tolerance of `‖out − ref‖ / ‖ref‖`.
trait Elem: StorageFloat {
    const TOL: f64;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn nan() -> Self {
        Self::from_f64(f64::NAN)
    }
}

impl Elem for f32 {
    const TOL: f64 = 1e-5;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Elem for half::f16 {
    const TOL: f64 = 5e-3;
    fn from_f64(v: f64) -> Self {
        half::f16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
}

impl Elem for half::bf16 {
    const TOL: f64 = 2e-2;
    fn from_f64(v: f64) -> Self {
        half::bf16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
}

/// Values in [lo, hi) from a xorshift generator.
fn random(len: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// `v` rounded to `T`, and back to f64 for the reference.
fn rounded<T: Elem>(v: &[f64]) -> (Vec<T>, Vec<f64>) {
    let t: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
    let back = t.iter().map(|&x| x.to_f64()).collect();
    (t, back)
}

fn upload<T: DeviceRepr>(stream: &Arc<CudaStream>, v: &[T]) -> CudaSlice<T> {
    stream.clone_htod(v).expect("copy to the device")
}

fn download<T: DeviceRepr>(stream: &Arc<CudaStream>, v: &CudaSlice<T>) -> Vec<T> {
    stream.clone_dtoh(v).expect("copy to the host")
}

/// Fails unless `found` is finite and within `tol` of `expected` in relative norm (with an absolute
/// slack of 1e-7 per element, for results that are zero).
fn assert_close(what: &str, found: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    assert!(found.iter().all(|v| v.is_finite()), "{what}: not finite (unwritten?)");
    let err: f64 = found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = expected.iter().map(|b| b * b).sum::<f64>().sqrt();
    let slack = 1e-7 * (expected.len() as f64).sqrt();
    assert!(
        err <= tol * norm + slack,
        "{what}: error {err:e}, relative {:e} > {tol:e}",
        err / norm
    );
}

fn to_f64s<T: Elem>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.to_f64()).collect()
}

fn geometries() -> Vec<ConvGeometry> {
    let g = |batch, cin, cout, groups, input, kernel, stride, padding, dilation| ConvGeometry {
        batch,
        in_channels: cin,
        out_channels: cout,
        groups,
        input,
        kernel,
        stride,
        padding,
        dilation,
    };
    vec![
        g(2, 3, 5, 1, [7, 9, 11], [3; 3], [1; 3], [1; 3], [1; 3]),
        g(1, 6, 4, 2, [5, 8, 9], [3, 2, 3], [2, 2, 1], [1, 0, 2], [1, 2, 1]),
        g(2, 8, 8, 8, [6, 7, 6], [3; 3], [2; 3], [1; 3], [1; 3]),
        g(3, 4, 70, 1, [1, 13, 17], [1, 3, 3], [1, 2, 2], [0, 1, 1], [1; 3]),
        g(2, 5, 3, 1, [1, 1, 100], [1, 1, 5], [1; 3], [0, 0, 4], [1, 1, 3]),
        g(1, 70, 66, 1, [4, 5, 6], [3; 3], [1; 3], [1; 3], [1; 3]),
        g(2, 2, 3, 1, [16, 16, 16], [3; 3], [1; 3], [1; 3], [1; 3]),
        g(1, 4, 6, 2, [8, 8, 8], [2; 3], [2; 3], [0; 3], [1; 3]),
        g(1, 3, 2, 1, [5, 5, 5], [1; 3], [3, 2, 1], [2, 0, 1], [1; 3]),
    ]
}

fn conv_case<T: Elem>(gpu: &Gpu, g: &ConvGeometry, seed: u64) {
    let stream = gpu.stream();
    let (x, x64) = rounded::<T>(&random(g.x_len(), seed, -1.0, 1.0));
    let (w, w64) = rounded::<T>(&random(g.w_len(), seed + 1, -1.0, 1.0));
    let (b, b64) = rounded::<T>(&random(g.out_channels, seed + 2, -1.0, 1.0));
    let (dy, dy64) = rounded::<T>(&random(g.y_len(), seed + 3, -1.0, 1.0));
    let (xd, wd, bd, dyd) = (
        upload(stream, &x),
        upload(stream, &w),
        upload(stream, &b),
        upload(stream, &dy),
    );
    let what = |op: &str| format!("{op} {} {g:?}", T::SUFFIX);

    let mut expected = vec![0.0; g.y_len()];
    conv_forward_reference(g, &x64, &w64, Some(&b64), &mut expected);
    let mut y = upload(stream, &vec![T::nan(); g.y_len()]);
    conv_forward(
        gpu,
        g,
        &xd.as_view(),
        &wd.as_view(),
        Some(&bd.as_view()),
        &mut y.as_view_mut(),
    )
    .unwrap();
    assert_close(
        &what("conv_forward"),
        &to_f64s(&download(stream, &y)),
        &expected,
        T::TOL,
    );

    let mut expected = vec![0.0; g.x_len()];
    conv_backward_data_reference(g, &dy64, &w64, &mut expected);
    let mut dx = upload(stream, &vec![T::nan(); g.x_len()]);
    conv_backward_data(gpu, g, &dyd.as_view(), &wd.as_view(), &mut dx.as_view_mut()).unwrap();
    assert_close(
        &what("conv_backward_data"),
        &to_f64s(&download(stream, &dx)),
        &expected,
        T::TOL,
    );

    let mut expected = vec![0.0; g.w_len()];
    conv_backward_weight_reference(g, &x64, &dy64, &mut expected);
    let mut dw = upload(stream, &vec![T::nan(); g.w_len()]);
    conv_backward_weight(gpu, g, &xd.as_view(), &dyd.as_view(), &mut dw.as_view_mut()).unwrap();
    assert_close(
        &what("conv_backward_weight"),
        &to_f64s(&download(stream, &dw)),
        &expected,
        T::TOL,
    );
}

#[test]
fn conv_matches_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, g) in geometries().iter().enumerate() {
        conv_case::<f32>(&gpu, g, 10 * i as u64);
        conv_case::<half::f16>(&gpu, g, 10 * i as u64 + 1);
        conv_case::<half::bf16>(&gpu, g, 10 * i as u64 + 2);
    }
}

#[test]
fn channel_bias_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let (n, c, plane) = (3, 5, 37);
    let y = random(n * c * plane, 7, -1.0, 1.0);
    let b = random(c, 8, -1.0, 1.0);
    let expected: Vec<f64> = y.iter().enumerate().map(|(i, v)| v + b[i / plane % c]).collect();
    let stream = gpu.stream();
    let mut yd = upload(stream, &y.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let bd = upload(stream, &b.iter().map(|&v| v as f32).collect::<Vec<_>>());
    add_channel_bias(&gpu, &mut yd.as_view_mut(), &bd.as_view(), plane).unwrap();
    let found: Vec<f64> = download(stream, &yd).iter().map(|&v| v as f64).collect();
    assert_close("add_channel_bias", &found, &expected, 1e-6);
}

/// (windows, heads, tokens, head_dim, mask windows, masked, mask gradient).
const ATTENTION_CASES: &[(usize, usize, usize, usize, usize, bool, bool)] = &[
    (4, 3, 343, 16, 2, true, true),
    (3, 2, 49, 32, 1, false, false),
    (2, 1, 5, 8, 2, true, false),
    (6, 2, 70, 24, 3, true, true),
    (2, 2, 100, 64, 1, true, true),
    (1, 1, 1, 3, 1, false, false),
];

fn attention_case<T: Elem>(gpu: &Gpu, case: (usize, usize, usize, usize, usize, bool, bool), seed: u64) {
    let (windows, heads, n, d, nw, masked, mask_grad) = case;
    let s = WindowAttnShape {
        windows,
        heads,
        tokens: n,
        head_dim: d,
        mask_windows: nw,
        scale: (d as f64).powf(-0.5),
    };
    let stream = gpu.stream();
    let (qkv, qkv64) = rounded::<T>(&random(windows * n * 3 * heads * d, seed, -2.0, 2.0));
    let (bias, bias64) = rounded::<T>(&random(heads * n * n, seed + 1, -1.0, 1.0));
    // MONAI's shift mask: 0 or -100 by region; here by a random draw.
    let mask_values: Vec<f64> = random(nw * n * n, seed + 2, 0.0, 1.0)
        .iter()
        .map(|&v| if v < 0.3 { -100.0 } else { 0.0 })
        .collect();
    let (mask, mask64) = rounded::<T>(&mask_values);
    let (dout, dout64) = rounded::<T>(&random(windows * n * heads * d, seed + 3, -1.0, 1.0));
    let x64 = WindowAttnInputs {
        qkv: &qkv64,
        bias: &bias64,
        mask: masked.then_some(&mask64[..]),
    };
    let mut out64 = vec![0.0; windows * n * heads * d];
    let mut lse64 = vec![0.0; windows * heads * n];
    window_attention_forward_reference(&s, &x64, &mut out64, &mut lse64);
    let g64 = window_attention_backward_reference(&s, &x64, &dout64, mask_grad);

    let (qkvd, biasd, maskd, doutd) = (
        upload(stream, &qkv),
        upload(stream, &bias),
        upload(stream, &mask),
        upload(stream, &dout),
    );
    let x = CudaWindowAttnInputs {
        qkv: qkvd.as_view(),
        bias: biasd.as_view(),
        mask: masked.then(|| maskd.as_view()),
    };
    let mut out = upload(stream, &vec![T::nan(); out64.len()]);
    let mut lse = upload(stream, &vec![f32::NAN; lse64.len()]);
    window_attention_forward(gpu, &s, &x, &mut out.as_view_mut(), &mut lse.as_view_mut()).unwrap();
    let what = |part: &str| format!("window attention {part} {} {case:?}", T::SUFFIX);
    assert_close(&what("out"), &to_f64s(&download(stream, &out)), &out64, T::TOL);
    let lse_found: Vec<f64> = download(stream, &lse).iter().map(|&v| v as f64).collect();
    assert_close(&what("lse"), &lse_found, &lse64, 1e-5);

    let g =
        window_attention_backward(gpu, &s, &x, &out.as_view(), &lse.as_view(), &doutd.as_view(), mask_grad).unwrap();
    // The backward reads the stored (rounded) output in D = do . o: twice the tolerance.
    let tol = 2.0 * T::TOL;
    assert_close(&what("dqkv"), &to_f64s(&download(stream, &g.qkv)), &g64.qkv, tol);
    let f32s = |v: &CudaSlice<f32>| download(stream, v).iter().map(|&v| v as f64).collect::<Vec<_>>();
    assert_close(&what("dbias"), &f32s(&g.bias), &g64.bias, tol);
    assert_eq!(g.mask.is_some(), masked && mask_grad, "{}", what("dmask presence"));
    if let Some(dm) = &g.mask {
        assert_close(&what("dmask"), &f32s(dm), &g64.mask, tol);
    }
}

#[test]
fn window_attention_matches_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, &case) in ATTENTION_CASES.iter().enumerate() {
        attention_case::<f32>(&gpu, case, 100 + 10 * i as u64);
        attention_case::<half::bf16>(&gpu, case, 101 + 10 * i as u64);
        attention_case::<half::f16>(&gpu, case, 102 + 10 * i as u64);
    }
}

/// (batch, dim, len, state, groups, softplus, D, z, delta_bias, g_last).
type ScanCase = (usize, usize, usize, usize, usize, bool, bool, bool, bool, bool);
const SCAN_CASES: &[ScanCase] = &[
    (2, 6, 37, 5, 3, true, true, true, true, true),
    (1, 5, 64, 16, 1, false, false, false, false, false),
    (2, 4, 100, 8, 2, true, true, false, false, true),
    (1, 3, 1, 4, 1, true, false, true, true, false),
    (2, 8, 300, 16, 4, true, true, true, true, true),
    (1, 2, 33, 1, 2, true, true, true, false, false),
];

fn scan_case<T: Elem>(gpu: &Gpu, case: ScanCase, seed: u64) {
    let (batch, dim, len, state, groups, delta_softplus, has_d, has_z, has_bias, has_glast) = case;
    let s = ScanShape {
        batch,
        dim,
        len,
        state,
        groups,
        delta_softplus,
    };
    let (bdl, gnl) = (batch * dim * len, batch * groups * state * len);
    let f32_rounded = |v: Vec<f64>| -> (Vec<f32>, Vec<f64>) {
        let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        let back = f.iter().map(|&x| x as f64).collect();
        (f, back)
    };
    let (u, u64_) = rounded::<T>(&random(bdl, seed, -1.0, 1.0));
    let (delta, delta64) = rounded::<T>(&random(bdl, seed + 1, -1.5, 0.5));
    let (a, a64) = f32_rounded(random(dim * state, seed + 2, -1.5, -0.1));
    let (b, b64) = rounded::<T>(&random(gnl, seed + 3, -1.0, 1.0));
    let (c, c64) = rounded::<T>(&random(gnl, seed + 4, -1.0, 1.0));
    let (d, d64) = f32_rounded(random(dim, seed + 5, -1.0, 1.0));
    let (z, z64) = rounded::<T>(&random(bdl, seed + 6, -2.0, 2.0));
    let (db, db64) = f32_rounded(random(dim, seed + 7, -0.5, 0.5));
    let (gy, gy64) = rounded::<T>(&random(bdl, seed + 8, -1.0, 1.0));
    let (gl, gl64) = f32_rounded(random(batch * dim * state, seed + 9, -1.0, 1.0));
    let x64 = ScanInputs {
        u: &u64_,
        delta: &delta64,
        a: &a64,
        b: &b64,
        c: &c64,
        d: has_d.then_some(&d64[..]),
        z: has_z.then_some(&z64[..]),
        delta_bias: has_bias.then_some(&db64[..]),
    };
    let mut y64 = vec![0.0; bdl];
    let mut last64 = vec![0.0; batch * dim * state];
    scan_forward_reference(&s, &x64, &mut y64, &mut last64);
    let g64 = scan_backward_reference(&s, &x64, &gy64, has_glast.then_some(&gl64[..]));

    let stream = gpu.stream();
    let (ud, deltad, ad, bd, cd) = (
        upload(stream, &u),
        upload(stream, &delta),
        upload(stream, &a),
        upload(stream, &b),
        upload(stream, &c),
    );
    let (dd, zd, dbd, gyd, gld) = (
        upload(stream, &d),
        upload(stream, &z),
        upload(stream, &db),
        upload(stream, &gy),
        upload(stream, &gl),
    );
    let x = CudaScanInputs {
        u: ud.as_view(),
        delta: deltad.as_view(),
        a: ad.as_view(),
        b: bd.as_view(),
        c: cd.as_view(),
        d: has_d.then(|| dd.as_view()),
        z: has_z.then(|| zd.as_view()),
        delta_bias: has_bias.then(|| dbd.as_view()),
    };
    let mut y = upload(stream, &vec![T::nan(); bdl]);
    let mut last = upload(stream, &vec![f32::NAN; batch * dim * state]);
    scan_forward(gpu, &s, &x, &mut y.as_view_mut(), &mut last.as_view_mut()).unwrap();
    let what = |part: &str| format!("selective scan {part} {} {case:?}", T::SUFFIX);
    let f32s = |v: &CudaSlice<f32>| download(stream, v).iter().map(|&v| v as f64).collect::<Vec<_>>();
    assert_close(&what("y"), &to_f64s(&download(stream, &y)), &y64, T::TOL);
    assert_close(&what("last_state"), &f32s(&last), &last64, T::TOL.max(1e-5));

    let g_last = gld.as_view();
    let g = scan_backward(gpu, &s, &x, &gyd.as_view(), has_glast.then_some(&g_last)).unwrap();
    let tol = T::TOL.max(1e-5);
    assert_close(&what("du"), &to_f64s(&download(stream, &g.u)), &g64.u, tol);
    assert_close(&what("ddelta"), &to_f64s(&download(stream, &g.delta)), &g64.delta, tol);
    assert_close(&what("dA"), &f32s(&g.a), &g64.a, tol);
    assert_close(&what("dB"), &f32s(&g.b), &g64.b, tol);
    assert_close(&what("dC"), &f32s(&g.c), &g64.c, tol);
    assert_eq!(
        (g.d.is_some(), g.z.is_some(), g.delta_bias.is_some()),
        (has_d, has_z, has_bias),
        "{}",
        what("optional gradients")
    );
    if let Some(v) = &g.d {
        assert_close(&what("dD"), &f32s(v), &g64.d, tol);
    }
    if let Some(v) = &g.z {
        assert_close(&what("dz"), &to_f64s(&download(stream, v)), &g64.z, tol);
    }
    if let Some(v) = &g.delta_bias {
        assert_close(&what("ddelta_bias"), &f32s(v), &g64.delta_bias, tol);
    }
}

#[test]
fn selective_scan_matches_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, &case) in SCAN_CASES.iter().enumerate() {
        scan_case::<f32>(&gpu, case, 1000 + 20 * i as u64);
        scan_case::<half::bf16>(&gpu, case, 1001 + 20 * i as u64);
    }
}
