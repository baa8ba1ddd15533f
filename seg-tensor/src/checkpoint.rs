//! Gradient checkpointing: a function's activations are not kept for the backward but recomputed
//! during it, trading one more forward for the memory of every intermediate tensor.

use std::sync::Arc;

use crate::autocast::{autocast_dtype, with_autocast};
use crate::autograd::{with_grad_enabled, Backward};
use crate::{no_grad, DType, Result, Tensor};

/// A function to checkpoint: the output from the input (the parameters it uses are captured).
pub type CheckpointFn = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// `y = f(x)` recorded as one op whose backward runs `f` again with autodiff on and differentiates
/// that (PyTorch's `torch.utils.checkpoint`). `params` are the leaves `f` uses that need gradients
/// (a module's parameters): they must be leaves, since the recomputed graph is differentiated only
/// back to them and to `x`. The result equals `f(x)`'s, gradients included; memory holds only `x`
/// and `y` between the forward and the backward. The recomputation runs under the autocast setting
/// of the forward, as PyTorch's does.
pub fn checkpoint(f: CheckpointFn, x: &Tensor, params: &[Tensor]) -> Result<Tensor> {
    let y = no_grad(|| f(x))?;
    let inputs: Vec<&Tensor> = std::iter::once(x).chain(params).collect();
    Ok(Tensor::from_op(y, &inputs, |_| Recompute {
        f,
        autocast: autocast_dtype(),
        x: x.detach(),
        x_tracks: x.tracks_grad(),
        params: params.to_vec(),
    }))
}

struct Recompute {
    f: CheckpointFn,
    /// The autocast setting of the forward.
    autocast: Option<DType>,
    x: Tensor,
    x_tracks: bool,
    params: Vec<Tensor>,
}

impl Backward for Recompute {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = if self.x_tracks {
            self.x.requires_grad()
        } else {
            self.x.clone()
        };
        let y = with_autocast(self.autocast, || with_grad_enabled(true, || (self.f)(&x)))?;
        if !y.tracks_grad() {
            return Ok(vec![None; 1 + self.params.len()]);
        }
        let mut grads = y.backward_with(grad)?;
        Ok(std::iter::once(&x)
            .chain(&self.params)
            .map(|t| grads.remove(t))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn checkpointed_gradients_equal_the_plain_ones() {
        let w = Tensor::randn(&[4, 3], 1, DType::F64).unwrap().requires_grad();
        let x = Tensor::randn(&[5, 3], 2, DType::F64).unwrap().requires_grad();
        let g = Tensor::randn(&[5, 4], 3, DType::F64).unwrap();
        let w2 = w.clone();
        let f: CheckpointFn = Arc::new(move |x| x.linear(&w2, None)?.tanh()?.exp());
        let plain = f(&x).unwrap().backward_with(&g).unwrap();
        let y = checkpoint(f.clone(), &x, std::slice::from_ref(&w)).unwrap();
        assert_eq!(y.to_vec_f64(), no_grad(|| f(&x)).unwrap().to_vec_f64());
        let ckpt = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
        for t in [&x, &w] {
            let (a, b) = (plain.get(t).unwrap().to_vec_f64(), ckpt.get(t).unwrap().to_vec_f64());
            assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-12));
        }
    }

    #[test]
    fn the_recomputation_runs_under_the_forwards_autocast() {
        let w = Tensor::randn(&[4, 3], 1, DType::F32).unwrap().requires_grad();
        let x = Tensor::randn(&[5, 3], 2, DType::F32).unwrap();
        let w2 = w.clone();
        let f: CheckpointFn = Arc::new(move |x| x.linear(&w2, None)?.tanh());
        let loss = |y: Tensor| y.sum_all().unwrap().backward().unwrap().get(&w).unwrap().to_vec_f64();
        let plain = loss(crate::autocast(DType::BF16, || f(&x)).unwrap());
        let y = crate::autocast(DType::BF16, || checkpoint(f.clone(), &x, std::slice::from_ref(&w))).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        assert_eq!(loss(y), plain);
    }
}
