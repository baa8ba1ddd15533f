//! Comparisons producing u8 masks (1 where true), and `where_` selecting by a mask.

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::broadcast_shape;
use seg_kernels::cuda::CompareKernel;

use crate::ops::{broadcast_values, expect_same_device, expect_same_kind, on_cuda, tensor_from, zip_values};
use crate::{with_float, DType, Error, Result, Tensor};

#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn kernel(self) -> CompareKernel {
        match self {
            Cmp::Eq => CompareKernel::Eq,
            Cmp::Ne => CompareKernel::Ne,
            Cmp::Lt => CompareKernel::Lt,
            Cmp::Le => CompareKernel::Le,
            Cmp::Gt => CompareKernel::Gt,
            Cmp::Ge => CompareKernel::Ge,
        }
    }
}

impl Tensor {
    fn compare(&self, other: &Tensor, cmp: Cmp) -> Result<Tensor> {
        if let Some(y) = autocast::dispatch(Policy::Promote, &[self, other], |t| t[0].compare(&t[1], cmp))? {
            return Ok(y);
        }
        expect_same_kind("compare", self, other)?;
        let shape = broadcast_shape("compare", self.shape(), other.shape())?;
        if on_cuda(self) {
            return crate::cuda::compare(self, other, &shape, cmp.kernel());
        }
        fn run<T: crate::Element>(a: &Tensor, b: &Tensor, shape: &[usize], cmp: Cmp) -> Result<Tensor> {
            let a = broadcast_values::<T>(a, shape)?;
            let b = broadcast_values::<T>(b, shape)?;
            let mask = zip_values(&a, &b, |a: T, b: T| {
                u8::from(match cmp {
                    Cmp::Eq => a == b,
                    Cmp::Ne => a != b,
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                    Cmp::Gt => a > b,
                    Cmp::Ge => a >= b,
                })
            });
            Ok(tensor_from(mask, shape))
        }
        crate::with_comparable!(self.dtype(), "compare", T => run::<T>(self, other, &shape, cmp))
    }

    /// Mask of `self == other` (broadcasting).
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Eq)
    }
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ne)
    }
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Lt)
    }
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Le)
    }
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Gt)
    }
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ge)
    }

    /// `on_true` where this u8 mask is nonzero, else `on_false` (all three broadcast together), as
    /// `torch.where(mask, on_true, on_false)`. Gradients flow to both values, not to the mask.
    pub fn where_(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if self.dtype() != DType::U8 {
            return Err(Error::DType {
                op: "where",
                expected: "a u8 mask",
                found: self.dtype(),
            });
        }
        let select = |t: &[Tensor]| self.where_(&t[0], &t[1]);
        if let Some(y) = autocast::dispatch(Policy::Promote, &[on_true, on_false], select)? {
            return Ok(y);
        }
        expect_same_kind("where", on_true, on_false)?;
        let shape = broadcast_shape("where", self.shape(), on_true.shape())?;
        let shape = broadcast_shape("where", &shape, on_false.shape())?;
        expect_same_device("where", self, on_true)?;
        if on_cuda(self) {
            let out = crate::cuda::select(self, on_true, on_false, &shape)?;
            let mask = self.broadcast_to(&shape)?;
            return Ok(Tensor::from_op(out, &[on_true, on_false], |_| WhereBackward {
                mask,
                shapes: [on_true.shape().to_vec(), on_false.shape().to_vec()],
            }));
        }
        let mask = broadcast_values::<u8>(self, &shape)?;
        let out = with_float!(on_true.dtype(), "where", T => {
            let a = broadcast_values::<T>(on_true, &shape)?;
            let b = broadcast_values::<T>(on_false, &shape)?;
            let picked = mask.iter().zip(a.iter().zip(b.iter())).map(|(&m, (&a, &b))| if m != 0 { a } else { b }).collect();
            Ok(tensor_from::<T>(picked, &shape))
        })?;
        let mask = tensor_from(mask.into_owned(), &shape);
        Ok(Tensor::from_op(out, &[on_true, on_false], |_| WhereBackward {
            mask,
            shapes: [on_true.shape().to_vec(), on_false.shape().to_vec()],
        }))
    }
}

struct WhereBackward {
    mask: Tensor,
    shapes: [Vec<usize>; 2],
}

impl Backward for WhereBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let zero = Tensor::zeros_on(&[], grad.dtype(), grad.device())?;
        let on_true = self.mask.where_(grad, &zero)?.sum_to_shape(&self.shapes[0])?;
        let on_false = self.mask.where_(&zero, grad)?.sum_to_shape(&self.shapes[1])?;
        Ok(vec![Some(on_true), Some(on_false)])
    }
}
