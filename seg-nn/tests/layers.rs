//! Layers, checkpoints and the optimizer plumbing (the optimizers' arithmetic is held to PyTorch by
//! the `optimizer` conformance cases).

use std::collections::{BTreeMap, HashMap};

use seg_nn::checkpoint::{load_checkpoint, read_safetensors, save_checkpoint};
use seg_nn::layers::{Activation, BatchNorm, Conv, ConvTranspose, Dropout, InstanceNorm, Layer, Linear, Sequential};
use seg_nn::optim::{CosineWarmup, Optimizer, ParamGrads, PolyLr, Sgd};
use seg_nn::{load_parameters, Module};
use seg_tensor::{ConvOptions, ConvPadding, ConvTransposeOptions, DType, Tensor};

fn small_net() -> Sequential {
    let conv = ConvOptions {
        padding: ConvPadding::Explicit(vec![1]),
        ..ConvOptions::default()
    };
    Sequential::new(vec![
        Box::new(Conv::new(2, 4, &[3, 3, 3], conv, true, 1).unwrap()),
        Box::new(InstanceNorm::new(4, true, 1e-5)),
        Box::new(Activation::LeakyRelu(0.01)),
        Box::new(ConvTranspose::new(4, 3, &[2, 2, 2], up(), false, 2).unwrap()),
    ])
}

fn up() -> ConvTransposeOptions {
    ConvTransposeOptions {
        stride: vec![2],
        ..ConvTransposeOptions::default()
    }
}

#[test]
fn parameters_carry_pytorch_names_and_initial_bounds() {
    let net = small_net();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight"]);
    assert_eq!(net.num_parameters(), 4 * 2 * 27 + 4 + 4 + 4 + 4 * 3 * 8);
    // Conv: U(±1/sqrt(fan_in)), fan_in = 2 * 27.
    let bound = 1.0 / 54f64.sqrt();
    let w = net.named_parameters()[0].1.to_vec_f64();
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > bound / 2.0));
    let y = net
        .forward(&Tensor::randn(&[1, 2, 4, 4, 4], 3, DType::F32).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[1, 3, 8, 8, 8]);
}

#[test]
fn checkpoints_round_trip_and_convert_half_precision() {
    let net = small_net();
    let dir = std::env::temp_dir().join(format!("seg-nn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.safetensors");
    let meta = BTreeMap::from([("model".to_string(), "small".to_string())]);
    save_checkpoint(&net, &path, &meta).unwrap();
    let (tensors, read_meta) = read_safetensors(&path).unwrap();
    assert_eq!(read_meta, meta);
    assert_eq!(tensors.len(), 5);

    let mut other = small_net();
    // Zero the copy to be sure loading replaces every value.
    other.visit_mut(&mut |_, t| *t = t.zeros_like().requires_grad());
    let report = load_checkpoint(&mut other, &path, true).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    for ((_, a), (_, b)) in net.named_parameters().iter().zip(other.named_parameters()) {
        assert_eq!(a.to_vec_f64(), b.to_vec_f64());
        assert!(b.tracks_grad());
    }

    // An f16 checkpoint loads into the f32 module.
    let half: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(DType::F16).unwrap()))
        .collect();
    load_parameters(&mut other, &half, true).unwrap();
    assert_eq!(other.named_parameters()[0].1.dtype(), DType::F32);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_names_every_missing_unexpected_and_misshaped_tensor() {
    let mut net = small_net();
    let mut source: HashMap<String, Tensor> = net.named_parameters().into_iter().collect();
    source.remove("1.bias");
    source.insert("9.weight".into(), Tensor::zeros(&[1], DType::F32));
    let err = load_parameters(&mut net, &source, true).unwrap_err().to_string();
    assert!(err.contains("1.bias") && err.contains("9.weight"), "{err}");
    let report = load_parameters(&mut net, &source, false).unwrap();
    assert_eq!(report.missing, ["1.bias"]);
    assert_eq!(report.unexpected, ["9.weight"]);
    source.insert("0.weight".into(), Tensor::zeros(&[4, 2, 3, 3], DType::F32));
    let err = load_parameters(&mut net, &source, false).unwrap_err().to_string();
    assert!(err.contains("0.weight: expected [4, 2, 3, 3, 3]"), "{err}");
}

#[test]
fn dropout_scales_in_training_and_is_the_identity_in_eval() {
    let mut drop = Dropout::new(0.25, 7).unwrap();
    let x = Tensor::ones(&[10_000], DType::F32);
    let y = drop.forward(&x).unwrap().to_vec_f64();
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
    assert!((kept - 0.75).abs() < 0.02, "{kept}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    drop.set_training(false);
    assert_eq!(drop.forward(&x).unwrap().to_vec_f64(), x.to_vec_f64());
    assert!(Dropout::new(1.0, 0).is_err());
}

#[test]
fn batch_norm_tracks_running_statistics_and_names_its_buffers() {
    let mut bn = BatchNorm::new(3, true, 1e-5, Some(0.1));
    let x = Tensor::randn(&[4, 3, 5], 1, DType::F32)
        .unwrap()
        .affine(2.0, 1.0)
        .unwrap();
    bn.forward(&x).unwrap();
    assert_eq!(bn.stats().num_batches_tracked, 1);
    let names: Vec<String> = bn.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    );
    bn.set_training(false);
    let y = bn.forward(&x).unwrap();
    assert_eq!(y.shape(), x.shape());
    assert_eq!(bn.stats().num_batches_tracked, 1);
}

#[test]
fn a_training_step_reduces_a_linear_regression_loss() {
    let mut lin = Linear::new(3, 1, true, 5).unwrap();
    let x = Tensor::randn(&[32, 3], 6, DType::F32).unwrap();
    let w_true = Tensor::from_vec(vec![1.0f32, -2.0, 0.5], &[1, 3]).unwrap();
    let target = x.linear(&w_true, None).unwrap();
    let loss = |lin: &Linear| {
        let err = lin.forward(&x).unwrap().sub(&target).unwrap();
        err.mul(&err).unwrap().mean_all().unwrap()
    };
    let mut opt = Sgd::with_momentum(0.1, 0.9, true);
    let first = loss(&lin).item().unwrap();
    for _ in 0..30 {
        let l = loss(&lin);
        let grads = ParamGrads::from_backward(&lin, &l.backward().unwrap()).unwrap();
        assert_eq!(grads.len(), 2);
        opt.step(&mut lin, &grads).unwrap();
    }
    assert!(loss(&lin).item().unwrap() < first * 0.01);
}

#[test]
fn gradients_accumulate_scale_and_clip_by_norm() {
    let lin = Linear::new(2, 2, false, 1).unwrap();
    let x = Tensor::ones(&[1, 2], DType::F32);
    let grads = || {
        let l = lin.forward(&x).unwrap().sum_all().unwrap();
        ParamGrads::from_backward(&lin, &l.backward().unwrap()).unwrap()
    };
    let mut acc = grads();
    acc.accumulate(grads()).unwrap();
    assert_eq!(
        acc.get("weight").unwrap().host().unwrap(),
        [2.0, 2.0, 2.0, 2.0].as_slice()
    );
    assert!((acc.norm().unwrap() - 4.0).abs() < 1e-12);
    let before = acc.clip_norm(1.0).unwrap();
    assert!((before - 4.0).abs() < 1e-12);
    assert!((acc.norm().unwrap() - 1.0).abs() < 1e-5);
    acc.scale(0.5).unwrap();
    assert!((acc.norm().unwrap() - 0.5).abs() < 1e-5);
}

#[test]
fn schedules_follow_their_formulas() {
    let poly = PolyLr::new(0.01, 100);
    assert_eq!(poly.lr(0), 0.01);
    assert!((poly.lr(50) - 0.01 * 0.5f64.powf(0.9)).abs() < 1e-15);
    assert_eq!(poly.lr(100), 0.0);
    let cos = CosineWarmup {
        base_lr: 1e-3,
        warmup_steps: 10,
        total_steps: 110,
        min_lr: 1e-5,
    };
    assert_eq!(cos.lr(0), 0.0);
    assert!((cos.lr(5) - 5e-4).abs() < 1e-15);
    assert!((cos.lr(10) - 1e-3).abs() < 1e-15);
    assert!((cos.lr(60) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-15);
    assert!((cos.lr(110) - 1e-5).abs() < 1e-15);
}

#[test]
fn a_checkpointed_layer_gives_the_same_output_and_gradients() {
    use seg_nn::layers::Checkpointed;
    let conv = || {
        let opts = ConvOptions {
            padding: ConvPadding::Same,
            ..ConvOptions::default()
        };
        Conv::new(2, 3, &[3, 3, 3], opts, true, 4).unwrap()
    };
    let (plain, ckpt) = (conv(), Checkpointed::new(conv()));
    let x = Tensor::randn(&[1, 2, 5, 6, 4], 9, DType::F32).unwrap().requires_grad();
    let g = Tensor::randn(&[1, 3, 5, 6, 4], 8, DType::F32).unwrap();
    let (yp, yc) = (plain.forward(&x).unwrap(), ckpt.forward(&x).unwrap());
    assert_eq!(yp.to_vec_f64(), yc.to_vec_f64());
    let (gp, gc) = (yp.backward_with(&g).unwrap(), yc.backward_with(&g).unwrap());
    assert_eq!(gp.get(&x).unwrap().to_vec_f64(), gc.get(&x).unwrap().to_vec_f64());
    let (wp, wc) = (&plain.named_parameters()[0].1, &ckpt.named_parameters()[0].1);
    assert_eq!(gp.get(wp).unwrap().to_vec_f64(), gc.get(wc).unwrap().to_vec_f64());
    assert_eq!(ckpt.named_parameters()[1].0, "bias");
}
