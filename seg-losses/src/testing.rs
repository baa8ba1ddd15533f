//! Test inputs and the finite-difference check shared by the losses' tests.

use seg_tensor::gradcheck::{check_with, GradCheck};
use seg_tensor::{DType, Result, Tensor};

use crate::DiceLoss;

/// Normal logits of `shape` in f64.
pub fn logits(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, seed, DType::F64).unwrap()
}

/// Labels `0..classes` of `shape`, as f64 (as the fixtures store them).
pub fn labels(shape: &[usize], classes: usize, seed: u64) -> Tensor {
    let u = Tensor::rand(shape, seed, DType::F64).unwrap();
    let values = u.to_vec_f64().iter().map(|v| (v * classes as f64).floor()).collect();
    Tensor::from_vec::<f64>(values, shape).unwrap()
}

/// A binary mask of `shape` with about 40% ones, as f64.
pub fn mask(shape: &[usize], seed: u64) -> Tensor {
    let u = Tensor::rand(shape, seed, DType::F64).unwrap();
    u.gt(&Tensor::full(&[], 0.6, DType::F64))
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

/// Autodiff's gradient of `loss(x, target)` in `x` against central differences (in f64).
pub fn check_grad(loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor>, x: &Tensor, target: &Tensor) {
    let opts = GradCheck {
        step: 1e-6,
        atol: 1e-7,
        rtol: 1e-5,
    };
    check_with(|xs| loss(&xs[0], target), std::slice::from_ref(x), opts).unwrap();
}

/// The single value of a rank-0 tensor.
pub fn value(t: &Tensor) -> f64 {
    t.item().unwrap()
}

/// MONAI's `DiceLoss(softmax=True, to_onehot_y=True)`: the Dice term the tests build on.
pub fn softmax_onehot() -> DiceLoss {
    DiceLoss {
        softmax: true,
        to_onehot_y: true,
        ..Default::default()
    }
}
