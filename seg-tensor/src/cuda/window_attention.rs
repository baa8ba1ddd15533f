//! Swin's fused window attention on CUDA tensors: seg-kernels' launchers (`cuda/window_attention.cu`)
//! on dense f32, f16 or bf16 buffers, with the meaning of [`Tensor::window_attention`]. The
//! relative-position bias `B[h, i, j] = table[index[i N + j], h]` is gathered from its table on the
//! device (`cuda/index.cu`), and the table's gradient is the scatter-add of the bias gradient by the
//! same index, `dtable[index[p], h] += dB[h, p]`, also on the device.

use seg_kernels::cpu::window_attention::WindowAttnShape;
use seg_kernels::cuda::window_attention::{window_attention_backward, window_attention_forward, CudaWindowAttnInputs};
use seg_kernels::cuda::StorageFloat;

use super::{dense, elements, on_gpu, tensor, to_dtype, with_storage_float};
use crate::autograd::Backward;
use crate::{DType, Element, Result, Tensor};

const OP: &str = "window_attention";

/// `B` `(heads, N N)` dense, in the table's dtype: `B[h, p] = table[index[p], h]`, read through the
/// table's transpose `(heads, entries)` along its last axis.
fn gather_bias(table: &Tensor, index: &Tensor) -> Result<Tensor> {
    let (heads, nn) = (table.shape()[1], index.numel());
    let rows = index.reshape(&[1, nn])?.broadcast_to(&[heads, nn])?;
    table.detach().transpose(0, 1)?.gather(1, &rows)
}

/// The table's gradient `(entries, heads)` in f32: `dtable[index[p], h] += dbias[h, p]` (atomic adds).
fn scatter_bias(dbias: &Tensor, index: &Tensor, entries: usize) -> Result<Tensor> {
    let (heads, nn) = (dbias.shape()[0], index.numel());
    let rows = index.reshape(&[nn, 1])?.broadcast_to(&[nn, heads])?;
    let zeros = Tensor::zeros_on(&[entries, heads], DType::F32, dbias.device())?;
    zeros.scatter_add(0, &rows, &dbias.transpose(0, 1)?)
}

/// What the forward keeps for the backward: the dense inputs on the device (qkv, the gathered bias,
/// the mask), the output and its row logsumexp.
struct Saved {
    shape: WindowAttnShape,
    qkv: Tensor,
    bias: Tensor,
    mask: Option<Tensor>,
    out: Tensor,
    lse: Tensor,
}

impl Saved {
    /// Runs the forward on dense `qkv`, `bias` and `mask` of storage type `T`.
    fn forward<T: Element + StorageFloat>(
        shape: WindowAttnShape,
        qkv: Tensor,
        bias: Tensor,
        mask: Option<Tensor>,
    ) -> Result<Self> {
        let s = &shape;
        let (gpu, _) = on_gpu::<T>(&qkv)?;
        let (n, c) = (s.tokens, s.heads * s.head_dim);
        let mut out = gpu.alloc::<T>(s.windows * n * c)?;
        let mut lse = gpu.alloc::<f32>(s.windows * s.heads * n)?;
        let x = CudaWindowAttnInputs {
            qkv: elements::<T>(&qkv)?,
            bias: elements::<T>(&bias)?,
            mask: mask.as_ref().map(elements::<T>).transpose()?,
        };
        window_attention_forward(gpu, s, &x, &mut out.slice_mut(..), &mut lse.slice_mut(..))?;
        let out = tensor(gpu, out, &[s.windows, n, c]);
        let lse = tensor(gpu, lse, &[s.windows, s.heads, n]);
        Ok(Saved {
            shape,
            qkv,
            bias,
            mask,
            out,
            lse,
        })
    }

    /// The gradients of `sum(out * dout)` in qkv `(windows, N, 3 C)` (storage type `T`), the bias
    /// `(heads, N N)` and, with `mask_grad`, the mask (both f32).
    fn backward<T: Element + StorageFloat>(
        &self,
        dout: &Tensor,
        mask_grad: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let s = &self.shape;
        let dout = dense(&to_dtype(dout.clone(), T::DTYPE)?)?;
        let (gpu, _) = on_gpu::<T>(&self.qkv)?;
        let x = CudaWindowAttnInputs {
            qkv: elements::<T>(&self.qkv)?,
            bias: elements::<T>(&self.bias)?,
            mask: self.mask.as_ref().map(elements::<T>).transpose()?,
        };
        let g = window_attention_backward(
            gpu,
            s,
            &x,
            &elements::<T>(&self.out)?,
            &elements::<f32>(&self.lse)?,
            &elements::<T>(&dout)?,
            mask_grad,
        )?;
        let n = s.tokens;
        let dmask = match (g.mask, &self.mask) {
            (Some(dm), Some(m)) => Some(tensor(gpu, dm, m.shape())),
            _ => None,
        };
        Ok((
            tensor(gpu, g.qkv, self.qkv.shape()),
            tensor(gpu, g.bias, &[s.heads, n * n]),
            dmask,
        ))
    }
}

struct WindowAttentionBackward {
    saved: Saved,
    /// The bias index on the device `(N N)` (i64), the table's shape and dtype.
    index: Tensor,
    table: (Vec<usize>, DType),
    /// The mask's dtype when it gets a gradient (it is then the op's third input).
    mask_grad: Option<DType>,
}

impl Backward for WindowAttentionBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let grad_mask = self.mask_grad.is_some();
        let (dqkv, dbias, dmask) = with_storage_float!(self.saved.qkv.dtype(), "window_attention backward", T => {
            self.saved.backward::<T>(grad, grad_mask)
        })?;
        let (table_shape, table_dtype) = &self.table;
        let dtable = to_dtype(scatter_bias(&dbias, &self.index, table_shape[0])?, *table_dtype)?;
        let mut grads = vec![Some(dqkv), Some(dtable)];
        if let (Some(dtype), Some(dmask)) = (self.mask_grad, dmask) {
            grads.push(Some(to_dtype(dmask, dtype)?));
        }
        Ok(grads)
    }
}

/// [`Tensor::window_attention`] of CUDA tensors (shapes, index range and dtypes agreeing, checked by
/// the op): `qkv` `(windows, N, 3 C)`, `table` `(entries, heads)`, `index` the `N N` bias indices,
/// `mask` `(nW, N, N)`. Differentiable in `qkv`, the table and (when it tracks gradients) the mask.
pub(crate) fn window_attention(
    shape: WindowAttnShape,
    qkv: &Tensor,
    table: &Tensor,
    index: &[usize],
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let flat: Vec<i64> = index.iter().map(|&i| i as i64).collect();
    let index = Tensor::from_vec(flat, &[index.len()])?.to_device(qkv.device())?;
    let bias = gather_bias(table, &index)?;
    let dense_qkv = dense(&qkv.detach())?;
    let dense_mask = mask.map(|m| dense(&m.detach())).transpose()?;
    let saved = with_storage_float!(qkv.dtype(), OP, T => Saved::forward::<T>(shape, dense_qkv, bias, dense_mask))?;
    let mask_grad = mask.filter(|m| m.tracks_grad());
    let mut inputs = vec![qkv, table];
    inputs.extend(mask_grad);
    Ok(Tensor::from_op(saved.out.clone(), &inputs, |_| {
        WindowAttentionBackward {
            saved,
            index,
            table: (table.shape().to_vec(), table.dtype()),
            mask_grad: mask_grad.map(Tensor::dtype),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bias gather and the table-gradient scatter are device-generic ops: checked here on the
    /// CPU against their formulas, on a table of 7 entries and 3 heads and 2 x 2 tokens.
    #[test]
    fn bias_gather_and_scatter_follow_their_formulas() {
        let (entries, heads) = (7, 3);
        let index = [6usize, 0, 3, 3];
        let table = Tensor::randn(&[entries, heads], 1, DType::F32).unwrap();
        let index_t = Tensor::from_vec(index.iter().map(|&i| i as i64).collect(), &[4]).unwrap();
        let t = table.to_vec::<f32>().unwrap();
        let bias = gather_bias(&table, &index_t).unwrap();
        assert_eq!(bias.shape(), [heads, 4]);
        let expected: Vec<f32> = (0..heads)
            .flat_map(|h| index.iter().map(move |&p| (h, p)))
            .map(|(h, p)| t[p * heads + h])
            .collect();
        assert_eq!(bias.to_vec::<f32>().unwrap(), expected);
        let dbias = Tensor::randn(&[heads, 4], 2, DType::F32).unwrap();
        let g = dbias.to_vec::<f32>().unwrap();
        let mut expected = vec![0.0f32; entries * heads];
        for h in 0..heads {
            for (p, &i) in index.iter().enumerate() {
                expected[i * heads + h] += g[h * 4 + p];
            }
        }
        let dtable = scatter_bias(&dbias, &index_t, entries).unwrap();
        assert_eq!(dtable.shape(), [entries, heads]);
        assert_eq!(dtable.to_vec::<f32>().unwrap(), expected);
    }
}
