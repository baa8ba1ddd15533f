//! Elementwise functions of one tensor: `y = f(x)`, backward `dx = dy * f'(x)`.

use crate::autograd::Backward;
use seg_kernels::cuda::UnaryKernel;

use crate::ops::{expect_float, map_values, on_cuda, tensor_from, zip_values};
use crate::{with_float, Float, Result, Tensor};

/// An elementwise function with its derivative. Formulas follow PyTorch, including its conventions
/// at kinks (the derivative of `relu` and `abs` at 0 is 0; `clamp` passes gradient at the bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Exp,
    /// Natural logarithm.
    Log,
    Sqrt,
    Abs,
    Relu,
    /// `x` for `x > 0`, else `negative_slope * x`.
    LeakyRelu {
        negative_slope: f64,
    },
    /// `x Phi(x)` with the exact normal CDF: `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GeluTanh,
    /// `x sigmoid(x)`.
    Silu,
    Sigmoid,
    /// `ln(1 + exp(beta x)) / beta`, and `x` where `beta x > threshold` (PyTorch: beta 1, threshold 20).
    Softplus {
        beta: f64,
        threshold: f64,
    },
    Tanh,
    /// `min(max(x, min), max)`.
    Clamp {
        min: f64,
        max: f64,
    },
    /// `x ^ exponent`.
    Powf {
        exponent: f64,
    },
    /// `scale * x + shift`: scalar arithmetic.
    Affine {
        scale: f64,
        shift: f64,
    },
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_TANH_C: f64 = 0.044715;

impl Unary {
    /// `f(x)`.
    pub fn apply<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from_f64(v);
        let one = T::one();
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Abs => x.abs(),
            // `max` would return the non-NaN operand; NaN must propagate, as in PyTorch.
            Unary::Relu => relu(x),
            Unary::LeakyRelu { negative_slope } => leaky_relu(x, c(negative_slope)),
            Unary::Gelu => c(0.5) * x * (one + (x * c(std::f64::consts::FRAC_1_SQRT_2)).erf()),
            Unary::GeluTanh => c(0.5) * x * (one + (c(SQRT_2_OVER_PI) * (x + c(GELU_TANH_C) * x * x * x)).tanh()),
            Unary::Silu => x / (one + (-x).exp()),
            Unary::Sigmoid => one / (one + (-x).exp()),
            Unary::Softplus { beta, threshold } => {
                let bx = x * c(beta);
                if bx > c(threshold) {
                    x
                } else {
                    bx.exp().ln_1p() / c(beta)
                }
            }
            Unary::Tanh => x.tanh(),
            Unary::Clamp { min, max } => {
                if x.is_nan() {
                    x
                } else {
                    x.max(c(min)).min(c(max))
                }
            }
            Unary::Powf { exponent } => x.powf(c(exponent)),
            Unary::Affine { scale, shift } => x * c(scale) + c(shift),
        }
    }

    /// The CUDA kernel of this function and its parameters `(p, q)`.
    fn kernel(self) -> (UnaryKernel, (f64, f64)) {
        match self {
            Unary::Neg => (UnaryKernel::Neg, (0.0, 0.0)),
            Unary::Exp => (UnaryKernel::Exp, (0.0, 0.0)),
            Unary::Log => (UnaryKernel::Log, (0.0, 0.0)),
            Unary::Sqrt => (UnaryKernel::Sqrt, (0.0, 0.0)),
            Unary::Abs => (UnaryKernel::Abs, (0.0, 0.0)),
            Unary::Relu => (UnaryKernel::Relu, (0.0, 0.0)),
            Unary::LeakyRelu { negative_slope } => (UnaryKernel::LeakyRelu, (negative_slope, 0.0)),
            Unary::Gelu => (UnaryKernel::Gelu, (0.0, 0.0)),
            Unary::GeluTanh => (UnaryKernel::GeluTanh, (0.0, 0.0)),
            Unary::Silu => (UnaryKernel::Silu, (0.0, 0.0)),
            Unary::Sigmoid => (UnaryKernel::Sigmoid, (0.0, 0.0)),
            Unary::Softplus { beta, threshold } => (UnaryKernel::Softplus, (beta, threshold)),
            Unary::Tanh => (UnaryKernel::Tanh, (0.0, 0.0)),
            Unary::Clamp { min, max } => (UnaryKernel::Clamp, (min, max)),
            Unary::Powf { exponent } => (UnaryKernel::Powf, (exponent, 0.0)),
            Unary::Affine { scale, shift } => (UnaryKernel::Affine, (scale, shift)),
        }
    }

    /// `f'(x)`.
    pub fn derivative<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from_f64(v);
        let (zero, one) = (T::zero(), T::one());
        let sigmoid = |v: T| one / (one + (-v).exp());
        match self {
            Unary::Neg => -one,
            Unary::Exp => x.exp(),
            Unary::Log => one / x,
            Unary::Sqrt => c(0.5) / x.sqrt(),
            Unary::Abs => x.signum() * if x == zero { zero } else { one },
            Unary::Relu => leaky_relu_slope(x, zero),
            Unary::LeakyRelu { negative_slope } => leaky_relu_slope(x, c(negative_slope)),
            Unary::Gelu => {
                let cdf = c(0.5) * (one + (x * c(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (c(-0.5) * x * x).exp() * c(0.398_942_280_401_432_7);
                cdf + x * pdf
            }
            Unary::GeluTanh => {
                let inner = c(SQRT_2_OVER_PI) * (x + c(GELU_TANH_C) * x * x * x);
                let t = inner.tanh();
                let d_inner = c(SQRT_2_OVER_PI) * (one + c(3.0 * GELU_TANH_C) * x * x);
                c(0.5) * (one + t) + c(0.5) * x * (one - t * t) * d_inner
            }
            Unary::Silu => {
                let s = sigmoid(x);
                s * (one + x * (one - s))
            }
            Unary::Sigmoid => {
                let s = sigmoid(x);
                s * (one - s)
            }
            Unary::Softplus { beta, threshold } => {
                if x * c(beta) > c(threshold) {
                    one
                } else {
                    sigmoid(x * c(beta))
                }
            }
            Unary::Tanh => {
                let t = x.tanh();
                one - t * t
            }
            Unary::Clamp { min, max } => {
                if x >= c(min) && x <= c(max) {
                    one
                } else {
                    zero
                }
            }
            Unary::Powf { exponent } => {
                // d/dx x^0 = 0 everywhere, also at x = 0 where the general formula gives 0 * inf.
                if exponent == 0.0 {
                    zero
                } else {
                    c(exponent) * x.powf(c(exponent - 1.0))
                }
            }
            Unary::Affine { scale, .. } => c(scale),
        }
    }
}

/// `max(x, 0)`, NaN propagating (`max` would return the non-NaN operand), as PyTorch.
#[inline(always)]
fn relu<T: Float>(x: T) -> T {
    if x.is_nan() || x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// `x` for `x > 0`, else `slope x`.
#[inline(always)]
fn leaky_relu<T: Float>(x: T, slope: T) -> T {
    if x > T::zero() {
        x
    } else {
        x * slope
    }
}

/// The derivative of [`leaky_relu`] (of `relu` with slope 0): 1 for `x > 0`, else `slope`.
#[inline(always)]
fn leaky_relu_slope<T: Float>(x: T, slope: T) -> T {
    if x > T::zero() {
        T::one()
    } else {
        slope
    }
}

impl Unary {
    /// `f` over a slice. The functions of every conv block (relu, leaky relu, scalar arithmetic) run
    /// as loops with no `match` inside, which vectorise; the others go through [`Unary::apply`].
    fn map<T: Float>(self, xs: &[T]) -> Vec<T> {
        let c = |v: f64| T::from_f64(v);
        match self {
            Unary::Relu => map_values(xs, relu),
            Unary::LeakyRelu { negative_slope } => {
                let s = c(negative_slope);
                map_values(xs, move |x| leaky_relu(x, s))
            }
            Unary::Affine { scale, shift } => {
                let (a, b) = (c(scale), c(shift));
                map_values(xs, move |x| x * a + b)
            }
            op => map_values(xs, move |x| op.apply(x)),
        }
    }

    /// `dy * f'(x)` over slices, the same functions as plain loops as in [`Unary::map`].
    fn map_backward<T: Float>(self, dy: &[T], x: &[T]) -> Vec<T> {
        let c = |v: f64| T::from_f64(v);
        match self {
            Unary::Relu | Unary::LeakyRelu { .. } => {
                let s = match self {
                    Unary::LeakyRelu { negative_slope } => c(negative_slope),
                    _ => T::zero(),
                };
                zip_values(dy, x, move |g, x| g * leaky_relu_slope(x, s))
            }
            Unary::Affine { scale, .. } => {
                let a = c(scale);
                zip_values(dy, x, move |g, _| g * a)
            }
            op => zip_values(dy, x, move |g, x| g * op.derivative(x)),
        }
    }
}

struct UnaryBackward {
    op: Unary,
    x: Tensor,
}

impl Backward for UnaryBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let op = self.op;
        if on_cuda(grad) {
            let (kernel, params) = op.kernel();
            return Ok(vec![Some(crate::cuda::unary_backward(grad, &self.x, kernel, params)?)]);
        }
        let dx = with_float!(grad.dtype(), "unary backward", T => {
            let g = grad.values::<T>()?;
            let x = self.x.values::<T>()?;
            Ok(tensor_from(op.map_backward(&g, &x), grad.shape()))
        })?;
        Ok(vec![Some(dx)])
    }
}

impl Tensor {
    /// `op` applied elementwise, differentiable.
    pub fn unary(&self, op: Unary) -> Result<Tensor> {
        expect_float(op_name(op), self)?;
        let out = if on_cuda(self) {
            let (kernel, params) = op.kernel();
            crate::cuda::unary(self, kernel, params)?
        } else {
            with_float!(self.dtype(), op_name(op), T => {
                Ok(tensor_from(op.map(&self.values::<T>()?), self.shape()))
            })?
        };
        Ok(Tensor::from_op(out, &[self], |_| UnaryBackward {
            op,
            x: self.detach(),
        }))
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(Unary::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(Unary::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(Unary::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(Unary::Sqrt)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(Unary::Abs)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(Unary::Relu)
    }
    pub fn leaky_relu(&self, negative_slope: f64) -> Result<Tensor> {
        self.unary(Unary::LeakyRelu { negative_slope })
    }
    /// GELU with the exact erf form (PyTorch's `approximate="none"`).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(Unary::Gelu)
    }
    /// GELU with the tanh approximation (PyTorch's `approximate="tanh"`).
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(Unary::GeluTanh)
    }
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(Unary::Silu)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(Unary::Sigmoid)
    }
    /// PyTorch's `softplus` with beta 1 and threshold 20.
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(Unary::Softplus {
            beta: 1.0,
            threshold: 20.0,
        })
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(Unary::Tanh)
    }
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min > max {
            return Err(crate::Error::invalid(
                "clamp",
                format!("min {min} is larger than max {max}"),
            ));
        }
        self.unary(Unary::Clamp { min, max })
    }
    pub fn powf(&self, exponent: f64) -> Result<Tensor> {
        self.unary(Unary::Powf { exponent })
    }
    /// `self * scale + shift`.
    pub fn affine(&self, scale: f64, shift: f64) -> Result<Tensor> {
        self.unary(Unary::Affine { scale, shift })
    }
    pub fn add_scalar(&self, value: f64) -> Result<Tensor> {
        self.affine(1.0, value)
    }
    pub fn mul_scalar(&self, value: f64) -> Result<Tensor> {
        self.affine(value, 0.0)
    }
}

fn op_name(op: Unary) -> &'static str {
    match op {
        Unary::Neg => "neg",
        Unary::Exp => "exp",
        Unary::Log => "log",
        Unary::Sqrt => "sqrt",
        Unary::Abs => "abs",
        Unary::Relu => "relu",
        Unary::LeakyRelu { .. } => "leaky_relu",
        Unary::Gelu => "gelu",
        Unary::GeluTanh => "gelu_tanh",
        Unary::Silu => "silu",
        Unary::Sigmoid => "sigmoid",
        Unary::Softplus { .. } => "softplus",
        Unary::Tanh => "tanh",
        Unary::Clamp { .. } => "clamp",
        Unary::Powf { .. } => "powf",
        Unary::Affine { .. } => "affine",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    /// The slice paths (`map`, `map_backward`) equal the per-element formulas bit for bit, across
    /// chunk boundaries and the parallel threshold, with zeros, infinities and NaN among the inputs.
    #[test]
    fn slice_paths_equal_the_elementwise_formulas() {
        let n = 3 * (1 << 14) + 5;
        let mut x = Tensor::randn(&[n], 1, DType::F32)
            .unwrap()
            .mul_scalar(3.0)
            .unwrap()
            .to_vec_f64();
        x[..4].copy_from_slice(&[0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let g32: Vec<f32> = x32.iter().rev().copied().collect();
        let ops = [
            Unary::Relu,
            Unary::LeakyRelu { negative_slope: 0.01 },
            Unary::Affine {
                scale: -2.5,
                shift: 0.25,
            },
            Unary::Sigmoid,
        ];
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for op in ops {
            let y = op.map(&x32);
            let dx = op.map_backward(&g32, &x32);
            for i in 0..n {
                assert!(same(y[i], op.apply(x32[i])), "{op:?} forward at {i}");
                assert!(same(dx[i], g32[i] * op.derivative(x32[i])), "{op:?} backward at {i}");
            }
        }
    }
}
