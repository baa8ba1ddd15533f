//! Finite-difference gradient checking, in f64.
//!
//! For a function `f` of tensors, the check draws a fixed upstream gradient `g` of `f`'s output
//! shape and compares, for every input element `x_i`, autodiff's `d/dx_i sum(f(x) * g)` with the
//! central difference `(L(x + h e_i) - L(x - h e_i)) / 2h` of `L(x) = sum(f(x) * g)`.

use crate::{no_grad, DType, Error, Result, Tensor};

/// Step and tolerances of a gradient check: element `i` passes when
/// `|analytic - numeric| <= atol + rtol * |numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    pub step: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradCheck {
    fn default() -> Self {
        Self {
            step: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
        }
    }
}

fn weighted_sum(y: &Tensor, g: &Tensor) -> Result<f64> {
    Ok(y.to_vec_f64().iter().zip(g.to_vec_f64()).map(|(a, b)| a * b).sum())
}

/// Checks autodiff's gradients of `f` at `inputs` (converted to f64) against central differences,
/// with default tolerances. Returns an error describing the worst element when one fails.
pub fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<()> {
    check_with(f, inputs, GradCheck::default())
}

/// [`check`] with explicit step and tolerances.
pub fn check_with(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], opts: GradCheck) -> Result<()> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| Ok(t.to_dtype(DType::F64)?.requires_grad()))
        .collect::<Result<_>>()?;
    let y = f(&leaves)?;
    let g = Tensor::randn(y.shape(), 0x6e7d, DType::F64)?;
    let grads = y.backward_with(&g)?;
    for (n, leaf) in leaves.iter().enumerate() {
        let analytic = match grads.get(leaf) {
            Some(t) => t.to_vec_f64(),
            None => vec![0.0; leaf.numel()],
        };
        let base = leaf.to_vec_f64();
        for i in 0..base.len() {
            let loss_at = |delta: f64| -> Result<f64> {
                let mut values = base.clone();
                values[i] += delta;
                let mut args: Vec<Tensor> = leaves.iter().map(Tensor::detach).collect();
                args[n] = Tensor::from_vec(values, leaf.shape())?;
                no_grad(|| weighted_sum(&f(&args)?, &g))
            };
            let numeric = (loss_at(opts.step)? - loss_at(-opts.step)?) / (2.0 * opts.step);
            let err = (analytic[i] - numeric).abs();
            if err.is_nan() || err > opts.atol + opts.rtol * numeric.abs() {
                return Err(Error::Backward(format!(
                    "gradient check failed for input {n} element {i}: autodiff {} vs finite difference {numeric}",
                    analytic[i]
                )));
            }
        }
    }
    Ok(())
}
