//! Swin's fused window attention as a differentiable op: from the packed `qkv` projection to the
//! attention output, with the relative-position bias gathered from its table and the optional
//! shift mask. The attention and its gradients are in `seg_kernels::cpu::window_attention`.

use seg_kernels::cpu::window_attention::{
    window_attention_backward, window_attention_backward_reference, window_attention_forward,
    window_attention_forward_reference, WindowAttnGrads, WindowAttnInputs, WindowAttnShape,
};

use crate::autograd::Backward;
use crate::ops::{expect_kernel_float, expect_same_kind, on_cuda, tensor_from};
use crate::{DType, Error, Float, Result, Tensor};

/// The relative-position bias and its heads: `table` `(T, heads)` (MONAI's
/// `relative_position_bias_table`) and `index` `(N * N)` values below `T` (the window's
/// `relative_position_index[:N, :N]`, row-major).
#[derive(Clone, Copy, Debug)]
pub struct RelativeBias<'a> {
    pub table: &'a Tensor,
    pub index: &'a [usize],
}

fn mismatch(what: &str, expected: String, found: &Tensor) -> Error {
    Error::ShapeMismatch {
        op: "window_attention",
        expected: format!("{what} of shape {expected}"),
        found: found.shape().to_vec(),
    }
}

/// `bias[h, i, j] = table[index[i N + j], h]`.
fn gather_bias<T: Float>(table: &[T], index: &[usize], heads: usize) -> Vec<T> {
    (0..heads)
        .flat_map(|h| index.iter().map(move |&t| table[t * heads + h]))
        .collect()
}

/// The transpose of [`gather_bias`]: `dtable[index[i N + j], h] += dbias[h, i, j]`.
fn scatter_bias<T: Float>(dbias: &[T], index: &[usize], heads: usize, table_len: usize) -> Vec<T> {
    let mut dtable = vec![T::zero(); table_len];
    let nn = index.len();
    for h in 0..heads {
        for (&t, &g) in index.iter().zip(&dbias[h * nn..][..nn]) {
            dtable[t * heads + h] = dtable[t * heads + h] + g;
        }
    }
    dtable
}

struct WindowAttentionBackward {
    shape: WindowAttnShape,
    qkv: Tensor,
    table: Tensor,
    index: Vec<usize>,
    mask: Option<Tensor>,
    /// Whether the mask gets a gradient (it is then an input of the op).
    mask_grad: bool,
    /// The forward's output and row logsumexp (f32 fast path only).
    saved: Option<(Tensor, Vec<f32>)>,
}

impl WindowAttentionBackward {
    /// Runs `f` on the saved inputs as `T`, with the bias gathered from the table.
    fn with_inputs<T: Float, R>(&self, f: impl FnOnce(WindowAttnInputs<T>) -> R) -> Result<R> {
        let (qkv, table) = (self.qkv.values::<T>()?, self.table.values::<T>()?);
        let mask = self.mask.as_ref().map(|m| m.values::<T>()).transpose()?;
        let bias = gather_bias(&table, &self.index, self.shape.heads);
        Ok(f(WindowAttnInputs {
            qkv: &qkv,
            bias: &bias,
            mask: mask.as_deref(),
        }))
    }

    /// One gradient per recorded input: qkv, the table, and the mask when it gets one.
    fn to_tensors<T: Float>(&self, g: WindowAttnGrads<T>) -> Vec<Option<Tensor>> {
        let dtable = scatter_bias(&g.bias, &self.index, self.shape.heads, self.table.numel());
        let mut grads = vec![
            Some(tensor_from(g.qkv, self.qkv.shape())),
            Some(tensor_from(dtable, self.table.shape())),
        ];
        if let (Some(mask), true) = (&self.mask, self.mask_grad) {
            grads.push(Some(tensor_from(g.mask, mask.shape())));
        }
        grads
    }
}

impl Backward for WindowAttentionBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let s = &self.shape;
        match (grad.dtype(), &self.saved) {
            (DType::F32, Some((out, lse))) => {
                let (out, dout) = (out.values::<f32>()?, grad.values::<f32>()?);
                let g =
                    self.with_inputs::<f32, _>(|x| window_attention_backward(s, &x, &out, lse, &dout, self.mask_grad))?;
                Ok(self.to_tensors(g))
            }
            (DType::F64, _) => {
                let dout = grad.values::<f64>()?;
                let g =
                    self.with_inputs::<f64, _>(|x| window_attention_backward_reference(s, &x, &dout, self.mask_grad))?;
                Ok(self.to_tensors(g))
            }
            (found, _) => Err(Error::DType {
                op: "window_attention backward",
                expected: "the forward's dtype (f32 or f64)",
                found,
            }),
        }
    }
}

impl Tensor {
    /// Windowed multi-head self-attention with a relative-position bias, as MONAI's
    /// `WindowAttention.forward` between its `qkv` and `proj` linears: `self` is the packed
    /// projection `(windows, N, 3 C)` (q, k, v, each `heads x C / heads`), the result
    /// `softmax(scale q k^T + B + M) v` per head, heads concatenated: `(windows, N, C)`. `bias`
    /// gives `B[h, i, j] = table[index[i N + j], h]`; `mask` `(nW, N, N)` is added to window `w` as
    /// `mask[w % nW]`. Differentiable in `self`, the table and the mask (the mask's gradient is only
    /// computed when it tracks gradients). f32 or f64 on the CPU; f32, f16 or bf16 on CUDA, where
    /// the fused kernels (`cuda/window_attention.cu`) compute in f32 and the bias is gathered and its
    /// table's gradient scattered on the device.
    pub fn window_attention(
        &self,
        bias: RelativeBias,
        mask: Option<&Tensor>,
        heads: usize,
        scale: f64,
    ) -> Result<Tensor> {
        expect_kernel_float("window_attention", self)?;
        expect_same_kind("window_attention", self, bias.table)?;
        if let Some(m) = mask {
            expect_same_kind("window_attention", self, m)?;
        }
        if self.rank() != 3 || heads == 0 || !self.shape()[2].is_multiple_of(3 * heads) {
            return Err(mismatch(
                "qkv",
                format!("(windows, tokens, 3 * channels) with channels a multiple of {heads} heads"),
                self,
            ));
        }
        let (windows, n, c) = (self.shape()[0], self.shape()[1], self.shape()[2] / 3);
        let table = bias.table;
        if table.rank() != 2 || table.shape()[1] != heads {
            return Err(mismatch("the bias table", format!("(entries, {heads})"), table));
        }
        let entries = table.shape()[0];
        if bias.index.len() != n * n {
            return Err(Error::invalid(
                "window_attention",
                format!(
                    "expected {} bias indices ({n} x {n}), found {}",
                    n * n,
                    bias.index.len()
                ),
            ));
        }
        if let Some(&bad) = bias.index.iter().find(|&&t| t >= entries) {
            return Err(Error::invalid(
                "window_attention",
                format!("bias index {bad} out of range for a table of {entries} entries"),
            ));
        }
        let mask_windows = match mask {
            None => 1,
            Some(m) if m.rank() == 3 && m.shape()[1] == n && m.shape()[2] == n => m.shape()[0],
            Some(m) => return Err(mismatch("the mask", format!("(nW, {n}, {n})"), m)),
        };
        let shape = WindowAttnShape {
            windows,
            heads,
            tokens: n,
            head_dim: c / heads,
            mask_windows,
            scale,
        };
        shape
            .validate(mask.is_some())
            .map_err(|msg| Error::invalid("window_attention", msg))?;
        if on_cuda(self) {
            return crate::cuda::window_attention(shape, self, table, bias.index, mask);
        }
        let (out, saved) = match self.dtype() {
            DType::F32 => {
                let (qkv, t) = (self.values::<f32>()?, table.values::<f32>()?);
                let m = mask.map(|m| m.values::<f32>()).transpose()?;
                let b = gather_bias(&t, bias.index, heads);
                let x = WindowAttnInputs {
                    qkv: &qkv,
                    bias: &b,
                    mask: m.as_deref(),
                };
                let mut out = vec![0.0f32; windows * n * c];
                let lse = window_attention_forward(&shape, &x, &mut out);
                (tensor_from(out, &[windows, n, c]), Some(lse))
            }
            _ => {
                let (qkv, t) = (self.values::<f64>()?, table.values::<f64>()?);
                let m = mask.map(|m| m.values::<f64>()).transpose()?;
                let b = gather_bias(&t, bias.index, heads);
                let x = WindowAttnInputs {
                    qkv: &qkv,
                    bias: &b,
                    mask: m.as_deref(),
                };
                let mut out = vec![0.0f64; windows * n * c];
                let mut lse = vec![0.0f64; windows * heads * n];
                window_attention_forward_reference(&shape, &x, &mut out, &mut lse);
                (tensor_from(out, &[windows, n, c]), None)
            }
        };
        let mask_grad = mask.is_some_and(Tensor::tracks_grad);
        let mut inputs = vec![self, table];
        if let (Some(m), true) = (mask, mask_grad) {
            inputs.push(m);
        }
        Ok(Tensor::from_op(out, &inputs, |out| WindowAttentionBackward {
            shape,
            qkv: self.detach(),
            table: table.detach(),
            index: bias.index.to_vec(),
            mask: mask.map(Tensor::detach),
            mask_grad,
            saved: saved.map(|lse| (out.clone(), lse)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck;

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, seed, DType::F64).unwrap()
    }

    /// A 2 x 3 window's MONAI relative-position index (5 x 3 - table of 15 entries).
    fn index_2x3() -> Vec<usize> {
        let coords: Vec<(usize, usize)> = (0..2).flat_map(|a| (0..3).map(move |b| (a, b))).collect();
        coords
            .iter()
            .flat_map(|&(a0, b0)| coords.iter().map(move |&(a1, b1)| (a0 + 1 - a1) * 5 + (b0 + 2 - b1)))
            .collect()
    }

    #[test]
    fn gradients_of_qkv_table_and_mask() {
        let index = index_2x3();
        let mask = randn(&[2, 6, 6], 3).gt(&Tensor::scalar(0.5f64)).unwrap();
        let mask = mask.to_dtype(DType::F64).unwrap().mul_scalar(-3.0).unwrap();
        let f = |t: &[Tensor]| {
            t[0].window_attention(
                RelativeBias {
                    table: &t[1],
                    index: &index,
                },
                Some(&t[2]),
                2,
                0.5,
            )
        };
        gradcheck::check(f, &[randn(&[4, 6, 12], 1), randn(&[15, 2], 2), mask]).unwrap();
    }

    #[test]
    fn f32_fast_path_matches_f64_reference_values_and_gradients() {
        let index = index_2x3();
        let (qkv, table) = (randn(&[3, 6, 24], 4), randn(&[15, 4], 5));
        let run = |dtype: DType| {
            let (q, t) = (
                qkv.to_dtype(dtype).unwrap().requires_grad(),
                table.to_dtype(dtype).unwrap().requires_grad(),
            );
            let y = q
                .window_attention(
                    RelativeBias {
                        table: &t,
                        index: &index,
                    },
                    None,
                    4,
                    0.3,
                )
                .unwrap();
            let g = y.mul(&y).unwrap().sum_all().unwrap().backward().unwrap();
            [y, g.get(&q).unwrap().clone(), g.get(&t).unwrap().clone()].map(|t| t.to_vec_f64())
        };
        for (a, b) in run(DType::F32).iter().zip(run(DType::F64)) {
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_shapes_name_what_was_expected() {
        let index = index_2x3();
        let table = randn(&[15, 2], 1);
        let bias = RelativeBias {
            table: &table,
            index: &index,
        };
        let err = randn(&[4, 6, 10], 0).window_attention(bias, None, 2, 1.0).unwrap_err();
        assert!(err.to_string().contains("3 * channels"), "{err}");
        let err = randn(&[4, 5, 12], 0).window_attention(bias, None, 2, 1.0).unwrap_err();
        assert!(err.to_string().contains("25 bias indices"), "{err}");
        let mask = randn(&[3, 6, 6], 2);
        let err = randn(&[4, 6, 12], 0)
            .window_attention(bias, Some(&mask), 2, 1.0)
            .unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
        let err = randn(&[4, 6, 18], 0).window_attention(bias, None, 3, 1.0).unwrap_err();
        assert!(err.to_string().contains("bias table"), "{err}");
    }
}
