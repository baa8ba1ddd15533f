//! The `Tensor` handle: storage, layout and, when it tracks gradients, its autodiff node.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::autograd::{self, Backward, Gradients, Node};
use crate::layout::{numel, Layout};
use crate::storage::{CpuStorage, Device, Storage};
use crate::{DType, Element, Error, Result};

/// Identity of a tensor value; gradients are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// An n-dimensional array: a cheap handle to shared storage seen through a layout (shape, strides,
/// offset). Views (permute, narrow, expand, ...) share storage; ops allocate new storage.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

struct Inner {
    id: TensorId,
    storage: Arc<Storage>,
    layout: Layout,
    node: Option<Arc<Node>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?}", self.shape(), self.dtype())?;
        if self.tracks_grad() {
            write!(f, ", grad")?;
        }
        write!(f, ")")
    }
}

impl Tensor {
    // ----- construction -----

    fn build(storage: Arc<Storage>, layout: Layout, node: Option<Arc<Node>>) -> Self {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage,
            layout,
            node,
        }))
    }

    /// A dense tensor owning `data` with `shape`.
    pub(crate) fn from_storage(data: CpuStorage, shape: &[usize]) -> Self {
        debug_assert_eq!(data.len(), numel(shape));
        Self::with_storage(Storage::new(data), shape)
    }

    /// A dense tensor of `shape` over `storage` (on any device).
    pub(crate) fn with_storage(storage: Storage, shape: &[usize]) -> Self {
        Self::build(Arc::new(storage), Layout::contiguous(shape), None)
    }

    /// A tensor of `shape` holding `data` in row-major order.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(Error::invalid(
                "from_vec",
                format!(
                    "{} values cannot fill shape {shape:?} ({} elements)",
                    data.len(),
                    numel(shape)
                ),
            ));
        }
        Ok(Self::from_storage(T::wrap(data), shape))
    }

    /// A tensor of `shape` copied from `data`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(value: T) -> Self {
        Self::from_storage(T::wrap(vec![value]), &[])
    }

    /// A tensor of `shape` with every element `value` (converted to `dtype`).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Self {
        let n = numel(shape);
        let data = match dtype {
            DType::F16 => CpuStorage::F16(vec![half::f16::from_f64(value); n]),
            DType::BF16 => CpuStorage::BF16(vec![half::bf16::from_f64(value); n]),
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
            DType::I64 => CpuStorage::I64(vec![value as i64; n]),
            DType::U8 => CpuStorage::U8(vec![value as u8; n]),
        };
        Self::from_storage(data, shape)
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Self {
        Self::full(shape, 0.0, dtype)
    }

    /// A tensor of `shape` on `device` with every element `value` (filled on the device).
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Self::full(shape, value, dtype)),
            Device::Cuda(ordinal) => crate::cuda::full(ordinal, shape, value, dtype),
        }
    }

    /// Zeros of `shape` on `device`.
    pub fn zeros_on(shape: &[usize], dtype: DType, device: Device) -> Result<Self> {
        Self::full_on(shape, 0.0, dtype, device)
    }

    pub fn ones(shape: &[usize], dtype: DType) -> Self {
        Self::full(shape, 1.0, dtype)
    }

    /// Zeros of this tensor's shape and dtype, on the CPU (see [`Tensor::zeros_on`] for a device).
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape(), self.dtype())
    }

    /// Ones of this tensor's shape and dtype, on the CPU.
    pub fn ones_like(&self) -> Self {
        Self::ones(self.shape(), self.dtype())
    }

    /// `start, start + step, ...` up to but excluding `end`, as `torch.arange`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Self> {
        if step == 0.0 || !step.is_finite() || (end - start) / step < 0.0 {
            return Err(Error::invalid(
                "arange",
                format!("cannot go from {start} to {end} in steps of {step}"),
            ));
        }
        let n = ((end - start) / step).ceil() as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(values, &[n])?.to_dtype(dtype)
    }

    /// Draws `n` values from `sample(i)` for each element index `i` (counter-based: reproducible and
    /// independent of thread count).
    fn sampled(shape: &[usize], dtype: DType, sample: impl Fn(u64) -> f64) -> Result<Self> {
        if !dtype.is_float() {
            return Err(Error::DType {
                op: "random",
                expected: "a float dtype",
                found: dtype,
            });
        }
        let values: Vec<f64> = (0..numel(shape) as u64).map(sample).collect();
        Tensor::from_vec(values, shape)?.to_dtype(dtype)
    }

    /// Uniform values in `[low, high)` from `seed`; the same seed gives the same tensor.
    pub fn rand_uniform(shape: &[usize], low: f64, high: f64, seed: u64, dtype: DType) -> Result<Self> {
        Self::sampled(shape, dtype, |i| low + (high - low) * crate::random::uniform(seed, i))
    }

    /// Uniform values in `[0, 1)` from `seed`.
    pub fn rand(shape: &[usize], seed: u64, dtype: DType) -> Result<Self> {
        Self::rand_uniform(shape, 0.0, 1.0, seed, dtype)
    }

    /// Standard normal values from `seed`.
    pub fn randn(shape: &[usize], seed: u64, dtype: DType) -> Result<Self> {
        Self::sampled(shape, dtype, |i| crate::random::normal(seed, i))
    }

    // ----- accessors -----

    pub fn id(&self) -> TensorId {
        self.0.id
    }

    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }

    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }

    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// Size of dimension `dim` (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        Ok(self.shape()[crate::layout::normalize_dim("dim", dim, self.rank())?])
    }

    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }

    /// A new view of the same storage.
    pub(crate) fn view_with(&self, layout: Layout) -> Tensor {
        Self::build(self.0.storage.clone(), layout, None)
    }

    // ----- reading values -----

    /// The elements in row-major order, borrowed when the layout is already dense. A CUDA tensor's
    /// are copied to the host (the host waits for the device here, and only here).
    pub fn values<T: Element>(&self) -> Result<Cow<'_, [T]>> {
        let Some(data) = self.0.storage.cpu() else {
            if self.dtype() != T::DTYPE {
                return Err(Error::DType {
                    op: "values",
                    expected: T::DTYPE.name(),
                    found: self.dtype(),
                });
            }
            return crate::cuda::download(self);
        };
        let data = T::unwrap(data).ok_or(Error::DType {
            op: "values",
            expected: T::DTYPE.name(),
            found: self.dtype(),
        })?;
        let layout = &self.0.layout;
        Ok(if layout.is_contiguous() {
            Cow::Borrowed(&data[layout.offset()..layout.offset() + layout.numel()])
        } else {
            Cow::Owned(layout.offsets().map(|o| data[o]).collect())
        })
    }

    /// The elements in row-major order as a new vector of `T` (which must be the tensor's dtype).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(self.values::<T>()?.into_owned())
    }

    /// The elements converted to f64, whatever the dtype.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        crate::with_element!(self.dtype(), T => {
            self.values::<T>().expect("dtype matches").iter().map(|x| x.as_f64()).collect()
        })
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "item",
                expected: "one element".into(),
                found: self.shape().to_vec(),
            });
        }
        Ok(self.to_vec_f64()[0])
    }

    /// The tensor on `device` (itself when already there); gradients flow back to this device.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let out = match device {
            Device::Cpu => {
                crate::with_element!(self.dtype(), T => Tensor::from_vec(self.to_vec::<T>()?, self.shape()))?
            }
            Device::Cuda(ordinal) => crate::cuda::upload(self, ordinal)?,
        };
        Ok(Tensor::from_op(out, &[self], |_| ToDeviceBackward {
            device: self.device(),
        }))
    }

    // ----- autodiff -----

    /// This tensor as a leaf that tracks gradients (PyTorch's `requires_grad_()`).
    pub fn requires_grad(&self) -> Tensor {
        let id = TensorId::fresh();
        let node = Arc::new(Node::leaf(id, self.shape()));
        Tensor(Arc::new(Inner {
            id,
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            node: Some(node),
        }))
    }

    /// Whether gradients flow back through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.0.node.is_some()
    }

    /// The same values, cut from the autodiff graph.
    pub fn detach(&self) -> Tensor {
        self.view_with(self.0.layout.clone())
    }

    /// Wraps the result of an op: when autodiff is on and some input tracks gradients, the output
    /// records `make_backward(&output)` (the output handed to it is detached, so saving it makes no
    /// cycle).
    pub fn from_op<B: Backward + 'static>(
        output: Tensor,
        inputs: &[&Tensor],
        make_backward: impl FnOnce(&Tensor) -> B,
    ) -> Tensor {
        if !autograd::is_grad_enabled() || inputs.iter().all(|t| !t.tracks_grad()) {
            return output;
        }
        let backward = Box::new(make_backward(&output));
        let inputs = inputs.iter().map(|t| t.0.node.clone()).collect();
        let id = TensorId::fresh();
        let node = Arc::new(Node::op(id, output.shape(), inputs, backward));
        Tensor(Arc::new(Inner {
            id,
            storage: output.0.storage.clone(),
            layout: output.0.layout.clone(),
            node: Some(node),
        }))
    }

    /// Gradients of this one-element tensor with respect to every leaf it depends on.
    pub fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "backward",
                expected: "a one-element tensor (or use backward_with)".into(),
                found: self.shape().to_vec(),
            });
        }
        self.backward_with(&Tensor::full_on(self.shape(), 1.0, self.dtype(), self.device())?)
    }

    /// Gradients of `sum(self * grad)` with respect to every leaf this tensor depends on.
    pub fn backward_with(&self, grad: &Tensor) -> Result<Gradients> {
        let node = self.0.node.as_ref().ok_or_else(|| {
            Error::Backward("this tensor does not depend on any tensor that requires gradients".into())
        })?;
        if grad.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op: "backward_with",
                lhs: self.device(),
                rhs: grad.device(),
            });
        }
        if grad.shape() != self.shape() || grad.dtype() != self.dtype() {
            return Err(Error::ShapeMismatch {
                op: "backward_with",
                expected: format!("a gradient of shape {:?} and dtype {:?}", self.shape(), self.dtype()),
                found: grad.shape().to_vec(),
            });
        }
        // Each op's backward computes in the dtypes its forward recorded: autocast is off.
        crate::no_autocast(|| autograd::run_backward(node, grad.detach()))
    }
}

/// The gradient of `to_device`: the output gradient moved back to the input's device.
struct ToDeviceBackward {
    device: Device,
}

impl Backward for ToDeviceBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grad.to_device(self.device)?)])
    }
}
