//! Every loss reports a NaN or an infinity in its prediction or target as an error naming the loss.

mod common;

use common::{losses, Forward};
use seg_losses::{DiceCELoss, DiceFocalLoss, DiceLoss};
use seg_tensor::{DType, Tensor};

#[test]
fn nan_and_inf_in_prediction_or_target_are_errors_naming_the_loss() {
    let shape = [2, 2, 6, 6];
    let x = Tensor::rand(&shape, 0, DType::F32).unwrap();
    let y = Tensor::rand(&shape, 1, DType::F32)
        .unwrap()
        .gt(&Tensor::full(&[], 0.5, DType::F32))
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    for (name, forward) in losses() {
        let loss = forward(&x, &y).unwrap_or_else(|e| panic!("{name} on finite inputs: {e}"));
        assert!(loss.to_vec_f64().iter().all(|v| v.is_finite()), "{name}");
        assert_non_finite_named(name, &forward, &x, &y, [0, 37, 143]);
    }
}

/// `t` with `v` at flat index `at`.
fn with(t: &Tensor, at: usize, v: f32) -> Tensor {
    let mut values = t.to_vec::<f32>().unwrap();
    values[at] = v;
    Tensor::from_vec(values, t.shape()).unwrap()
}

/// A NaN, an infinity and a negative infinity, put at the flat indices `at` of the prediction and then
/// of the target, each give an error naming the loss, the tensor and the index.
fn assert_non_finite_named(name: &str, forward: &Forward, x: &Tensor, y: &Tensor, at: [usize; 3]) {
    for (bad, at) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].into_iter().zip(at) {
        for (what, x, y) in [
            ("prediction", with(x, at, bad), y.clone()),
            ("target", x.clone(), with(y, at, bad)),
        ] {
            let msg = forward(&x, &y).expect_err(name).to_string();
            assert!(msg.contains(name), "{name}: {msg}");
            assert!(msg.contains(&format!("finite {what}")), "{name}: {msg}");
            assert!(msg.contains(&format!("flat index {at}")), "{name}: {msg}");
        }
    }
}

/// The fused path of softmax against labels finds them too.
#[test]
fn nan_and_inf_are_errors_on_the_fused_label_path() {
    let dice = || DiceLoss {
        softmax: true,
        to_onehot_y: true,
        ..Default::default()
    };
    let fused: Vec<(&str, Forward)> = vec![
        ("DiceLoss", Box::new(move |x, y| dice().forward(x, y))),
        (
            "DiceCELoss",
            Box::new(move |x, y| {
                DiceCELoss {
                    dice: dice(),
                    ..Default::default()
                }
                .forward(x, y)
            }),
        ),
        (
            "DiceFocalLoss",
            Box::new(move |x, y| {
                DiceFocalLoss {
                    dice: dice(),
                    ..Default::default()
                }
                .forward(x, y)
            }),
        ),
    ];
    let x = Tensor::randn(&[2, 3, 6, 7], 0, DType::F32).unwrap();
    let y = Tensor::zeros(&[2, 1, 6, 7], DType::F32);
    for (name, forward) in fused {
        assert!(forward(&x, &y).unwrap().item().unwrap().is_finite(), "{name}");
        assert_non_finite_named(name, &forward, &x, &y, [0, 37, 83]);
    }
}

#[test]
fn cross_entropy_rejects_nan_logits() {
    let x = Tensor::from_vec(vec![0.0f32, f32::NAN, 1.0, 2.0], &[1, 2, 2]).unwrap();
    let labels = Tensor::zeros(&[1, 2], DType::I64);
    let msg = seg_losses::CrossEntropyLoss::default()
        .forward(&x, &labels)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("CrossEntropyLoss") && msg.contains("NaN at flat index 1"),
        "{msg}"
    );
}
