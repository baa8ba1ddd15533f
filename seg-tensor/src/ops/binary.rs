//! Elementwise functions of two tensors with NumPy broadcasting: `y = f(a, b)`, backward
//! `da = sum_to(dy * df/da)`, `db = sum_to(dy * df/db)` over the broadcast axes.

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::layout::{broadcast_shape, numel};
use seg_kernels::cuda::BinaryKernel;

use crate::ops::{broadcast_values, expect_float, expect_same_kind, on_cuda, tensor_from, zip_values};
use crate::{with_float, Float, Result, Tensor};

/// A binary elementwise function with its partial derivatives (PyTorch's conventions: at a tie,
/// `maximum`/`minimum` send half the gradient to each side; `pow`'s exponent gradient is 0 where the
/// base is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
}

impl Binary {
    fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
            Binary::Pow => "pow",
        }
    }

    fn kernel(self) -> BinaryKernel {
        match self {
            Binary::Add => BinaryKernel::Add,
            Binary::Sub => BinaryKernel::Sub,
            Binary::Mul => BinaryKernel::Mul,
            Binary::Div => BinaryKernel::Div,
            Binary::Maximum => BinaryKernel::Maximum,
            Binary::Minimum => BinaryKernel::Minimum,
            Binary::Pow => BinaryKernel::Pow,
        }
    }

    fn apply<T: Float>(self, a: T, b: T) -> T {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Maximum => {
                if a.is_nan() || b.is_nan() {
                    T::nan()
                } else {
                    a.max(b)
                }
            }
            Binary::Minimum => {
                if a.is_nan() || b.is_nan() {
                    T::nan()
                } else {
                    a.min(b)
                }
            }
            Binary::Pow => a.powf(b),
        }
    }

    /// `(df/da, df/db)` at `(a, b)`.
    fn partials<T: Float>(self, a: T, b: T) -> (T, T) {
        let (zero, one, half) = (T::zero(), T::one(), T::from_f64(0.5));
        let pick = |first: bool, tie: bool| {
            if tie {
                (half, half)
            } else if first {
                (one, zero)
            } else {
                (zero, one)
            }
        };
        match self {
            Binary::Add => (one, one),
            Binary::Sub => (one, -one),
            Binary::Mul => (b, a),
            Binary::Div => (one / b, -a / (b * b)),
            Binary::Maximum => pick(a > b, a == b),
            Binary::Minimum => pick(a < b, a == b),
            Binary::Pow => {
                let db = if a == zero && b >= zero {
                    zero
                } else {
                    a.powf(b) * a.ln()
                };
                // The base gradient is 0 where the exponent is 0 (b * a^(b-1) would be 0 * inf at a = 0).
                let da = if b == zero { zero } else { b * a.powf(b - one) };
                (da, db)
            }
        }
    }
}

struct BinaryBackward {
    op: Binary,
    a: Tensor,
    b: Tensor,
    wants: [bool; 2],
}

impl Backward for BinaryBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (op, shape) = (self.op, grad.shape().to_vec());
        let reduce = |g: Option<Tensor>, to: &Tensor| g.map(|g| g.sum_to_shape(to.shape())).transpose();
        if op == Binary::Add {
            // Both partials are 1: the gradient itself reaches each side, summed to its shape.
            let pass = |wanted: bool| wanted.then(|| grad.clone());
            return Ok(vec![
                reduce(pass(self.wants[0]), &self.a)?,
                reduce(pass(self.wants[1]), &self.b)?,
            ]);
        }
        if on_cuda(grad) {
            let side = |s: usize| {
                self.wants[s]
                    .then(|| crate::cuda::binary_backward(grad, &self.a, &self.b, op.kernel(), s))
                    .transpose()
            };
            return Ok(vec![reduce(side(0)?, &self.a)?, reduce(side(1)?, &self.b)?]);
        }
        let (da, db) = with_float!(grad.dtype(), "binary backward", T => {
            let g = grad.values::<T>()?;
            let a = broadcast_values::<T>(&self.a, &shape)?;
            let b = broadcast_values::<T>(&self.b, &shape)?;
            // One pass computes both partials; a side that needs no gradient collects nothing.
            let capacity = |wanted: bool| if wanted { g.len() } else { 0 };
            let (mut da, mut db) = (Vec::with_capacity(capacity(self.wants[0])), Vec::with_capacity(capacity(self.wants[1])));
            for (&g, (&a, &b)) in g.iter().zip(a.iter().zip(b.iter())) {
                let (pa, pb) = op.partials(a, b);
                if self.wants[0] {
                    da.push(g * pa);
                }
                if self.wants[1] {
                    db.push(g * pb);
                }
            }
            let da = self.wants[0].then(|| tensor_from(da, &shape));
            let db = self.wants[1].then(|| tensor_from(db, &shape));
            Ok((da, db))
        })?;
        Ok(vec![reduce(da, &self.a)?, reduce(db, &self.b)?])
    }
}

impl Tensor {
    /// `op(self, other)` elementwise with broadcasting, differentiable in both operands.
    pub fn binary(&self, other: &Tensor, op: Binary) -> Result<Tensor> {
        // Mixed float types promote (bf16 + f32 is f32); `pow` is on autocast's f32 list.
        let policy = if op == Binary::Pow {
            Policy::Fp32
        } else {
            Policy::Promote
        };
        if let Some(y) = autocast::dispatch(policy, &[self, other], |t| t[0].binary(&t[1], op))? {
            return Ok(y);
        }
        expect_float(op.name(), self)?;
        expect_same_kind(op.name(), self, other)?;
        let shape = broadcast_shape(op.name(), self.shape(), other.shape())?;
        let out = if on_cuda(self) {
            crate::cuda::binary(self, other, &shape, op.kernel())?
        } else {
            with_float!(self.dtype(), op.name(), T => {
                let a = broadcast_values::<T>(self, &shape)?;
                let b = broadcast_values::<T>(other, &shape)?;
                Ok(tensor_from(zip_values(&a, &b, |a: T, b: T| op.apply(a, b)), &shape))
            })?
        };
        Ok(Tensor::from_op(out, &[self, other], |_| BinaryBackward {
            op,
            a: self.detach(),
            b: other.detach(),
            wants: [self.tracks_grad(), other.tracks_grad()],
        }))
    }

    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Add)
    }
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Sub)
    }
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Mul)
    }
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Div)
    }
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Maximum)
    }
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Minimum)
    }
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, Binary::Pow)
    }

    /// The sum over the axes along which `shape` was broadcast to this tensor's shape: the adjoint
    /// of `broadcast_to(shape)`.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let incompatible = || crate::Error::Broadcast {
            op: "sum_to_shape",
            lhs: self.shape().to_vec(),
            rhs: shape.to_vec(),
        };
        // `shape` must broadcast to this tensor's shape, else the sum below has no meaning.
        if broadcast_shape("sum_to_shape", shape, self.shape()).ok().as_deref() != Some(self.shape()) {
            return Err(incompatible());
        }
        let lead = self.rank().checked_sub(shape.len()).ok_or_else(incompatible)?;
        if self.shape()[lead..] == *shape && lead > 0 {
            // Only leading axes go (a bias gradient): a product with a row of ones, one GEMM
            // instead of a transposed gather and a sum per column.
            let (rows, cols) = (self.numel() / numel(shape).max(1), numel(shape));
            let ones = Tensor::full_on(&[1, rows], 1.0, self.dtype(), self.device())?;
            return ones.matmul(&self.reshape(&[rows, cols])?)?.reshape(shape);
        }
        let dims: Vec<isize> = (0..self.rank())
            .filter(|&i| i < lead || (shape[i - lead] == 1 && self.shape()[i] != 1))
            .map(|i| i as isize)
            .collect();
        self.sum(&dims, true)?.reshape(shape)
    }
}
