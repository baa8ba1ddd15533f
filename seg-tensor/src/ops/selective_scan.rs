//! Mamba's selective scan as a differentiable op, with mamba_ssm's `selective_scan_fn` arguments.
//! The recurrence and its gradients are in `seg_kernels::cpu::selective_scan`.

use seg_kernels::cpu::selective_scan::{
    scan_backward, scan_backward_reference, scan_forward, scan_forward_reference, ScanCheckpoints, ScanGrads,
    ScanInputs, ScanShape,
};

use crate::autograd::Backward;
use crate::ops::{expect_kernel_float, expect_same_kind, on_cuda, tensor_from};
use crate::{DType, Error, Result, Tensor};

/// The optional inputs and flags of [`Tensor::selective_scan`], as mamba_ssm's `selective_scan_fn`:
/// `d` `(dim)` skip weight, `z` `(batch, dim, len)` gate, `delta_bias` `(dim)`, `delta_softplus`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanOptions<'a> {
    pub d: Option<&'a Tensor>,
    pub z: Option<&'a Tensor>,
    pub delta_bias: Option<&'a Tensor>,
    pub delta_softplus: bool,
}

fn mismatch(what: &str, expected: String, found: &Tensor) -> Error {
    Error::ShapeMismatch {
        op: "selective_scan",
        expected: format!("{what} of shape {expected}"),
        found: found.shape().to_vec(),
    }
}

/// The scan's sizes from the inputs' shapes, or an error naming the first one that disagrees.
fn scan_shape(u: &Tensor, delta: &Tensor, a: &Tensor, b: &Tensor, c: &Tensor, o: &ScanOptions) -> Result<ScanShape> {
    if u.rank() != 3 {
        return Err(mismatch("u", "(batch, dim, len)".into(), u));
    }
    let (batch, dim, len) = (u.shape()[0], u.shape()[1], u.shape()[2]);
    if delta.shape() != u.shape() {
        return Err(mismatch("delta", format!("{:?} (as u)", u.shape()), delta));
    }
    if a.rank() != 2 || a.shape()[0] != dim {
        return Err(mismatch("A", format!("({dim}, state)"), a));
    }
    let state = a.shape()[1];
    let groups = match b.rank() {
        3 => 1,
        4 => b.shape()[1],
        _ => 0,
    };
    let b_shape = |t: &Tensor| match t.rank() {
        3 => t.shape() == [batch, state, len],
        4 => t.shape() == [batch, groups, state, len],
        _ => false,
    };
    if !b_shape(b) || groups == 0 {
        return Err(mismatch(
            "B",
            format!("({batch}, {state}, {len}) or ({batch}, groups, {state}, {len})"),
            b,
        ));
    }
    if c.shape() != b.shape() {
        return Err(mismatch("C", format!("{:?} (as B)", b.shape()), c));
    }
    for (name, t, shape) in [
        ("D", o.d, vec![dim]),
        ("z", o.z, u.shape().to_vec()),
        ("delta_bias", o.delta_bias, vec![dim]),
    ] {
        if let Some(t) = t.filter(|t| t.shape() != shape.as_slice()) {
            return Err(mismatch(name, format!("{shape:?}"), t));
        }
    }
    let shape = ScanShape {
        batch,
        dim,
        len,
        state,
        groups,
        delta_softplus: o.delta_softplus,
    };
    shape.validate().map_err(|msg| Error::invalid("selective_scan", msg))?;
    Ok(shape)
}

/// Borrows the values of the scan's inputs as `T` and runs `f` on them.
fn with_inputs<T: crate::Element, R>(
    inputs: &[Option<&Tensor>; 8],
    f: impl FnOnce(ScanInputs<T>) -> Result<R>,
) -> Result<R> {
    let values: Vec<Option<std::borrow::Cow<[T]>>> = inputs
        .iter()
        .map(|t| t.map(|t| t.values::<T>()).transpose())
        .collect::<Result<_>>()?;
    let get = |i: usize| values[i].as_deref();
    let required = |i: usize| get(i).expect("required inputs are present");
    f(ScanInputs {
        u: required(0),
        delta: required(1),
        a: required(2),
        b: required(3),
        c: required(4),
        d: get(5),
        z: get(6),
        delta_bias: get(7),
    })
}

struct ScanBackward {
    shape: ScanShape,
    /// u, delta, A, B, C, D, z, delta_bias (detached); the absent ones `None`.
    inputs: [Option<Tensor>; 8],
    /// The states the fast forward kept every few positions, for the backward to start from.
    checkpoints: Option<ScanCheckpoints>,
}

impl Backward for ScanBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let s = self.shape;
        let (bdl, bdn) = (s.batch * s.dim * s.len, s.batch * s.dim * s.state);
        let inputs: [Option<&Tensor>; 8] = std::array::from_fn(|i| self.inputs[i].as_ref());
        match grad.dtype() {
            DType::F32 => {
                let packed = grad.values::<f32>()?;
                let (gy, g_last) = packed.split_at(bdl);
                let grads = with_inputs::<f32, _>(&inputs, |x| {
                    Ok(scan_backward(
                        &s,
                        &x,
                        gy,
                        Some(&g_last[..bdn]),
                        self.checkpoints.as_ref(),
                    ))
                })?;
                self.to_tensors(grads)
            }
            DType::F64 => {
                let packed = grad.values::<f64>()?;
                let (gy, g_last) = packed.split_at(bdl);
                let grads = with_inputs::<f64, _>(&inputs, |x| {
                    Ok(scan_backward_reference(&s, &x, gy, Some(&g_last[..bdn])))
                })?;
                self.to_tensors(grads)
            }
            found => Err(Error::DType {
                op: "selective_scan backward",
                expected: "f32 or f64",
                found,
            }),
        }
    }
}

impl ScanBackward {
    /// One gradient tensor per present input, in the order the op recorded them.
    fn to_tensors<T: crate::Element>(&self, g: ScanGrads<T>) -> Result<Vec<Option<Tensor>>> {
        let values = [g.u, g.delta, g.a, g.b, g.c, g.d, g.z, g.delta_bias];
        let mut grads = Vec::new();
        for (input, values) in self.inputs.iter().zip(values) {
            if let Some(input) = input {
                grads.push(Some(Tensor::from_vec(values, input.shape())?));
            }
        }
        Ok(grads)
    }
}

impl Tensor {
    /// Mamba's selective scan of `self` as `u` `(batch, dim, len)` with `delta` `(batch, dim, len)`,
    /// `a` `(dim, state)` and `b`, `c` `(batch, state, len)` or grouped `(batch, groups, state, len)`,
    /// as mamba_ssm's `selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
    /// return_last_state=True)`: returns `y` `(batch, dim, len)` and the last state
    /// `(batch, dim, state)`, both differentiable in every input. f32 or f64 on the CPU; f32, f16
    /// or bf16 on CUDA (`cuda/selective_scan.cu`, computed in f32), where the last state is f32.
    pub fn selective_scan(
        &self,
        delta: &Tensor,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        options: &ScanOptions,
    ) -> Result<(Tensor, Tensor)> {
        expect_kernel_float("selective_scan", self)?;
        let all = [
            Some(self),
            Some(delta),
            Some(a),
            Some(b),
            Some(c),
            options.d,
            options.z,
            options.delta_bias,
        ];
        for t in all.iter().flatten() {
            expect_same_kind("selective_scan", self, t)?;
        }
        let s = scan_shape(self, delta, a, b, c, options)?;
        if on_cuda(self) {
            return crate::cuda::selective_scan(s, all);
        }
        let (bdl, bdn) = (s.batch * s.dim * s.len, s.batch * s.dim * s.state);
        // y and the last state in one buffer: one recorded op whose gradient arrives in one piece.
        let (packed, checkpoints) = match self.dtype() {
            DType::F32 => with_inputs::<f32, _>(&all, |x| {
                let mut out = vec![0.0f32; bdl + bdn];
                let (y, last) = out.split_at_mut(bdl);
                let checkpoints = scan_forward(&s, &x, y, last);
                Ok((tensor_from(out, &[bdl + bdn]), checkpoints))
            })?,
            _ => with_inputs::<f64, _>(&all, |x| {
                let mut out = vec![0.0f64; bdl + bdn];
                let (y, last) = out.split_at_mut(bdl);
                scan_forward_reference(&s, &x, y, last);
                Ok((tensor_from(out, &[bdl + bdn]), None))
            })?,
        };
        let present: Vec<&Tensor> = all.iter().flatten().copied().collect();
        let packed = Tensor::from_op(packed, &present, |_| ScanBackward {
            shape: s,
            inputs: std::array::from_fn(|i| all[i].map(Tensor::detach)),
            checkpoints,
        });
        let y = packed.narrow(0, 0, bdl)?.reshape(&[s.batch, s.dim, s.len])?;
        let last = packed.narrow(0, bdl, bdn)?.reshape(&[s.batch, s.dim, s.state])?;
        Ok((y, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck;

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, seed, DType::F64).unwrap()
    }

    #[test]
    fn gradients_through_y_and_the_last_state() {
        let a = randn(&[4, 3], 1).abs().unwrap().neg().unwrap();
        let inputs = [
            randn(&[2, 4, 6], 2),
            randn(&[2, 4, 6], 3),
            a,
            randn(&[2, 2, 3, 6], 4),
            randn(&[2, 2, 3, 6], 5),
            randn(&[4], 6),
            randn(&[2, 4, 6], 7),
            randn(&[4], 8),
        ];
        let f = |t: &[Tensor]| {
            let options = ScanOptions {
                d: Some(&t[5]),
                z: Some(&t[6]),
                delta_bias: Some(&t[7]),
                delta_softplus: true,
            };
            let (y, last) = t[0].selective_scan(&t[1], &t[2], &t[3], &t[4], &options)?;
            // Both outputs reach the loss.
            Tensor::cat(&[&y.flatten(0, -1)?, &last.flatten(0, -1)?.mul_scalar(3.0)?], 0)
        };
        gradcheck::check(f, &inputs).unwrap();
    }

    #[test]
    fn plain_form_without_optional_inputs() {
        let a = randn(&[3, 2], 9).abs().unwrap().neg().unwrap();
        let f = |t: &[Tensor]| {
            Ok(t[0]
                .selective_scan(&t[1], &t[2], &t[3], &t[4], &ScanOptions::default())?
                .0)
        };
        let delta = randn(&[1, 3, 5], 11).abs().unwrap();
        gradcheck::check(
            f,
            &[
                randn(&[1, 3, 5], 10),
                delta,
                a,
                randn(&[1, 2, 5], 12),
                randn(&[1, 2, 5], 13),
            ],
        )
        .unwrap();
    }

    #[test]
    fn shape_errors_name_the_input() {
        let u = randn(&[1, 4, 5], 1);
        let a = randn(&[4, 2], 2);
        let bc = randn(&[1, 2, 5], 3);
        let err = u
            .selective_scan(&u, &randn(&[3, 2], 4), &bc, &bc, &ScanOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("A of shape"), "{err}");
        let grouped = randn(&[1, 3, 2, 5], 5);
        let err = u
            .selective_scan(&u, &a, &grouped, &grouped, &ScanOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("groups"), "{err}");
        let bad_z = randn(&[1, 4, 4], 6);
        let options = ScanOptions {
            z: Some(&bad_z),
            ..Default::default()
        };
        assert!(u
            .selective_scan(&u, &a, &bc, &bc, &options)
            .unwrap_err()
            .to_string()
            .contains("z of shape"));
    }
}
