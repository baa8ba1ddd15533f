//! Training on CUDA against the same training on the CPU: a tiny BasicUNet, MONAI's DiceCELoss
//! (softmax, one-hot labels) and an optimizer step, two steps of each optimizer; the losses, the
//! gradients and the updated parameters must agree. Without a usable GPU (no driver, no device, no
//! libnvrtc) the test prints `skipped: <reason>` and passes.

use seg::losses::{DiceCELoss, DiceLoss};
use seg::models::{BasicUNet, BasicUNetConfig};
use seg::nn::optim::{Adam, Optimizer, ParamGrads, Sgd};
use seg::nn::{to_device, Module};
use seg::{DType, Device, Tensor};

/// A BasicUNet 1 -> 3 with features (4, 4, 8, 8, 16, 4), on `device`.
fn network(device: Device) -> BasicUNet {
    let mut config = BasicUNetConfig::new(3, 1, 3);
    config.features = [4, 4, 8, 8, 16, 4];
    let mut net = BasicUNet::new(config, 7).unwrap();
    to_device(&mut net, device).unwrap();
    net
}

/// A (2, 1, 32, 32, 32) image and labels in 0..3 (the smallest size BasicUNet takes).
fn batch() -> (Tensor, Tensor) {
    let x = Tensor::randn(&[2, 1, 32, 32, 32], 1, DType::F32).unwrap();
    let labels = Tensor::rand(&[2, 1, 32, 32, 32], 2, DType::F32)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    (x, labels)
}

/// What one run gives after each step: the loss, then every gradient and parameter (by name, on
/// the host).
struct Trace {
    losses: Vec<f64>,
    tensors: Vec<(String, Vec<f64>)>,
}

/// Builds a fresh optimizer.
type MakeOptimizer = fn() -> Box<dyn Optimizer>;

/// Two training steps on `device` with the optimizer `make` builds; gradients clipped to norm 1.
fn train(device: Device, make: MakeOptimizer) -> Trace {
    let mut net = network(device);
    let mut opt = make();
    let (x, labels) = batch();
    let (x, labels) = (x.to_device(device).unwrap(), labels.to_device(device).unwrap());
    let loss_fn = DiceCELoss {
        dice: DiceLoss {
            to_onehot_y: true,
            softmax: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut trace = Trace {
        losses: Vec::new(),
        tensors: Vec::new(),
    };
    for step in 0..2 {
        let logits = net.forward(&x).unwrap();
        assert_eq!(logits.device(), device, "the logits left the device");
        let loss = loss_fn.forward(&logits, &labels).unwrap();
        trace.losses.push(loss.item().unwrap());
        let mut grads = ParamGrads::from_backward(&net, &loss.backward().unwrap()).unwrap();
        grads.clip_norm(1.0).unwrap();
        for (name, _) in net.named_parameters() {
            if let Some(g) = grads.get(&name) {
                let values = g.host().unwrap().iter().map(|&v| f64::from(v)).collect();
                trace.tensors.push((format!("step {step} grad {name}"), values));
            }
        }
        opt.step(&mut net, &grads).unwrap();
        for (name, p) in net.named_parameters() {
            assert_eq!(p.device(), device, "{name} left the device");
            trace.tensors.push((format!("step {step} {name}"), p.to_vec_f64()));
        }
    }
    trace
}

/// Fails unless the two traces agree: losses to `1e-4` relative, each tensor to `tol` times its
/// largest magnitude (at least 1).
fn assert_close(gpu: &Trace, cpu: &Trace, tol: f64) {
    for (step, (g, c)) in gpu.losses.iter().zip(&cpu.losses).enumerate() {
        assert!((g - c).abs() <= 1e-4 * c.abs(), "step {step} loss: cuda {g} vs cpu {c}");
    }
    assert_eq!(
        gpu.tensors.len(),
        cpu.tensors.len(),
        "the runs updated different parameters"
    );
    for ((name, g), (_, c)) in gpu.tensors.iter().zip(&cpu.tensors) {
        let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.iter().zip(c).enumerate() {
            assert!((a - b).abs() <= tol * scale, "{name}[{i}]: cuda {a} vs cpu {b}");
        }
    }
}

#[test]
fn basic_unet_trains_on_cuda_as_on_the_cpu() {
    let device = match Device::cuda(0) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    // Adam's eps at 1e-3 keeps its step a smooth function of the gradient: a gradient that is
    // rounding noise (a bias before an instance norm) cannot flip a step of +-lr.
    let optimizers: [(&str, MakeOptimizer); 2] = [
        ("adam", || {
            let mut adam = Adam::new(1e-3);
            adam.eps = 1e-3;
            adam.weight_decay = 1e-2;
            Box::new(adam)
        }),
        ("sgd", || {
            let mut sgd = Sgd::with_momentum(1e-2, 0.99, true);
            sgd.weight_decay = 3e-5;
            Box::new(sgd)
        }),
    ];
    for (name, make) in optimizers {
        eprintln!("{name}");
        assert_close(&train(device, make), &train(Device::Cpu, make), 2e-4);
    }
}
