//! The elementwise sigmoid focal term of [`crate::FocalLoss`], fused: one pass forward and one pass
//! backward instead of a dozen elementwise ops, each with its saved intermediate.
//!
//! With `z = x (2t - 1)` and `softplus(v) = ln(1 + e^v)`:
//!
//! `l(x, t) = m b`, `m = exp(-gamma softplus(z))` (the `(1 - p_t)^gamma` factor, MONAI's
//! `exp(gamma logsigmoid(-z))`), `b = x (1 - t) + softplus(-x)` (BCE with logits);
//!
//! `dl/dx = -gamma sigmoid(z) (2t - 1) m b + m (sigmoid(x) - t)`,
//! `dl/dt = -2 gamma sigmoid(z) x m b - m x`.

use rayon::prelude::*;
use seg_tensor::{with_float, Backward, Device, Element, Error, Float, Result, Tensor};

/// Below this many elements the loops run on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 15;

/// `ln(1 + e^v)` without overflow: `max(v, 0) + ln(1 + e^{-|v|})`.
fn softplus<T: Float>(v: T) -> T {
    v.max(T::zero()) + (-v.abs()).exp().ln_1p()
}

/// `1 / (1 + e^{-v})` without overflow.
fn sigmoid<T: Float>(v: T) -> T {
    if v >= T::zero() {
        T::one() / (T::one() + (-v).exp())
    } else {
        let e = v.exp();
        e / (T::one() + e)
    }
}

/// The parts of `l` at one element: `(2t - 1, z, m, b)`.
fn parts<T: Float>(x: T, t: T, gamma: T) -> (T, T, T, T) {
    let one = T::one();
    let sign = t + t - one;
    let z = x * sign;
    let m = (-gamma * softplus(z)).exp();
    let b = x * (one - t) + softplus(-x);
    (sign, z, m, b)
}

/// `l(x, t)`.
fn focal_value<T: Float>(x: T, t: T, gamma: T) -> T {
    let (_, _, m, b) = parts(x, t, gamma);
    m * b
}

/// `(dl/dx, dl/dt)`.
fn focal_partials<T: Float>(x: T, t: T, gamma: T) -> (T, T) {
    let (sign, z, m, b) = parts(x, t, gamma);
    let dm_dz = -gamma * sigmoid(z) * m;
    (dm_dz * sign * b + m * (sigmoid(x) - t), dm_dz * (x + x) * b - m * x)
}

/// `f` on the pairs of `xs` and `ys`, on rayon's threads for large inputs.
fn zip_map<T: Float, U: Send>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> U + Sync) -> Vec<U> {
    if xs.len() < PARALLEL_THRESHOLD {
        xs.iter().zip(ys).map(|(&x, &y)| f(x, y)).collect()
    } else {
        xs.par_iter()
            .zip(ys)
            .with_min_len(4096)
            .map(|(&x, &y)| f(x, y))
            .collect()
    }
}

struct SigmoidFocalBackward {
    x: Tensor,
    t: Tensor,
    gamma: f64,
    wants: [bool; 2],
}

impl Backward for SigmoidFocalBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let shape = grad.shape().to_vec();
        let (dx, dt) = with_float!(grad.dtype(), "sigmoid_focal backward", T => {
            let gamma = <T as Element>::from_f64(self.gamma);
            let (x, t, g) = (self.x.values::<T>()?, self.t.values::<T>()?, grad.values::<T>()?);
            let partials = zip_map(&x, &t, |x, t| focal_partials(x, t, gamma));
            let scaled = |pick: fn(&(T, T)) -> T| -> Result<Tensor> {
                Tensor::from_vec(partials.iter().zip(g.iter()).map(|(p, &g)| g * pick(p)).collect::<Vec<T>>(), &shape)
            };
            let dx = self.wants[0].then(|| scaled(|p| p.0)).transpose()?;
            let dt = self.wants[1].then(|| scaled(|p| p.1)).transpose()?;
            Ok((dx, dt))
        })?;
        Ok(vec![dx, dt])
    }
}

/// The sigmoid focal term `l(x, t)` elementwise (module doc), differentiable in `x` and `t`, which
/// must have the same shape and float dtype.
pub(crate) fn sigmoid_focal(x: &Tensor, t: &Tensor, gamma: f64) -> Result<Tensor> {
    const OP: &str = "sigmoid_focal";
    if x.shape() != t.shape() || x.dtype() != t.dtype() {
        return Err(Error::invalid(
            OP,
            format!(
                "logits {:?} ({}) and target {:?} ({}) must have the same shape and dtype",
                x.shape(),
                x.dtype().name(),
                t.shape(),
                t.dtype().name()
            ),
        ));
    }
    if x.device() != Device::Cpu {
        return composed(x, t, gamma);
    }
    let out = with_float!(x.dtype(), OP, T => {
        let g = <T as Element>::from_f64(gamma);
        let values = zip_map(&x.values::<T>()?, &t.values::<T>()?, |x, t| focal_value(x, t, g));
        Tensor::from_vec(values, x.shape())
    })?;
    Ok(Tensor::from_op(out, &[x, t], |_| SigmoidFocalBackward {
        x: x.detach(),
        t: t.detach(),
        gamma,
        wants: [x.tracks_grad(), t.tracks_grad()],
    }))
}

/// `l(x, t) = m b` op by op (MONAI's `sigmoid_focal_loss` without alpha: `exp(gamma logsigmoid(-z))
/// (x - x t - logsigmoid(x))`, `logsigmoid(v) = -softplus(-v)`), differentiable through the ops: the
/// path of tensors on a GPU, and the reference of the fused one.
fn composed(x: &Tensor, t: &Tensor, gamma: f64) -> Result<Tensor> {
    let bce = x.sub(&x.mul(t)?)?.add(&x.neg()?.softplus()?)?;
    let z = x.mul(&t.affine(2.0, -1.0)?)?;
    z.softplus()?.mul_scalar(-gamma)?.exp()?.mul(&bce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grad, logits};
    use proptest::prelude::*;
    use seg_tensor::{gradcheck, DType};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn fused_matches_the_composed_ops(
            n in 1usize..200, seed in 0u64..1000, gamma in 0.0f64..4.0, scale in 0.1f64..8.0, soft in any::<bool>()
        ) {
            let x = Tensor::randn(&[n], seed, DType::F64).unwrap().mul_scalar(scale).unwrap().requires_grad();
            let u = Tensor::rand(&[n], seed + 1, DType::F64).unwrap();
            let t = if soft { u } else { u.gt(&Tensor::full(&[], 0.5, DType::F64)).unwrap().to_dtype(DType::F64).unwrap() };
            let t = t.requires_grad();
            let g = Tensor::randn(&[n], seed + 2, DType::F64).unwrap();
            let fused = sigmoid_focal(&x, &t, gamma).unwrap();
            let composed = composed(&x, &t, gamma).unwrap();
            let (gf, gc) = (fused.backward_with(&g).unwrap(), composed.backward_with(&g).unwrap());
            // The reference's softplus is PyTorch's, the identity above 20: off by up to e^-20 = 2.1e-9.
            let close = |a: &Tensor, b: &Tensor| {
                a.to_vec_f64().iter().zip(b.to_vec_f64()).all(|(a, b)| (a - b).abs() <= 1e-8 * (1.0 + b.abs()))
            };
            prop_assert!(close(&fused, &composed));
            prop_assert!(close(gf.get(&x).unwrap(), gc.get(&x).unwrap()));
            prop_assert!(close(gf.get(&t).unwrap(), gc.get(&t).unwrap()));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let t = Tensor::rand(&[3, 4, 5], 2, DType::F64).unwrap();
        check_grad(|x, t| sigmoid_focal(x, t, 1.5), &logits(&[3, 4, 5], 1), &t);
        // In the target too.
        let x = logits(&[2, 6], 3);
        let t = Tensor::rand(&[2, 6], 4, DType::F64).unwrap();
        gradcheck::check(|ts| sigmoid_focal(&x, &ts[0], 2.0), &[t]).unwrap();
    }

    #[test]
    fn mismatched_operands_are_errors() {
        let err = sigmoid_focal(&logits(&[2, 3], 4), &logits(&[3, 2], 5), 2.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[2, 3]") && err.contains("[3, 2]"), "{err}");
    }
}
