//! Resampling (`torch.nn.functional.interpolate`) over 1, 2 or 3 spatial axes, modes `nearest`,
//! `linear`, `bilinear`, `trilinear` and `area`, with PyTorch's rules for sizes, scale factors and
//! `align_corners`. The math and the kernels are in `seg_kernels::cpu::interpolate` (CUDA tensors:
//! `cuda/interpolate.cu`, same source positions; `area` through adaptive average pooling).

use seg_kernels::cpu::interpolate::{interpolate_backward, interpolate_forward, InterpGeometry, InterpMode};

use crate::autograd::Backward;
use crate::ops::pool::{expect_batched, per_axis, three};
use crate::ops::{expect_float, on_cuda, tensor_from};
use crate::{cuda, with_float, Error, Result, Tensor};

/// The `mode` of [`Tensor::interpolate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpolateMode {
    /// PyTorch's legacy `nearest`: source `floor(dst * scale)`.
    Nearest,
    /// `linear` (3-D input), `bilinear` (4-D) and `trilinear` (5-D).
    Linear,
    Bilinear,
    Trilinear,
    /// `area`: adaptive average pooling to the output size.
    Area,
}

impl InterpolateMode {
    /// Parses PyTorch's spelling.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "nearest" => Self::Nearest,
            "linear" => Self::Linear,
            "bilinear" => Self::Bilinear,
            "trilinear" => Self::Trilinear,
            "area" => Self::Area,
            _ => {
                return Err(Error::invalid(
                    "interpolate",
                    format!("unknown mode {name:?} (nearest, linear, bilinear, trilinear, area are supported)"),
                ))
            }
        })
    }

    /// PyTorch's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::Linear => "linear",
            Self::Bilinear => "bilinear",
            Self::Trilinear => "trilinear",
            Self::Area => "area",
        }
    }

    /// The number of spatial axes a linear mode needs.
    fn linear_rank(self) -> Option<usize> {
        match self {
            Self::Linear => Some(1),
            Self::Bilinear => Some(2),
            Self::Trilinear => Some(3),
            Self::Nearest | Self::Area => None,
        }
    }
}

/// `torch.nn.functional.interpolate`'s arguments: exactly one of `size` and `scale_factor` (each one
/// value for all spatial axes or one per axis).
#[derive(Clone, Debug, PartialEq)]
pub struct InterpolateOptions {
    pub size: Option<Vec<usize>>,
    pub scale_factor: Option<Vec<f64>>,
    pub mode: InterpolateMode,
    /// Only for the linear modes (`None` means false there, as PyTorch).
    pub align_corners: Option<bool>,
    /// `Some(true)`: compute the output size from `scale_factor`, then resample by the sizes' ratio
    /// instead of the given factor. `None` and `Some(false)` use the factor (PyTorch's default).
    pub recompute_scale_factor: Option<bool>,
}

impl Default for InterpolateOptions {
    fn default() -> Self {
        Self {
            size: None,
            scale_factor: None,
            mode: InterpolateMode::Nearest,
            align_corners: None,
            recompute_scale_factor: None,
        }
    }
}

impl InterpolateOptions {
    /// Resize to `size` with `mode`.
    pub fn size(size: &[usize], mode: InterpolateMode) -> Self {
        Self {
            size: Some(size.to_vec()),
            mode,
            ..Self::default()
        }
    }

    /// Scale by `scale_factor` with `mode`.
    pub fn scale(scale_factor: &[f64], mode: InterpolateMode) -> Self {
        Self {
            scale_factor: Some(scale_factor.to_vec()),
            mode,
            ..Self::default()
        }
    }
}

struct InterpolateBackward {
    geometry: InterpGeometry,
    x_shape: Vec<usize>,
}

impl Backward for InterpolateBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let g = &self.geometry;
        if on_cuda(grad) {
            return Ok(vec![Some(cuda::interpolate_backward(g, grad, &self.x_shape)?)]);
        }
        let dx = with_float!(grad.dtype(), "interpolate backward", T => {
            let mut dx = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.x_len()];
            interpolate_backward(g, &grad.values::<T>()?, &mut dx);
            Ok(tensor_from(dx, &self.x_shape))
        })?;
        Ok(vec![Some(dx)])
    }
}

impl Tensor {
    /// `torch.nn.functional.interpolate` of `self` `(N, C, spatial...)` (1 to 3 spatial axes).
    ///
    /// The output size is `size`, or `floor(input * scale_factor)` per axis. With a scale factor (and
    /// no `recompute_scale_factor`) the source positions use `1 / scale_factor`, else `input / output`;
    /// see `seg_kernels::cpu::interpolate` for each mode's rule.
    pub fn interpolate(&self, opts: &InterpolateOptions) -> Result<Tensor> {
        const OP: &str = "interpolate";
        expect_float(OP, self)?;
        let rank = self.rank().saturating_sub(2);
        if !(1..=3).contains(&rank) {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: "an input (N, C, spatial...) with 1 to 3 spatial axes".into(),
                found: self.shape().to_vec(),
            });
        }
        expect_batched(OP, self, rank)?;
        let mode = opts.mode;
        if let Some(need) = mode.linear_rank() {
            if need != rank {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "got {}D input, but {} mode needs {}D input",
                        rank + 2,
                        mode.name(),
                        need + 2
                    ),
                ));
            }
        } else if opts.align_corners.is_some() {
            return Err(Error::invalid(
                OP,
                "align_corners option can only be set with the interpolating modes: linear | bilinear | trilinear",
            ));
        }
        let input = &self.shape()[2..];
        let (output, scale): (Vec<usize>, Vec<Option<f64>>) = match (&opts.size, &opts.scale_factor) {
            (Some(_), Some(_)) => return Err(Error::invalid(OP, "only one of size or scale_factor should be defined")),
            (None, None) => return Err(Error::invalid(OP, "either size or scale_factor should be defined")),
            (Some(size), None) => {
                if opts.recompute_scale_factor == Some(true) {
                    return Err(Error::invalid(
                        OP,
                        "recompute_scale_factor is not meaningful with an explicit size",
                    ));
                }
                (per_axis(OP, "size", size, rank)?, vec![None; rank])
            }
            (None, Some(factors)) => {
                let factors = per_axis(OP, "scale_factor", factors, rank)?;
                let mut output = Vec::with_capacity(rank);
                for (&n, &s) in input.iter().zip(&factors) {
                    let size = (n as f64 * s).floor();
                    if !(s > 0.0 && size.is_finite() && size <= (1u64 << 40) as f64) {
                        return Err(Error::invalid(
                            OP,
                            format!("scale_factor {s} on an axis of {n} gives no valid output size"),
                        ));
                    }
                    output.push(size as usize);
                }
                // `area` always recomputes, as PyTorch.
                let recompute = opts.recompute_scale_factor == Some(true) || mode == InterpolateMode::Area;
                let scale = factors.iter().map(|&s| (!recompute).then_some(s)).collect();
                (output, scale)
            }
        };
        let mut out_shape = self.shape()[..2].to_vec();
        out_shape.extend_from_slice(&output);
        if out_shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(Error::invalid(
                OP,
                format!("the output shape {out_shape:?} is too large"),
            ));
        }
        if mode == InterpolateMode::Area {
            return self.adaptive_avg_pool(rank, &output);
        }
        let mut scales = [None; 3];
        scales[3 - rank..].copy_from_slice(&scale);
        let g = InterpGeometry {
            planes: self.shape()[0] * self.shape()[1],
            input: three(input, 1),
            output: three(&output, 1),
            mode: if mode == InterpolateMode::Nearest {
                InterpMode::Nearest
            } else {
                InterpMode::Linear
            },
            align_corners: opts.align_corners.unwrap_or(false),
            scale: scales,
        };
        g.validate().map_err(|msg| Error::invalid(OP, msg))?;
        let y = if on_cuda(self) {
            cuda::interpolate(&g, self, &out_shape)?
        } else {
            with_float!(self.dtype(), OP, T => {
                let mut y = vec![<T as seg_kernels::cpu::gemm::GemmElement>::ZERO; g.y_len()];
                interpolate_forward(&g, &self.values::<T>()?, &mut y);
                Ok(tensor_from(y, &out_shape))
            })?
        };
        Ok(Tensor::from_op(y, &[self], |_| InterpolateBackward {
            geometry: g,
            x_shape: self.shape().to_vec(),
        }))
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

    fn with_corners(opts: InterpolateOptions, align_corners: bool) -> InterpolateOptions {
        InterpolateOptions {
            align_corners: Some(align_corners),
            ..opts
        }
    }

    #[test]
    fn values_match_pytorch() {
        let x = Tensor::from_vec(vec![0.0f64, 1.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
        // F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), first row
        let y = x
            .interpolate(&InterpolateOptions::scale(&[2.0], InterpolateMode::Bilinear))
            .unwrap();
        assert_eq!(y.shape(), &[1, 1, 4, 4]);
        assert_eq!(&y.to_vec::<f64>().unwrap()[..4], [0.0, 0.25, 0.75, 1.0]);
        // align_corners=True, size (3, 3): the corners and their midpoints
        let y = x
            .interpolate(&with_corners(
                InterpolateOptions::size(&[3], InterpolateMode::Bilinear),
                true,
            ))
            .unwrap();
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]
        );
        // nearest, size 3 from 2: floor(o * 2 / 3) = [0, 0, 1]
        let y = x
            .interpolate(&InterpolateOptions::size(&[1, 3], InterpolateMode::Nearest))
            .unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), [0.0, 0.0, 1.0]);
        // area: averages
        let y = x
            .interpolate(&InterpolateOptions::size(&[1], InterpolateMode::Area))
            .unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), [1.5]);
    }

    #[test]
    fn gradients_of_each_mode() {
        let trilinear = InterpolateOptions::scale(&[2.0, 1.5, 0.7], InterpolateMode::Trilinear);
        for ac in [false, true] {
            let opts = with_corners(trilinear.clone(), ac);
            gradcheck::check(|t| t[0].interpolate(&opts), &[randn(&[1, 2, 3, 4, 5], 1)]).unwrap();
        }
        let bilinear = with_corners(InterpolateOptions::size(&[5, 3], InterpolateMode::Bilinear), false);
        gradcheck::check(|t| t[0].interpolate(&bilinear), &[randn(&[2, 1, 3, 4], 2)]).unwrap();
        let linear = InterpolateOptions {
            recompute_scale_factor: Some(true),
            ..InterpolateOptions::scale(&[1.7], InterpolateMode::Linear)
        };
        gradcheck::check(|t| t[0].interpolate(&linear), &[randn(&[2, 2, 5], 3)]).unwrap();
        let nearest = InterpolateOptions::scale(&[1.5, 2.0, 0.5], InterpolateMode::Nearest);
        gradcheck::check(|t| t[0].interpolate(&nearest), &[randn(&[1, 2, 3, 2, 4], 4)]).unwrap();
        let area = InterpolateOptions::size(&[2, 3], InterpolateMode::Area);
        gradcheck::check(|t| t[0].interpolate(&area), &[randn(&[1, 2, 5, 4], 5)]).unwrap();
    }

    #[test]
    fn output_sizes_follow_the_scale_factor() {
        let x = randn(&[1, 1, 5, 3, 4], 6);
        let y = x
            .interpolate(&InterpolateOptions::scale(&[1.5, 2.0, 0.6], InterpolateMode::Nearest))
            .unwrap();
        assert_eq!(y.shape(), &[1, 1, 7, 6, 2]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = randn(&[1, 2, 4, 4], 7);
        let err = |opts: InterpolateOptions| x.interpolate(&opts).unwrap_err().to_string();
        assert!(err(InterpolateOptions::scale(&[2.0], InterpolateMode::Trilinear)).contains("needs 5D"));
        assert!(err(with_corners(
            InterpolateOptions::scale(&[2.0], InterpolateMode::Nearest),
            false
        ))
        .contains("align_corners"));
        let both = InterpolateOptions {
            size: Some(vec![3]),
            ..InterpolateOptions::scale(&[2.0], InterpolateMode::Nearest)
        };
        assert!(err(both).contains("only one"));
        assert!(err(InterpolateOptions::default()).contains("either"));
        assert!(err(InterpolateOptions::scale(&[-1.0], InterpolateMode::Nearest)).contains("scale_factor"));
        assert!(err(InterpolateOptions::scale(&[0.1], InterpolateMode::Nearest)).contains("greater than 0"));
        assert!(err(InterpolateOptions::scale(&[f64::NAN], InterpolateMode::Nearest)).contains("scale_factor"));
        assert!(err(InterpolateOptions::size(&[2, 2, 2], InterpolateMode::Nearest)).contains("3 size values"));
        let recompute = InterpolateOptions {
            recompute_scale_factor: Some(true),
            ..InterpolateOptions::size(&[3], InterpolateMode::Bilinear)
        };
        assert!(err(recompute).contains("recompute_scale_factor"));
        assert!(InterpolateMode::parse("bicubic").is_err());
        assert!(randn(&[4, 4], 8)
            .interpolate(&InterpolateOptions::scale(&[2.0], InterpolateMode::Nearest))
            .is_err());
    }
}
