//! Swin and Mamba blocks on CUDA against the same blocks on the CPU: the output, the input's gradient
//! and every parameter's gradient. Each test first opens `Device::cuda(0)`; where that fails it prints
//! `skipped: <reason>` and passes.

use seg_nn::mamba::{Mamba, MambaConfig, Orientation};
use seg_nn::swin::{BasicLayer, BasicLayerConfig, MergingVersion};
use seg_nn::Module;
use seg_tensor::{DType, Device, Result, Tensor};

fn gpu() -> Option<Device> {
    match Device::cuda(0) {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// The output of `forward(x)`, then the gradients of `sum(output * up)` in `x` and in every
/// parameter (by name), with the module's parameters and `x` moved to `device` first; all as host
/// values.
fn run<M: Module + Clone>(
    module: &M,
    forward: impl Fn(&M, &Tensor) -> Result<Tensor>,
    x: &Tensor,
    up: &Tensor,
    device: Device,
) -> Vec<(String, Vec<f64>)> {
    let mut m = module.clone();
    m.visit_mut(&mut |_, t| *t = t.detach().to_device(device).unwrap().requires_grad());
    let x = x.to_device(device).unwrap().requires_grad();
    let y = forward(&m, &x).unwrap_or_else(|e| panic!("forward on {device:?}: {e}"));
    assert_eq!(y.device(), device, "the output stays on the device");
    let g = y
        .mul(&up.to_device(device).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut all = vec![
        ("output".to_string(), y.to_vec_f64()),
        ("input".to_string(), g.get(&x).unwrap().to_vec_f64()),
    ];
    m.visit(&mut |name, t| {
        let grad = g.get(t).unwrap_or_else(|| panic!("no gradient for {name}"));
        all.push((name.to_string(), grad.to_vec_f64()));
    });
    all
}

/// Fails unless the CUDA and CPU runs agree within `tol` relative to each tensor's largest magnitude.
fn assert_same_on_both<M: Module + Clone>(
    what: &str,
    module: &M,
    forward: impl Fn(&M, &Tensor) -> Result<Tensor> + Copy,
    x: &Tensor,
    up: &Tensor,
    device: Device,
    tol: f64,
) {
    let cpu = run(module, forward, x, up, Device::Cpu);
    let gpu = run(module, forward, x, up, device);
    assert_eq!(cpu.len(), gpu.len());
    for ((name, c), (_, g)) in cpu.iter().zip(&gpu) {
        let scale = c.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.iter().zip(c).enumerate() {
            assert!((a - b).abs() <= tol * scale, "{what}: {name}[{i}]: cuda {a} vs cpu {b}");
        }
    }
}

#[test]
fn swin_basic_layer_runs_forward_and_backward_on_the_device() {
    let Some(device) = gpu() else { return };
    // Padding, shifted windows with their mask, and merging; then a window clipped to the map's depth.
    for (shape, window, seed) in [([1, 12, 5, 6, 7], [4, 4, 4], 1u64), ([2, 12, 3, 8, 8], [4, 4, 4], 2)] {
        let config = BasicLayerConfig {
            dim: 12,
            depth: 2,
            num_heads: 3,
            window_size: window.to_vec(),
            mlp_ratio: 2.0,
            qkv_bias: true,
            downsample: Some(MergingVersion::V1),
        };
        let layer = BasicLayer::new(&config, seed).unwrap();
        let x = Tensor::randn(&shape, seed + 10, DType::F32).unwrap();
        let out_shape = layer.forward(&x).unwrap().shape().to_vec();
        let up = Tensor::randn(&out_shape, seed + 20, DType::F32).unwrap();
        let what = format!("BasicLayer on {shape:?}");
        assert_same_on_both(&what, &layer, |l, x| l.forward(x), &x, &up, device, 1e-3);
    }
}

#[test]
fn mamba_blocks_run_forward_and_backward_on_the_device() {
    let Some(device) = gpu() else { return };
    for orientation in [Orientation::Forward, Orientation::TriOriented { nslices: 3 }] {
        let mut config = MambaConfig::new(8);
        config.orientation = orientation;
        let block = Mamba::new(config, 5).unwrap();
        let x = Tensor::randn(&[2, 12, 8], 6, DType::F32).unwrap();
        let up = Tensor::randn(&[2, 12, 8], 7, DType::F32).unwrap();
        let what = format!("Mamba {orientation:?}");
        assert_same_on_both(&what, &block, |b, x| b.forward(x), &x, &up, device, 1e-3);
    }
}
