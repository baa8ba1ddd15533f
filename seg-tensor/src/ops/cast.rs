//! Conversion between dtypes.

use crate::autograd::Backward;
use crate::ops::{map_values, tensor_from};
use crate::{DType, Element, Result, Tensor};

fn convert<T: Element, U: Element>(t: &Tensor) -> Result<Tensor> {
    Ok(tensor_from(
        map_values(&t.values::<T>()?, |x: T| U::from_f64(x.as_f64())),
        t.shape(),
    ))
}

fn convert_to<U: Element>(t: &Tensor) -> Result<Tensor> {
    crate::with_element!(t.dtype(), T => convert::<T, U>(t))
}

struct CastBackward {
    from: DType,
}

impl Backward for CastBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grad.to_dtype(self.from)?)])
    }
}

impl Tensor {
    /// The values converted to `dtype` (rounding to nearest for f16/bf16, truncation toward zero for
    /// integers). Gradients flow between float dtypes.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = if crate::ops::on_cuda(self) {
            crate::cuda::cast(self, dtype)?
        } else {
            crate::with_element!(dtype, U => convert_to::<U>(self))?
        };
        if !(dtype.is_float() && self.dtype().is_float()) {
            return Ok(out);
        }
        Ok(Tensor::from_op(out, &[self], |_| CastBackward { from: self.dtype() }))
    }
}
