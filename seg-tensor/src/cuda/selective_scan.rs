//! Mamba's selective scan on CUDA tensors: seg-kernels' launchers (`cuda/selective_scan.cu`) with the
//! meaning of [`Tensor::selective_scan`]. `u`, `delta`, `B`, `C`, `z` and `y` are in the inputs'
//! storage type (f32, f16 or bf16); `A`, `D`, `delta_bias`, the state and the last state are f32 (the
//! first three converted on the device when the inputs are not f32), and every input's gradient is
//! returned in the inputs' dtype.
//!
//! `y` and the last state are two recorded outputs sharing what the forward saved: the backward of
//! `y` runs the kernel with no last-state gradient (Mamba's blocks use `y` only), that of the last
//! state with a zero `dy`; when a loss uses both, their input gradients add up.

use std::sync::Arc;

use seg_kernels::cpu::selective_scan::ScanShape;
use seg_kernels::cuda::selective_scan::{scan_backward, scan_forward, CudaScanInputs};
use seg_kernels::cuda::{CudaView, StorageFloat};

use super::{dense, elements, on_gpu, tensor, to_dtype, with_storage_float};
use crate::autograd::Backward;
use crate::{DType, Element, Result, Tensor};

const OP: &str = "selective_scan";

/// The inputs the kernels take in f32 whatever the storage type: A, D, delta_bias.
const F32_INPUTS: [usize; 3] = [2, 5, 7];

/// The scan's dense inputs on the device: u, delta, A, B, C, D, z, delta_bias (absent ones `None`).
struct Saved {
    shape: ScanShape,
    inputs: [Option<Tensor>; 8],
}

/// Which output a backward belongs to.
#[derive(Clone, Copy, Debug)]
enum Output {
    Y,
    LastState,
}

impl Saved {
    fn required(&self, i: usize) -> &Tensor {
        self.inputs[i]
            .as_ref()
            .expect("u, delta, A, B and C are always present")
    }

    fn optional<T: Element>(&self, i: usize) -> Result<Option<CudaView<'_, T>>> {
        self.inputs[i].as_ref().map(elements::<T>).transpose()
    }

    /// The kernels' view of the inputs, `T` their storage type.
    fn views<T: Element + StorageFloat>(&self) -> Result<CudaScanInputs<'_, T>> {
        Ok(CudaScanInputs {
            u: elements::<T>(self.required(0))?,
            delta: elements::<T>(self.required(1))?,
            a: elements::<f32>(self.required(2))?,
            b: elements::<T>(self.required(3))?,
            c: elements::<T>(self.required(4))?,
            d: self.optional::<f32>(5)?,
            z: self.optional::<T>(6)?,
            delta_bias: self.optional::<f32>(7)?,
        })
    }

    /// `y` `(batch, dim, len)` in `T` and the last state `(batch, dim, state)` in f32.
    fn forward<T: Element + StorageFloat>(&self) -> Result<(Tensor, Tensor)> {
        let s = &self.shape;
        let (gpu, _) = on_gpu::<T>(self.required(0))?;
        let mut y = gpu.alloc::<T>(s.batch * s.dim * s.len)?;
        let mut last = gpu.alloc::<f32>(s.batch * s.dim * s.state)?;
        scan_forward(
            gpu,
            s,
            &self.views::<T>()?,
            &mut y.slice_mut(..),
            &mut last.slice_mut(..),
        )?;
        Ok((
            tensor(gpu, y, &[s.batch, s.dim, s.len]),
            tensor(gpu, last, &[s.batch, s.dim, s.state]),
        ))
    }

    /// The gradients of `sum(output * grad)` in every present input, in their order, as `T`.
    fn backward<T: Element + StorageFloat>(&self, output: Output, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let s = &self.shape;
        let (gpu, _) = on_gpu::<T>(self.required(0))?;
        let (gy, g_last) = match output {
            Output::Y => (dense(&to_dtype(grad.clone(), T::DTYPE)?)?, None),
            Output::LastState => {
                let zeros = gpu.zeros::<T>(s.batch * s.dim * s.len)?;
                let g_last = dense(&to_dtype(grad.clone(), DType::F32)?)?;
                (tensor(gpu, zeros, &[s.batch, s.dim, s.len]), Some(g_last))
            }
        };
        let g_last = g_last.as_ref().map(elements::<f32>).transpose()?;
        let g = scan_backward(gpu, s, &self.views::<T>()?, &elements::<T>(&gy)?, g_last.as_ref())?;
        let in_shape = |i: usize| self.required(i).shape();
        let grads = [
            Some(tensor(gpu, g.u, in_shape(0))),
            Some(tensor(gpu, g.delta, in_shape(1))),
            Some(tensor(gpu, g.a, in_shape(2))),
            Some(tensor(gpu, g.b, in_shape(3))),
            Some(tensor(gpu, g.c, in_shape(4))),
            g.d.map(|d| tensor(gpu, d, &[s.dim])),
            g.z.map(|z| tensor(gpu, z, in_shape(6))),
            g.delta_bias.map(|v| tensor(gpu, v, &[s.dim])),
        ];
        grads
            .into_iter()
            .filter_map(|g| g.map(|g| to_dtype(g, T::DTYPE).map(Some)))
            .collect()
    }
}

struct ScanBackward {
    saved: Arc<Saved>,
    output: Output,
}

impl Backward for ScanBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dtype = self.saved.required(0).dtype();
        with_storage_float!(dtype, "selective_scan backward", T => self.saved.backward::<T>(self.output, grad))
    }
}

/// [`Tensor::selective_scan`] of CUDA tensors (shapes, dtypes and devices agreeing, checked by the
/// op): `inputs` u, delta, A, B, C, D, z, delta_bias, the absent ones `None`. Returns `y` and the last
/// state (f32), both differentiable in every present input.
pub(crate) fn selective_scan(shape: ScanShape, inputs: [Option<&Tensor>; 8]) -> Result<(Tensor, Tensor)> {
    let u = inputs[0].expect("u is always present");
    let prepared = |i: usize, t: &Tensor| -> Result<Tensor> {
        let t = t.detach();
        dense(&if F32_INPUTS.contains(&i) {
            to_dtype(t, DType::F32)?
        } else {
            t
        })
    };
    let mut dense_inputs: [Option<Tensor>; 8] = Default::default();
    for (i, t) in inputs.iter().enumerate() {
        dense_inputs[i] = t.map(|t| prepared(i, t)).transpose()?;
    }
    let saved = Arc::new(Saved {
        shape,
        inputs: dense_inputs,
    });
    let (y, last) = with_storage_float!(u.dtype(), OP, T => saved.forward::<T>())?;
    let present: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
    let record = |out: Tensor, output: Output| {
        Tensor::from_op(out, &present, |_| ScanBackward {
            saved: saved.clone(),
            output,
        })
    };
    Ok((record(y, Output::Y), record(last, Output::LastState)))
}
