//! Pooling over 1, 2 or 3 spatial axes (`max_pool{1,2,3}d`, `avg_pool{1,2,3}d`,
//! `adaptive_avg_pool{1,2,3}d`), with PyTorch's arguments and semantics. The math and the kernels are
//! in `seg_kernels::cpu::pool` (CUDA tensors: `cuda/pool.cu`, same geometry). Inputs are batched,
//! `(N, C, spatial...)`.

use seg_kernels::cpu::pool::{
    adaptive_avg_pool_backward, adaptive_avg_pool_forward, avg_pool_backward, avg_pool_forward, max_pool_backward,
    max_pool_forward, AdaptiveGeometry, AvgDivisor, PoolGeometry,
};

use crate::autograd::Backward;
use crate::ops::{expect_float, on_cuda, tensor_from};
use crate::{cuda, with_float, Error, Result, Tensor};

/// `torch.nn.functional.max_pool{1,2,3}d`'s arguments; each list holds one value for all spatial axes
/// or one per axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPoolOptions {
    pub kernel_size: Vec<usize>,
    /// `None` (or empty): the kernel size, as PyTorch.
    pub stride: Option<Vec<usize>>,
    /// Implicit `-inf` on both sides, at most half the kernel size.
    pub padding: Vec<usize>,
    pub dilation: Vec<usize>,
    pub ceil_mode: bool,
}

impl MaxPoolOptions {
    /// Kernel `kernel_size`, stride = kernel, no padding, dilation 1, floor mode.
    pub fn new(kernel_size: &[usize]) -> Self {
        Self {
            kernel_size: kernel_size.to_vec(),
            stride: None,
            padding: vec![0],
            dilation: vec![1],
            ceil_mode: false,
        }
    }
}

/// `torch.nn.functional.avg_pool{1,2,3}d`'s arguments; each list holds one value for all spatial axes
/// or one per axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvgPoolOptions {
    pub kernel_size: Vec<usize>,
    /// `None` (or empty): the kernel size, as PyTorch.
    pub stride: Option<Vec<usize>>,
    /// Implicit zeros on both sides, at most half the kernel size.
    pub padding: Vec<usize>,
    pub ceil_mode: bool,
    /// Whether the padding counts in the divisor (PyTorch's default: true).
    pub count_include_pad: bool,
    /// A fixed divisor instead of the window's size (positive).
    pub divisor_override: Option<usize>,
}

impl AvgPoolOptions {
    /// Kernel `kernel_size`, stride = kernel, no padding, floor mode, padding counted.
    pub fn new(kernel_size: &[usize]) -> Self {
        Self {
            kernel_size: kernel_size.to_vec(),
            stride: None,
            padding: vec![0],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

/// One value per spatial axis from a list of one value or of `rank` values.
pub(crate) fn per_axis<T: Copy>(op: &'static str, what: &str, values: &[T], rank: usize) -> Result<Vec<T>> {
    match values.len() {
        1 => Ok(vec![values[0]; rank]),
        n if n == rank => Ok(values.to_vec()),
        n => Err(Error::invalid(
            op,
            format!("{n} {what} values for {rank} spatial axes (give 1 or {rank})"),
        )),
    }
}

/// The spatial values right-aligned into three axes, `fill` in front.
pub(crate) fn three(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}

/// Checks that `x` is a float `(N, C, spatial...)` tensor with `rank` spatial axes.
pub(crate) fn expect_batched(op: &'static str, x: &Tensor, rank: usize) -> Result<()> {
    expect_float(op, x)?;
    if x.rank() != rank + 2 {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("an input of rank {} (N, C, {rank} spatial axes)", rank + 2),
            found: x.shape().to_vec(),
        });
    }
    Ok(())
}

/// The output shape `(N, C, spatial...)` of a pooling of `x` to the last `rank` of `spatial`.
fn output_shape(x: &Tensor, spatial: [usize; 3], rank: usize) -> Vec<usize> {
    let mut shape = x.shape()[..2].to_vec();
    shape.extend_from_slice(&spatial[3 - rank..]);
    shape
}

#[allow(clippy::too_many_arguments)]
fn geometry(
    op: &'static str,
    x: &Tensor,
    rank: usize,
    kernel_size: &[usize],
    stride: Option<&[usize]>,
    padding: &[usize],
    dilation: &[usize],
    ceil_mode: bool,
) -> Result<PoolGeometry> {
    let kernel = per_axis(op, "kernel_size", kernel_size, rank)?;
    let stride = match stride {
        Some(s) if !s.is_empty() => per_axis(op, "stride", s, rank)?,
        _ => kernel.clone(),
    };
    let g = PoolGeometry {
        planes: x.shape()[0] * x.shape()[1],
        input: three(&x.shape()[2..], 1),
        kernel: three(&kernel, 1),
        stride: three(&stride, 1),
        padding: three(&per_axis(op, "padding", padding, rank)?, 0),
        dilation: three(&per_axis(op, "dilation", dilation, rank)?, 1),
        ceil_mode,
    };
    g.validate().map_err(|msg| Error::invalid(op, msg))?;
    Ok(g)
}

struct MaxPoolBackward {
    geometry: PoolGeometry,
    indices: Tensor,
    x_shape: Vec<usize>,
}

impl Backward for MaxPoolBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        if on_cuda(grad) {
            return Ok(vec![Some(cuda::max_pool_backward(
                g,
                grad,
                &self.indices,
                &self.x_shape,
            )?)]);
        }
        let dx = with_float!(grad.dtype(), "max_pool backward", T => {
            let mut dx = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.x_len()];
            max_pool_backward(g, &grad.values::<T>()?, &self.indices.values::<i64>()?, &mut dx);
            Ok(tensor_from(dx, &self.x_shape))
        })?;
        Ok(vec![Some(dx)])
    }
}

struct AvgPoolBackward {
    geometry: PoolGeometry,
    divisor: AvgDivisor,
    x_shape: Vec<usize>,
}

impl Backward for AvgPoolBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        if on_cuda(grad) {
            return Ok(vec![Some(cuda::avg_pool_backward(
                g,
                self.divisor,
                grad,
                &self.x_shape,
            )?)]);
        }
        let dx = with_float!(grad.dtype(), "avg_pool backward", T => {
            let mut dx = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.x_len()];
            avg_pool_backward(g, self.divisor, &grad.values::<T>()?, &mut dx);
            Ok(tensor_from(dx, &self.x_shape))
        })?;
        Ok(vec![Some(dx)])
    }
}

struct AdaptiveAvgPoolBackward {
    geometry: AdaptiveGeometry,
    x_shape: Vec<usize>,
}

impl Backward for AdaptiveAvgPoolBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        if on_cuda(grad) {
            return Ok(vec![Some(cuda::adaptive_avg_pool_backward(g, grad, &self.x_shape)?)]);
        }
        let dx = with_float!(grad.dtype(), "adaptive_avg_pool backward", T => {
            let mut dx = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.x_len()];
            adaptive_avg_pool_backward(g, &grad.values::<T>()?, &mut dx);
            Ok(tensor_from(dx, &self.x_shape))
        })?;
        Ok(vec![Some(dx)])
    }
}

impl Tensor {
    /// Max pooling of `self` `(N, C, spatial...)` over its `rank` (1 to 3) spatial axes, with the
    /// argmax of each output as an i64 tensor of flat indices within the input plane (PyTorch's
    /// `return_indices=True`). The indices do not track gradients.
    pub fn max_pool_with_indices(&self, rank: usize, opts: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
        const OP: &str = "max_pool";
        if !(1..=3).contains(&rank) {
            return Err(Error::invalid(
                OP,
                format!("{rank} spatial axes (1 to 3 are supported)"),
            ));
        }
        expect_batched(OP, self, rank)?;
        let g = geometry(
            OP,
            self,
            rank,
            &opts.kernel_size,
            opts.stride.as_deref(),
            &opts.padding,
            &opts.dilation,
            opts.ceil_mode,
        )?;
        let shape = output_shape(self, g.output(), rank);
        let (y, indices) = if on_cuda(self) {
            cuda::max_pool(&g, self, &shape)?
        } else {
            let mut argmax = vec![0i64; g.y_len()];
            let y = with_float!(self.dtype(), OP, T => {
                let mut y = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.y_len()];
                max_pool_forward(&g, &self.values::<T>()?, &mut y, &mut argmax);
                Ok(tensor_from(y, &shape))
            })?;
            (y, tensor_from(argmax, &shape))
        };
        let y = Tensor::from_op(y, &[self], |_| MaxPoolBackward {
            geometry: g,
            indices: indices.clone(),
            x_shape: self.shape().to_vec(),
        });
        Ok((y, indices))
    }

    /// `torch.nn.functional.max_pool1d`: input `(N, C, L)`.
    pub fn max_pool1d(&self, opts: &MaxPoolOptions) -> Result<Tensor> {
        Ok(self.max_pool_with_indices(1, opts)?.0)
    }

    /// `torch.nn.functional.max_pool2d`: input `(N, C, H, W)`.
    pub fn max_pool2d(&self, opts: &MaxPoolOptions) -> Result<Tensor> {
        Ok(self.max_pool_with_indices(2, opts)?.0)
    }

    /// `torch.nn.functional.max_pool3d`: input `(N, C, D, H, W)`.
    pub fn max_pool3d(&self, opts: &MaxPoolOptions) -> Result<Tensor> {
        Ok(self.max_pool_with_indices(3, opts)?.0)
    }

    /// `max_pool1d` with `return_indices=True`: values and i64 indices.
    pub fn max_pool1d_with_indices(&self, opts: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
        self.max_pool_with_indices(1, opts)
    }

    /// `max_pool2d` with `return_indices=True`: values and i64 indices (flat within `H * W`).
    pub fn max_pool2d_with_indices(&self, opts: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
        self.max_pool_with_indices(2, opts)
    }

    /// `max_pool3d` with `return_indices=True`: values and i64 indices (flat within `D * H * W`).
    pub fn max_pool3d_with_indices(&self, opts: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
        self.max_pool_with_indices(3, opts)
    }

    /// Average pooling of `self` `(N, C, spatial...)` over its `rank` (1 to 3) spatial axes.
    pub fn avg_pool(&self, rank: usize, opts: &AvgPoolOptions) -> Result<Tensor> {
        const OP: &str = "avg_pool";
        if !(1..=3).contains(&rank) {
            return Err(Error::invalid(
                OP,
                format!("{rank} spatial axes (1 to 3 are supported)"),
            ));
        }
        expect_batched(OP, self, rank)?;
        let g = geometry(
            OP,
            self,
            rank,
            &opts.kernel_size,
            opts.stride.as_deref(),
            &opts.padding,
            &[1],
            opts.ceil_mode,
        )?;
        let divisor = match (opts.divisor_override, opts.count_include_pad) {
            (Some(0), _) => return Err(Error::invalid(OP, "divisor_override must not be zero")),
            (Some(d), _) => AvgDivisor::Override(d),
            (None, true) => AvgDivisor::IncludePad,
            (None, false) => AvgDivisor::ExcludePad,
        };
        let shape = output_shape(self, g.output(), rank);
        let y = if on_cuda(self) {
            cuda::avg_pool(&g, divisor, self, &shape)?
        } else {
            with_float!(self.dtype(), OP, T => {
                let mut y = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.y_len()];
                avg_pool_forward(&g, divisor, &self.values::<T>()?, &mut y);
                Ok(tensor_from(y, &shape))
            })?
        };
        Ok(Tensor::from_op(y, &[self], |_| AvgPoolBackward {
            geometry: g,
            divisor,
            x_shape: self.shape().to_vec(),
        }))
    }

    /// `torch.nn.functional.avg_pool1d`: input `(N, C, L)`.
    pub fn avg_pool1d(&self, opts: &AvgPoolOptions) -> Result<Tensor> {
        self.avg_pool(1, opts)
    }

    /// `torch.nn.functional.avg_pool2d`: input `(N, C, H, W)`.
    pub fn avg_pool2d(&self, opts: &AvgPoolOptions) -> Result<Tensor> {
        self.avg_pool(2, opts)
    }

    /// `torch.nn.functional.avg_pool3d`: input `(N, C, D, H, W)`.
    pub fn avg_pool3d(&self, opts: &AvgPoolOptions) -> Result<Tensor> {
        self.avg_pool(3, opts)
    }

    /// Adaptive average pooling of `self` `(N, C, spatial...)` to `output_size` (one value for all
    /// `rank` spatial axes, or one per axis): output `o` averages input `[floor(o in / out), ceil((o + 1) in / out))`.
    pub fn adaptive_avg_pool(&self, rank: usize, output_size: &[usize]) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool";
        if !(1..=3).contains(&rank) {
            return Err(Error::invalid(
                OP,
                format!("{rank} spatial axes (1 to 3 are supported)"),
            ));
        }
        expect_batched(OP, self, rank)?;
        let out = per_axis(OP, "output_size", output_size, rank)?;
        let g = AdaptiveGeometry {
            planes: self.shape()[0] * self.shape()[1],
            input: three(&self.shape()[2..], 1),
            output: three(&out, 1),
        };
        g.validate().map_err(|msg| Error::invalid(OP, msg))?;
        let shape = output_shape(self, g.output, rank);
        let y = if on_cuda(self) {
            cuda::adaptive_avg_pool(&g, self, &shape)?
        } else {
            with_float!(self.dtype(), OP, T => {
                let mut y = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.y_len()];
                adaptive_avg_pool_forward(&g, &self.values::<T>()?, &mut y);
                Ok(tensor_from(y, &shape))
            })?
        };
        Ok(Tensor::from_op(y, &[self], |_| AdaptiveAvgPoolBackward {
            geometry: g,
            x_shape: self.shape().to_vec(),
        }))
    }

    /// `torch.nn.functional.adaptive_avg_pool1d`: input `(N, C, L)`.
    pub fn adaptive_avg_pool1d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_pool(1, output_size)
    }

    /// `torch.nn.functional.adaptive_avg_pool2d`: input `(N, C, H, W)`.
    pub fn adaptive_avg_pool2d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_pool(2, output_size)
    }

    /// `torch.nn.functional.adaptive_avg_pool3d`: input `(N, C, D, H, W)`.
    pub fn adaptive_avg_pool3d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_pool(3, output_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck;
    use crate::DType;

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, seed, DType::F64).unwrap()
    }

    #[test]
    fn max_pool_values_and_indices() {
        // [[1, 7, 2], [7, 3, 7], [0, 9, 4]] with a 2x2 window, stride 1: the first 7 wins its ties.
        let x = Tensor::from_vec(vec![1.0f32, 7.0, 2.0, 7.0, 3.0, 7.0, 0.0, 9.0, 4.0], &[1, 1, 3, 3]).unwrap();
        let opts = MaxPoolOptions {
            stride: Some(vec![1]),
            ..MaxPoolOptions::new(&[2])
        };
        let (y, i) = x.max_pool2d_with_indices(&opts).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(y.to_vec::<f32>().unwrap(), [7.0, 7.0, 9.0, 9.0]);
        assert_eq!(i.dtype(), DType::I64);
        assert_eq!(i.to_vec::<i64>().unwrap(), [1, 1, 7, 7]);
        // padding 1, ceil mode, stride 2 on 3 positions: windows [-1, 1), [1, 3)
        let opts = MaxPoolOptions {
            stride: Some(vec![2]),
            padding: vec![1],
            ceil_mode: true,
            ..MaxPoolOptions::new(&[2])
        };
        let (y, i) = x.max_pool2d_with_indices(&opts).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), [1.0, 7.0, 7.0, 9.0]);
        assert_eq!(i.to_vec::<i64>().unwrap(), [0, 1, 3, 7]);
    }

    #[test]
    fn gradients_of_max_pool() {
        let opts = MaxPoolOptions {
            stride: Some(vec![2, 1, 2]),
            padding: vec![1],
            dilation: vec![1, 2, 1],
            ceil_mode: true,
            ..MaxPoolOptions::new(&[3, 2, 2])
        };
        gradcheck::check(|t| t[0].max_pool3d(&opts), &[randn(&[2, 2, 4, 5, 5], 1)]).unwrap();
        // overlapping windows share maxima: the gradients add up
        let opts = MaxPoolOptions {
            stride: Some(vec![1]),
            ..MaxPoolOptions::new(&[3])
        };
        gradcheck::check(|t| t[0].max_pool2d(&opts), &[randn(&[1, 3, 5, 6], 2)]).unwrap();
        gradcheck::check(|t| t[0].max_pool1d(&MaxPoolOptions::new(&[2])), &[randn(&[2, 2, 7], 3)]).unwrap();
    }

    #[test]
    fn avg_pool_divisors() {
        // PyTorch: avg_pool1d(arange(6), 3, 2, 1, ceil_mode=True) = [1/3, 2, 4, 2.5],
        // with count_include_pad=False [0.5, 2, 4, 5], with divisor_override=2 (avg_pool2d on a 1 x 6 plane) [0.5, 3, 6, 2.5].
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64)
            .unwrap()
            .reshape(&[1, 1, 6])
            .unwrap();
        let mut opts = AvgPoolOptions {
            stride: Some(vec![2]),
            padding: vec![1],
            ceil_mode: true,
            ..AvgPoolOptions::new(&[3])
        };
        assert_eq!(
            x.avg_pool1d(&opts).unwrap().to_vec::<f64>().unwrap(),
            [1.0 / 3.0, 2.0, 4.0, 2.5]
        );
        opts.count_include_pad = false;
        assert_eq!(
            x.avg_pool1d(&opts).unwrap().to_vec::<f64>().unwrap(),
            [0.5, 2.0, 4.0, 5.0]
        );
        opts.divisor_override = Some(2);
        assert_eq!(
            x.avg_pool1d(&opts).unwrap().to_vec::<f64>().unwrap(),
            [0.5, 3.0, 6.0, 2.5]
        );
    }

    #[test]
    fn gradients_of_avg_pool() {
        let opts = AvgPoolOptions {
            stride: Some(vec![2, 1, 2]),
            padding: vec![1, 0, 1],
            ceil_mode: true,
            count_include_pad: false,
            ..AvgPoolOptions::new(&[2, 3, 3])
        };
        gradcheck::check(|t| t[0].avg_pool3d(&opts), &[randn(&[1, 2, 5, 4, 6], 4)]).unwrap();
        let opts = AvgPoolOptions {
            padding: vec![1],
            divisor_override: Some(5),
            ..AvgPoolOptions::new(&[3])
        };
        gradcheck::check(|t| t[0].avg_pool2d(&opts), &[randn(&[2, 1, 5, 7], 5)]).unwrap();
    }

    #[test]
    fn adaptive_avg_pool_values_and_gradients() {
        let x = Tensor::arange(0.0, 3.0, 1.0, DType::F64)
            .unwrap()
            .reshape(&[1, 1, 3])
            .unwrap();
        assert_eq!(
            x.adaptive_avg_pool1d(&[5]).unwrap().to_vec::<f64>().unwrap(),
            [0.0, 0.5, 1.0, 1.5, 2.0]
        );
        gradcheck::check(|t| t[0].adaptive_avg_pool3d(&[2, 3, 4]), &[randn(&[2, 2, 5, 4, 7], 6)]).unwrap();
        gradcheck::check(|t| t[0].adaptive_avg_pool2d(&[3]), &[randn(&[1, 2, 7, 5], 7)]).unwrap();
        let x = randn(&[2, 3, 4, 6], 8);
        let y = x.adaptive_avg_pool2d(&[1]).unwrap();
        let mean = x.mean(&[2, 3], true).unwrap();
        assert!(y
            .to_vec_f64()
            .iter()
            .zip(mean.to_vec_f64())
            .all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = randn(&[1, 2, 5, 5], 9);
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert!(err(x.max_pool3d(&MaxPoolOptions::new(&[2]))).contains("rank 5"));
        assert!(err(x.max_pool2d(&MaxPoolOptions::new(&[6]))).contains("empty"));
        let too_much_padding = MaxPoolOptions {
            padding: vec![2],
            ..MaxPoolOptions::new(&[3])
        };
        assert!(err(x.max_pool2d(&too_much_padding)).contains("half of kernel"));
        assert!(err(x.max_pool2d(&MaxPoolOptions::new(&[2, 2, 2]))).contains("3 kernel_size values"));
        assert!(err(x.max_pool2d(&MaxPoolOptions::new(&[0]))).contains("positive"));
        let zero_divisor = AvgPoolOptions {
            divisor_override: Some(0),
            ..AvgPoolOptions::new(&[2])
        };
        assert!(err(x.avg_pool2d(&zero_divisor)).contains("divisor"));
        assert!(err(x.adaptive_avg_pool2d(&[0, 2])).contains("positive"));
        assert!(x.max_pool_with_indices(4, &MaxPoolOptions::new(&[2])).is_err());
        let ints = Tensor::zeros(&[1, 1, 4, 4], DType::I64);
        assert!(ints.max_pool2d(&MaxPoolOptions::new(&[2])).is_err());
        assert!(randn(&[1, 1, 0, 4], 10).max_pool2d(&MaxPoolOptions::new(&[1])).is_err());
    }
}
