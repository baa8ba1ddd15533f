//! Criterion benches of the CPU kernels through their ops, forward and forward + backward, at
//! sizes a 3D U-Net meets (`cargo bench -p seg-bench`). The side-by-side comparison with PyTorch is
//! the `seg-bench` suite; these are for watching one kernel while changing it.

use criterion::{criterion_group, criterion_main, Criterion};
use seg_tensor::{
    AvgPoolOptions, ConvOptions, ConvPadding, DType, InterpolateMode, InterpolateOptions, MaxPoolOptions, Result,
    ScanOptions, Tensor,
};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, seed, DType::F32).expect("random tensor")
}

/// Times `f(x)` and `f(x)` with the backward of a random upstream gradient.
fn forward_and_backward(c: &mut Criterion, name: &str, shape: &[usize], f: impl Fn(&Tensor) -> Result<Tensor>) {
    let x = randn(shape, 1);
    c.bench_function(&format!("{name}/fwd"), |b| b.iter(|| f(&x).expect("forward")));
    let x = x.requires_grad();
    let g = randn(f(&x).expect("forward").shape(), 2);
    c.bench_function(&format!("{name}/fwdbwd"), |b| {
        b.iter(|| f(&x).and_then(|y| y.backward_with(&g)).expect("backward"))
    });
}

fn convolution(c: &mut Criterion) {
    let same = ConvOptions {
        padding: ConvPadding::Explicit(vec![1]),
        ..ConvOptions::default()
    };
    let w = randn(&[32, 32, 3, 3, 3], 3)
        .mul_scalar(0.05)
        .expect("scale")
        .requires_grad();
    forward_and_backward(c, "conv3d_c32_s32", &[1, 32, 32, 32, 32], |x| x.conv3d(&w, None, &same));
    let strided = ConvOptions {
        stride: vec![2],
        ..same.clone()
    };
    forward_and_backward(c, "conv3d_c32_s32_stride2", &[1, 32, 32, 32, 32], |x| {
        x.conv3d(&w, None, &strided)
    });
}

fn pooling_and_resampling(c: &mut Criterion) {
    let shape = [1, 32, 64, 64, 64];
    forward_and_backward(c, "max_pool3d_k2", &shape, |x| x.max_pool3d(&MaxPoolOptions::new(&[2])));
    forward_and_backward(c, "avg_pool3d_k3_s1_p1", &shape, |x| {
        let mut o = AvgPoolOptions::new(&[3]);
        o.stride = Some(vec![1]);
        o.padding = vec![1];
        x.avg_pool3d(&o)
    });
    forward_and_backward(c, "trilinear_x2", &[1, 32, 32, 32, 32], |x| {
        x.interpolate(&InterpolateOptions::scale(&[2.0], InterpolateMode::Trilinear))
    });
}

fn normalisation(c: &mut Criterion) {
    let shape = [1, 32, 64, 64, 64];
    forward_and_backward(c, "instance_norm", &shape, |x| x.instance_norm(None, None, 1e-5));
    forward_and_backward(c, "group_norm_g8", &shape, |x| x.group_norm(8, None, None, 1e-5));
    forward_and_backward(c, "layer_norm_c48", &[32768, 48], |x| {
        x.layer_norm(&[48], None, None, 1e-5)
    });
}

fn scan_and_matmul(c: &mut Criterion) {
    let (d, n, l) = (128, 16, 1024);
    let delta = randn(&[1, d, l], 4);
    let a = randn(&[d, n], 5).exp().expect("exp").neg().expect("neg");
    let (bm, cm) = (randn(&[1, n, l], 6), randn(&[1, n, l], 7));
    let options = ScanOptions {
        d: None,
        z: None,
        delta_bias: None,
        delta_softplus: true,
    };
    forward_and_backward(c, "selective_scan_d128_l1024", &[1, d, l], |u| {
        u.selective_scan(&delta, &a, &bm, &cm, &options).map(|(y, _)| y)
    });
    let b = randn(&[512, 512], 8);
    forward_and_backward(c, "matmul_512", &[512, 512], |x| x.matmul(&b));
}

criterion_group! {
    name = kernels;
    config = Criterion::default().sample_size(10);
    targets = convolution, pooling_and_resampling, normalisation, scan_and_matmul
}
criterion_main!(kernels);
