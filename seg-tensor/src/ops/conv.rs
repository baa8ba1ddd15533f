//! Convolution over 1, 2 or 3 spatial axes (`conv1d`, `conv2d`, `conv3d`), with PyTorch's arguments.
//! The math and the kernels are in `seg_kernels::cpu::conv`.

use seg_kernels::cpu::conv::{conv_backward_data, conv_backward_weight, conv_forward, ConvGeometry};

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::ops::{expect_float, expect_same_kind, tensor_from};
use crate::{with_float, Error, Result, Tensor};

/// Padding of a convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvPadding {
    /// Zeros on both sides of each spatial axis: one value for all axes, or one per axis.
    Explicit(Vec<usize>),
    /// PyTorch's `padding="same"` (stride 1): the output has the input's size; where the total
    /// padding `dilation * (kernel - 1)` is odd, the extra zero goes at the end.
    Same,
}

/// Stride, padding, dilation (each one value for all spatial axes, or one per axis) and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    pub stride: Vec<usize>,
    pub padding: ConvPadding,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        Self {
            stride: vec![1],
            padding: ConvPadding::Explicit(vec![0]),
            dilation: vec![1],
            groups: 1,
        }
    }
}

/// One value per spatial axis from a list of one value or of `rank` values.
pub(super) fn per_axis(what: &str, values: &[usize], rank: usize) -> Result<Vec<usize>> {
    match values.len() {
        1 => Ok(vec![values[0]; rank]),
        n if n == rank => Ok(values.to_vec()),
        n => Err(Error::invalid(
            "conv",
            format!("{n} {what} values for {rank} spatial axes"),
        )),
    }
}

/// The spatial values right-aligned into three axes, `fill` in front.
pub(super) fn three(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}

/// The gradients of a convolution's inputs `[dx, dw]`, and when it had a bias (`has_bias`) the bias'
/// gradient: `grad` summed over every axis but the channels (when `wants_bias`).
pub(super) fn with_bias_grad(
    dx: Option<Tensor>,
    dw: Option<Tensor>,
    grad: &Tensor,
    has_bias: bool,
    wants_bias: bool,
) -> Result<Vec<Option<Tensor>>> {
    let mut grads = vec![dx, dw];
    if has_bias {
        let dims: Vec<isize> = (0..grad.rank() as isize).filter(|&d| d != 1).collect();
        grads.push(wants_bias.then(|| grad.sum(&dims, false)).transpose()?);
    }
    Ok(grads)
}

struct ConvBackward {
    geometry: ConvGeometry,
    x: Tensor,
    w: Tensor,
    has_bias: bool,
    wants: [bool; 3],
}

impl Backward for ConvBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        let (dx, dw) = if crate::ops::on_cuda(grad) {
            let dx = self.wants[0]
                .then(|| crate::cuda::conv_backward_data(g, grad, &self.w, self.x.shape()))
                .transpose()?;
            let dw = self.wants[1]
                .then(|| crate::cuda::conv_backward_weight(g, &self.x, grad, self.w.shape()))
                .transpose()?;
            (dx, dw)
        } else {
            self.cpu_grads(grad)?
        };
        with_bias_grad(dx, dw, grad, self.has_bias, self.wants[2])
    }
}

impl ConvBackward {
    /// The input and weight gradients by the CPU kernels.
    fn cpu_grads(&self, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = &self.geometry;
        with_float!(grad.dtype(), "conv backward", T => {
            let dy = grad.values::<T>()?;
            let dx = if self.wants[0] {
                let mut dx = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.x_len()];
                conv_backward_data(g, &dy, &self.w.values::<T>()?, &mut dx);
                Some(tensor_from(dx, self.x.shape()))
            } else {
                None
            };
            let dw = if self.wants[1] {
                let mut dw = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.w_len()];
                conv_backward_weight(g, &self.x.values::<T>()?, &dy, &mut dw);
                Some(tensor_from(dw, self.w.shape()))
            } else {
                None
            };
            Ok((dx, dw))
        })
    }
}

impl Tensor {
    /// Convolution of `self` `(N, Cin, *spatial)` (1 to 3 spatial axes) with `weight`
    /// `(Cout, Cin / groups, *kernel)` plus `bias` `(Cout)`, as `torch.nn.functional.conv{1,2,3}d`.
    pub fn conv(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOptions) -> Result<Tensor> {
        let inputs = autocast::flat(&[self, weight], &[bias]);
        if let Some(y) = autocast::dispatch(Policy::Lower, &inputs, |t| t[0].conv(&t[1], t.get(2), opts))? {
            return Ok(y);
        }
        expect_float("conv", self)?;
        expect_same_kind("conv", self, weight)?;
        crate::ops::expect_same_device("conv", self, weight)?;
        if let Some(b) = bias {
            crate::ops::expect_same_device("conv", self, b)?;
        }
        let rank = self.rank().saturating_sub(2);
        if !(1..=3).contains(&rank) {
            return Err(Error::ShapeMismatch {
                op: "conv",
                expected: "an input (N, C, spatial...) with 1 to 3 spatial axes".into(),
                found: self.shape().to_vec(),
            });
        }
        let (cin, cout) = (self.shape()[1], weight.shape().first().copied().unwrap_or(0));
        if weight.rank() != self.rank() || weight.shape()[1] * opts.groups != cin {
            return Err(Error::ShapeMismatch {
                op: "conv",
                expected: format!(
                    "a weight (Cout, {cin} / groups = {}, kernel...) of rank {}",
                    cin / opts.groups.max(1),
                    self.rank()
                ),
                found: weight.shape().to_vec(),
            });
        }
        if let Some(b) = bias {
            expect_same_kind("conv", self, b)?;
            if b.shape() != [cout] {
                return Err(Error::ShapeMismatch {
                    op: "conv",
                    expected: format!("a bias of shape [{cout}]"),
                    found: b.shape().to_vec(),
                });
            }
        }
        let kernel = &weight.shape()[2..];
        let stride = per_axis("stride", &opts.stride, rank)?;
        let dilation = per_axis("dilation", &opts.dilation, rank)?;
        let (x, padding) = match &opts.padding {
            ConvPadding::Explicit(p) => (self.clone(), per_axis("padding", p, rank)?),
            ConvPadding::Same => {
                if stride.iter().any(|&s| s != 1) {
                    return Err(Error::invalid("conv", "padding=\"same\" needs stride 1"));
                }
                let total: Vec<usize> = (0..rank).map(|a| dilation[a] * kernel[a].saturating_sub(1)).collect();
                // Odd totals: one extra zero at the end of the axis, as PyTorch.
                let extra: Vec<isize> = (0..rank).rev().flat_map(|a| [0, (total[a] % 2) as isize]).collect();
                let x = if extra.iter().any(|&e| e > 0) {
                    self.pad(&extra, crate::PadMode::Constant, 0.0)?
                } else {
                    self.clone()
                };
                (x, total.iter().map(|t| t / 2).collect())
            }
        };
        let geometry = ConvGeometry {
            batch: x.shape()[0],
            in_channels: cin,
            out_channels: cout,
            groups: opts.groups,
            input: three(&x.shape()[2..], 1),
            kernel: three(kernel, 1),
            stride: three(&stride, 1),
            padding: three(&padding, 0),
            dilation: three(&dilation, 1),
        };
        geometry.validate().map_err(|msg| Error::invalid("conv", msg))?;
        let mut shape = vec![geometry.batch, cout];
        shape.extend_from_slice(&geometry.output()[3 - rank..]);
        let out = if crate::ops::on_cuda(&x) {
            crate::cuda::conv_forward(&geometry, &x, weight, bias, &shape)?
        } else {
            with_float!(x.dtype(), "conv", T => {
                let mut y = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; geometry.y_len()];
                let b = bias.map(|b| b.values::<T>()).transpose()?;
                conv_forward(&geometry, &x.values::<T>()?, &weight.values::<T>()?, b.as_deref(), &mut y);
                Ok(tensor_from(y, &shape))
            })?
        };
        let mut inputs = vec![&x, weight];
        inputs.extend(bias);
        Ok(Tensor::from_op(out, &inputs, |_| ConvBackward {
            geometry,
            x: x.detach(),
            w: weight.detach(),
            has_bias: bias.is_some(),
            wants: [
                x.tracks_grad(),
                weight.tracks_grad(),
                bias.is_some_and(Tensor::tracks_grad),
            ],
        }))
    }

    /// Fails unless `self` is `(N, C, *spatial)` with `rank` spatial axes.
    pub(super) fn expect_spatial_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.rank() != rank + 2 {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("an input of rank {} (N, C, {rank} spatial axes)", rank + 2),
                found: self.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// `torch.nn.functional.conv1d`: input `(N, Cin, L)`.
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOptions) -> Result<Tensor> {
        self.expect_spatial_rank("conv1d", 1)?;
        self.conv(weight, bias, opts)
    }

    /// `torch.nn.functional.conv2d`: input `(N, Cin, H, W)`.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOptions) -> Result<Tensor> {
        self.expect_spatial_rank("conv2d", 2)?;
        self.conv(weight, bias, opts)
    }

    /// `torch.nn.functional.conv3d`: input `(N, Cin, D, H, W)`.
    pub fn conv3d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &ConvOptions) -> Result<Tensor> {
        self.expect_spatial_rank("conv3d", 3)?;
        self.conv(weight, bias, opts)
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
    fn gradients_of_conv3d_with_stride_groups_and_bias() {
        let opts = ConvOptions {
            stride: vec![2, 1, 1],
            padding: ConvPadding::Explicit(vec![1]),
            dilation: vec![1, 1, 2],
            groups: 2,
        };
        let f = |t: &[Tensor]| t[0].conv3d(&t[1], Some(&t[2]), &opts);
        gradcheck::check(
            f,
            &[randn(&[2, 4, 3, 4, 5], 1), randn(&[2, 2, 2, 3, 2], 2), randn(&[2], 3)],
        )
        .unwrap();
    }

    #[test]
    fn gradients_of_conv2d_same_and_conv1d() {
        let same = ConvOptions {
            padding: ConvPadding::Same,
            ..Default::default()
        };
        let f = |t: &[Tensor]| t[0].conv2d(&t[1], None, &same);
        gradcheck::check(f, &[randn(&[1, 2, 5, 4], 4), randn(&[3, 2, 2, 3], 5)]).unwrap();
        let f = |t: &[Tensor]| t[0].conv1d(&t[1], Some(&t[2]), &ConvOptions::default());
        gradcheck::check(f, &[randn(&[2, 3, 7], 6), randn(&[2, 3, 3], 7), randn(&[2], 8)]).unwrap();
    }

    #[test]
    fn same_padding_keeps_the_size() {
        let same = ConvOptions {
            padding: ConvPadding::Same,
            dilation: vec![2],
            ..Default::default()
        };
        let y = randn(&[1, 1, 6, 7, 5], 9)
            .conv3d(&randn(&[2, 1, 2, 3, 4], 10), None, &same)
            .unwrap();
        assert_eq!(y.shape(), &[1, 2, 6, 7, 5]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = randn(&[1, 4, 5, 5], 11);
        let groups3 = ConvOptions {
            groups: 3,
            ..Default::default()
        };
        assert!(
            x.conv2d(&randn(&[3, 1, 3, 3], 12), None, &groups3).is_err(),
            "4 channels into 3 groups"
        );
        assert!(
            x.conv2d(&randn(&[2, 3, 3, 3], 13), None, &ConvOptions::default())
                .is_err(),
            "channel mismatch"
        );
        assert!(
            x.conv2d(&randn(&[2, 4, 7, 7], 14), None, &ConvOptions::default())
                .is_err(),
            "kernel too large"
        );
        assert!(
            x.conv3d(&randn(&[2, 4, 3, 3], 15), None, &ConvOptions::default())
                .is_err(),
            "wrong rank"
        );
        let strided_same = ConvOptions {
            stride: vec![2],
            padding: ConvPadding::Same,
            ..Default::default()
        };
        assert!(x.conv2d(&randn(&[2, 4, 3, 3], 16), None, &strided_same).is_err());
        let bad_bias = randn(&[3], 17);
        assert!(x
            .conv2d(&randn(&[2, 4, 3, 3], 18), Some(&bad_bias), &ConvOptions::default())
            .is_err());
    }
}
