//! Transposed convolution over 1, 2 or 3 spatial axes (`conv_transpose{1,2,3}d`), PyTorch's arguments.
//!
//! `conv_transpose(x, w)` is the adjoint in its input of the convolution `conv(., w)` that maps the
//! transposed convolution's output shape back to its input shape, with the same stride, padding,
//! dilation and groups. So the forward is that convolution's backward-data, the input gradient is
//! the convolution itself applied to `dy`, and the weight gradient is its backward-weight with the
//! roles of input and output exchanged. Output size per axis:
//! `(in - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1`.

use seg_kernels::cpu::conv::{add_channel_bias, conv_backward_data, conv_backward_weight, conv_forward, ConvGeometry};
use seg_kernels::cpu::gemm::GemmElement;

use crate::autocast::{self, Policy};
use crate::autograd::Backward;
use crate::ops::conv::{per_axis, three, with_bias_grad};
use crate::ops::{expect_float, expect_same_kind, tensor_from};
use crate::{with_float, Error, Result, Tensor};

/// Stride, padding, output padding, dilation (each one value for all spatial axes, or one per
/// axis) and groups of a transposed convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTransposeOptions {
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub output_padding: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

impl Default for ConvTransposeOptions {
    fn default() -> Self {
        Self {
            stride: vec![1],
            padding: vec![0],
            output_padding: vec![0],
            dilation: vec![1],
            groups: 1,
        }
    }
}

struct ConvTransposeBackward {
    /// The convolution whose adjoint the forward was: its input is our output.
    geometry: ConvGeometry,
    x: Tensor,
    w: Tensor,
    has_bias: bool,
    wants: [bool; 3],
}

impl Backward for ConvTransposeBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        // The adjoint of conv's input gradient: conv's forward in the input, conv's weight gradient
        // with the roles of input and output gradient swapped.
        let (dx, dw) = if crate::ops::on_cuda(grad) {
            let dx = self.wants[0]
                .then(|| crate::cuda::conv_forward(g, grad, &self.w, None, self.x.shape()))
                .transpose()?;
            let dw = self.wants[1]
                .then(|| crate::cuda::conv_backward_weight(g, grad, &self.x, self.w.shape()))
                .transpose()?;
            (dx, dw)
        } else {
            self.cpu_grads(grad)?
        };
        with_bias_grad(dx, dw, grad, self.has_bias, self.wants[2])
    }
}

impl ConvTransposeBackward {
    /// The input and weight gradients by the CPU kernels.
    fn cpu_grads(&self, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = &self.geometry;
        with_float!(grad.dtype(), "conv_transpose backward", T => {
            let dy = grad.values::<T>()?;
            let dx = if self.wants[0] {
                let mut dx = vec![T::ZERO; g.y_len()];
                conv_forward(g, &dy, &self.w.values::<T>()?, None, &mut dx);
                Some(tensor_from(dx, self.x.shape()))
            } else {
                None
            };
            let dw = if self.wants[1] {
                let mut dw = vec![T::ZERO; g.w_len()];
                conv_backward_weight(g, &dy, &self.x.values::<T>()?, &mut dw);
                Some(tensor_from(dw, self.w.shape()))
            } else {
                None
            };
            Ok((dx, dw))
        })
    }
}

impl Tensor {
    /// Transposed convolution of `self` `(N, Cin, *spatial)` (1 to 3 spatial axes) with `weight`
    /// `(Cin, Cout / groups, *kernel)` plus `bias` `(Cout)`, as
    /// `torch.nn.functional.conv_transpose{1,2,3}d`.
    pub fn conv_transpose(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOptions,
    ) -> Result<Tensor> {
        let inputs = autocast::flat(&[self, weight], &[bias]);
        let lowered = |t: &[Tensor]| t[0].conv_transpose(&t[1], t.get(2), opts);
        if let Some(y) = autocast::dispatch(Policy::Lower, &inputs, lowered)? {
            return Ok(y);
        }
        expect_float("conv_transpose", self)?;
        expect_same_kind("conv_transpose", self, weight)?;
        crate::ops::expect_same_device("conv_transpose", self, weight)?;
        if let Some(b) = bias {
            crate::ops::expect_same_device("conv_transpose", self, b)?;
        }
        let rank = self.rank().saturating_sub(2);
        if !(1..=3).contains(&rank) {
            return Err(Error::ShapeMismatch {
                op: "conv_transpose",
                expected: "an input (N, C, spatial...) with 1 to 3 spatial axes".into(),
                found: self.shape().to_vec(),
            });
        }
        let cin = self.shape()[1];
        if weight.rank() != self.rank() || weight.shape()[0] != cin || opts.groups == 0 {
            return Err(Error::ShapeMismatch {
                op: "conv_transpose",
                expected: format!("a weight ({cin}, Cout / groups, kernel...) of rank {}", self.rank()),
                found: weight.shape().to_vec(),
            });
        }
        let cout = weight.shape()[1] * opts.groups;
        if let Some(b) = bias {
            expect_same_kind("conv_transpose", self, b)?;
            if b.shape() != [cout] {
                return Err(Error::ShapeMismatch {
                    op: "conv_transpose",
                    expected: format!("a bias of shape [{cout}]"),
                    found: b.shape().to_vec(),
                });
            }
        }
        let kernel = &weight.shape()[2..];
        let stride = per_axis("stride", &opts.stride, rank)?;
        let padding = per_axis("padding", &opts.padding, rank)?;
        let output_padding = per_axis("output_padding", &opts.output_padding, rank)?;
        let dilation = per_axis("dilation", &opts.dilation, rank)?;
        let mut out = Vec::with_capacity(rank);
        for a in 0..rank {
            if output_padding[a] >= stride[a].max(dilation[a]) {
                return Err(Error::invalid(
                    "conv_transpose",
                    format!(
                        "output_padding {} must be smaller than stride or dilation",
                        output_padding[a]
                    ),
                ));
            }
            let full = (self.shape()[2 + a].max(1) - 1) * stride[a]
                + dilation[a] * kernel[a].saturating_sub(1)
                + output_padding[a]
                + 1;
            out.push(full.checked_sub(2 * padding[a]).filter(|&n| n > 0).ok_or_else(|| {
                Error::invalid(
                    "conv_transpose",
                    format!("padding {} leaves no output on axis {a}", padding[a]),
                )
            })?);
        }
        let geometry = ConvGeometry {
            batch: self.shape()[0],
            in_channels: cout,
            out_channels: cin,
            groups: opts.groups,
            input: three(&out, 1),
            kernel: three(kernel, 1),
            stride: three(&stride, 1),
            padding: three(&padding, 0),
            dilation: three(&dilation, 1),
        };
        geometry
            .validate()
            .map_err(|msg| Error::invalid("conv_transpose", msg))?;
        if geometry.output()[3 - rank..] != self.shape()[2..] {
            return Err(Error::invalid(
                "conv_transpose",
                "the input is empty or inconsistent with the kernel",
            ));
        }
        let mut shape = vec![geometry.batch, cout];
        shape.extend_from_slice(&out);
        let y = if crate::ops::on_cuda(self) {
            let y = crate::cuda::conv_backward_data(&geometry, self, weight, &shape)?;
            match bias {
                Some(b) => {
                    let mut channel = vec![1; shape.len()];
                    channel[1] = cout;
                    y.add(&b.detach().reshape(&channel)?)?
                }
                None => y,
            }
        } else {
            with_float!(self.dtype(), "conv_transpose", T => {
                let mut y = vec![T::ZERO; geometry.x_len()];
                conv_backward_data(&geometry, &self.values::<T>()?, &weight.values::<T>()?, &mut y);
                if let Some(b) = bias {
                    add_channel_bias(&mut y, &b.values::<T>()?, geometry.input.iter().product());
                }
                Ok(tensor_from(y, &shape))
            })?
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Tensor::from_op(y, &inputs, |_| ConvTransposeBackward {
            geometry,
            x: self.detach(),
            w: weight.detach(),
            has_bias: bias.is_some(),
            wants: [
                self.tracks_grad(),
                weight.tracks_grad(),
                bias.is_some_and(Tensor::tracks_grad),
            ],
        }))
    }

    /// `torch.nn.functional.conv_transpose1d`: input `(N, Cin, L)`.
    pub fn conv_transpose1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOptions,
    ) -> Result<Tensor> {
        self.expect_spatial_rank("conv_transpose1d", 1)?;
        self.conv_transpose(weight, bias, opts)
    }

    /// `torch.nn.functional.conv_transpose2d`: input `(N, Cin, H, W)`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOptions,
    ) -> Result<Tensor> {
        self.expect_spatial_rank("conv_transpose2d", 2)?;
        self.conv_transpose(weight, bias, opts)
    }

    /// `torch.nn.functional.conv_transpose3d`: input `(N, Cin, D, H, W)`.
    pub fn conv_transpose3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOptions,
    ) -> Result<Tensor> {
        self.expect_spatial_rank("conv_transpose3d", 3)?;
        self.conv_transpose(weight, bias, opts)
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
    fn gradients_with_stride_padding_output_padding_and_groups() {
        let opts = ConvTransposeOptions {
            stride: vec![2, 1, 2],
            padding: vec![1, 0, 1],
            output_padding: vec![1, 0, 0],
            dilation: vec![1, 2, 1],
            groups: 2,
        };
        let f = |t: &[Tensor]| t[0].conv_transpose3d(&t[1], Some(&t[2]), &opts);
        gradcheck::check(
            f,
            &[randn(&[2, 4, 2, 3, 2], 1), randn(&[4, 1, 3, 2, 2], 2), randn(&[2], 3)],
        )
        .unwrap();
    }

    #[test]
    fn upsampling_by_two_has_the_documented_size() {
        let opts = ConvTransposeOptions {
            stride: vec![2],
            ..Default::default()
        };
        let y = randn(&[1, 4, 3, 5], 4)
            .conv_transpose2d(&randn(&[4, 2, 2, 2], 5), None, &opts)
            .unwrap();
        assert_eq!(y.shape(), &[1, 2, 6, 10]);
        let y = randn(&[2, 4, 5], 10)
            .conv_transpose1d(&randn(&[4, 3, 3], 11), None, &opts)
            .unwrap();
        assert_eq!(y.shape(), &[2, 3, 11]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = randn(&[1, 4, 3, 3], 6);
        let w = randn(&[4, 2, 2, 2], 7);
        let big_output_padding = ConvTransposeOptions {
            stride: vec![2],
            output_padding: vec![2],
            ..Default::default()
        };
        assert!(x.conv_transpose2d(&w, None, &big_output_padding).is_err());
        assert!(
            x.conv_transpose2d(&randn(&[3, 2, 2, 2], 8), None, &Default::default())
                .is_err(),
            "Cin mismatch"
        );
        assert!(
            x.conv_transpose2d(&w, Some(&randn(&[4], 9)), &Default::default())
                .is_err(),
            "bias of Cin"
        );
        let too_much_padding = ConvTransposeOptions {
            padding: vec![3],
            ..Default::default()
        };
        assert!(x.conv_transpose2d(&w, None, &too_much_padding).is_err());
        assert!(x.conv_transpose3d(&w, None, &Default::default()).is_err(), "rank");
    }
}
