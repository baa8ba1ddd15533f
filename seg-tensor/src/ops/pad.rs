//! Padding, rolling and flipping, all as an *axis remap*: output position `o` on axis `d` reads input
//! position `map[d][o]`, or the fill value where the map has none. The backward adds each output
//! gradient into the input position it read (positions read twice, as in reflect padding, sum). On
//! CUDA the same maps drive `cuda/pad.cu` (constant padding there copies into a filled tensor).

use crate::autograd::Backward;
use crate::layout::{contiguous_strides, normalize_dims};
use crate::ops::tensor_from;
use crate::{with_element, with_float, Element, Error, Result, Tensor};

/// How `pad` fills the border (`torch.nn.functional.pad`'s modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value; negative pads crop.
    Constant,
    /// Mirror without repeating the edge: `d c b | a b c d | c b a`.
    Reflect,
    /// Repeat the edge: `a a | a b c d | d d`.
    Replicate,
    /// Wrap around: `c d | a b c d | a b`.
    Circular,
}

impl PadMode {
    /// Parses PyTorch's spelling.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "replicate" => PadMode::Replicate,
            "circular" => PadMode::Circular,
            _ => return Err(Error::invalid("pad", format!("unknown mode {name:?}"))),
        })
    }
}

type AxisMap = Vec<Option<usize>>;

/// Walks all output positions in row-major order with the input offset each reads.
fn walk(maps: &[AxisMap], strides: &[usize], d: usize, offset: Option<usize>, f: &mut impl FnMut(Option<usize>)) {
    if d == maps.len() {
        return f(offset);
    }
    for &src in &maps[d] {
        walk(
            maps,
            strides,
            d + 1,
            offset.zip(src).map(|(o, s)| o + s * strides[d]),
            f,
        );
    }
}

fn remap_values<T: Element>(x: &Tensor, maps: &[AxisMap], fill: T) -> Result<Vec<T>> {
    let values = x.values::<T>()?;
    let mut out = Vec::with_capacity(maps.iter().map(Vec::len).product());
    walk(maps, &contiguous_strides(x.shape()), 0, Some(0), &mut |o| {
        out.push(o.map_or(fill, |o| values[o]))
    });
    Ok(out)
}

struct RemapBackward {
    maps: Vec<AxisMap>,
    in_shape: Vec<usize>,
}

impl Backward for RemapBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        if crate::ops::on_cuda(grad) {
            return Ok(vec![Some(crate::cuda::remap_backward(
                grad,
                &self.maps,
                &self.in_shape,
            )?)]);
        }
        let dx = with_float!(grad.dtype(), "pad backward", T => {
            let g = grad.values::<T>()?;
            let mut dx = vec![<T as num_traits::Zero>::zero(); crate::layout::numel(&self.in_shape)];
            let mut next = g.iter();
            walk(&self.maps, &contiguous_strides(&self.in_shape), 0, Some(0), &mut |o| {
                let g = *next.next().expect("one gradient per output");
                if let Some(o) = o {
                    dx[o] += g;
                }
            });
            Ok(tensor_from(dx, &self.in_shape))
        })?;
        Ok(vec![Some(dx)])
    }
}

/// Backward of constant padding on CUDA: the gradient's window over the (cropped) input.
struct WindowBackward {
    starts: Vec<usize>,
    shape: Vec<usize>,
}

impl Backward for WindowBackward {
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut g = grad.clone();
        for (d, (&start, &len)) in self.starts.iter().zip(&self.shape).enumerate() {
            g = g.narrow(d as isize, start, len)?;
        }
        Ok(vec![Some(g.contiguous()?)])
    }
}

impl Tensor {
    /// Constant padding on CUDA (`pads` checked by `pad`): the input, cropped where a pad is negative,
    /// copied into a tensor filled with `value`.
    fn pad_constant_cuda(&self, ordinal: usize, pads: &[isize], value: f64) -> Result<Tensor> {
        let (mut src, mut shape, mut starts) = (self.clone(), self.shape().to_vec(), vec![0; self.rank()]);
        for (pair, d) in pads.chunks(2).zip((0..self.rank()).rev()) {
            let (n, before, after) = (self.shape()[d], pair[0], pair[1]);
            let (front, back) = ((-before).max(0) as usize, (-after).max(0) as usize);
            src = src.narrow(d as isize, front.min(n), n.saturating_sub(front + back))?;
            starts[d] = before.max(0) as usize;
            shape[d] = (n as isize + before + after) as usize;
        }
        let out = crate::cuda::assemble(ordinal, &shape, self.dtype(), value, &[(&src, starts.clone())])?;
        if !self.dtype().is_compute_float() {
            return Ok(out);
        }
        let window = src.shape().to_vec();
        Ok(Tensor::from_op(out, &[&src], |_| WindowBackward {
            starts,
            shape: window,
        }))
    }

    fn remap(&self, maps: Vec<AxisMap>, fill: f64) -> Result<Tensor> {
        let out = if crate::ops::on_cuda(self) {
            crate::cuda::remap(self, &maps, fill)?
        } else {
            let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
            with_element!(self.dtype(), T => tensor_from(remap_values::<T>(self, &maps, T::from_f64(fill))?, &shape))
        };
        if !self.dtype().is_compute_float() {
            return Ok(out);
        }
        Ok(Tensor::from_op(out, &[self], |_| RemapBackward {
            maps,
            in_shape: self.shape().to_vec(),
        }))
    }

    /// Pads (or, with negative amounts in constant mode, crops) the trailing axes. `pads` lists
    /// `(before, after)` pairs starting from the last axis, as `torch.nn.functional.pad`.
    pub fn pad(&self, pads: &[isize], mode: PadMode, value: f64) -> Result<Tensor> {
        if !pads.len().is_multiple_of(2) || pads.len() > 2 * self.rank() {
            return Err(Error::invalid(
                "pad",
                format!("{} pad values for a tensor of rank {}", pads.len(), self.rank()),
            ));
        }
        let mut maps: Vec<AxisMap> = self.shape().iter().map(|&n| (0..n).map(Some).collect()).collect();
        for (pair, d) in pads.chunks(2).zip((0..self.rank()).rev()) {
            let (n, before, after) = (self.shape()[d] as isize, pair[0], pair[1]);
            let len = n.checked_add(before).and_then(|l| l.checked_add(after)).unwrap_or(-1);
            if len < 0 {
                return Err(Error::invalid(
                    "pad",
                    format!("pads {pair:?} leave a negative size on axis {d} of size {n}"),
                ));
            }
            let limit_ok = match mode {
                PadMode::Constant => true,
                PadMode::Reflect => before.max(after) < n && before.min(after) >= 0,
                PadMode::Replicate => n > 0 && before.min(after) >= 0,
                PadMode::Circular => before.max(after) <= n && before.min(after) >= 0,
            };
            if !limit_ok {
                return Err(Error::invalid(
                    "pad",
                    format!("{mode:?} padding by {pair:?} is not possible on axis {d} of size {n}"),
                ));
            }
            maps[d] = (0..len)
                .map(|o| {
                    let i = o - before;
                    let src = match mode {
                        PadMode::Constant => i,
                        PadMode::Reflect => (n - 1) - ((n - 1) - i.abs()).abs(),
                        PadMode::Replicate => i.clamp(0, n - 1),
                        PadMode::Circular => i.rem_euclid(n),
                    };
                    (0..n).contains(&src).then_some(src as usize)
                })
                .collect();
        }
        match (self.device(), mode) {
            (crate::Device::Cuda(ordinal), PadMode::Constant) => self.pad_constant_cuda(ordinal, pads, value),
            _ => self.remap(maps, value),
        }
    }

    /// Elements shifted cyclically by `shifts[i]` along `dims[i]` (`torch.roll`); with no dims the
    /// flattened tensor is rolled by the single shift.
    pub fn roll(&self, shifts: &[isize], dims: &[isize]) -> Result<Tensor> {
        if dims.is_empty() {
            if shifts.len() != 1 {
                return Err(Error::invalid("roll", "without dims, exactly one shift is needed"));
            }
            return self.flatten(0, -1)?.roll(shifts, &[0])?.reshape(self.shape());
        }
        if shifts.len() != dims.len() {
            return Err(Error::invalid(
                "roll",
                format!("{} shifts for {} dims", shifts.len(), dims.len()),
            ));
        }
        let dims = normalize_dims("roll", dims, self.rank())?;
        let mut maps: Vec<AxisMap> = self.shape().iter().map(|&n| (0..n).map(Some).collect()).collect();
        for (&d, &s) in dims.iter().zip(shifts) {
            let n = self.shape()[d] as isize;
            maps[d] = (0..n).map(|o| Some((o - s).rem_euclid(n.max(1)) as usize)).collect();
        }
        self.remap(maps, 0.0)
    }
    /// Elements in reverse order along each of `dims` (`torch.flip`).
    pub fn flip(&self, dims: &[isize]) -> Result<Tensor> {
        let dims = normalize_dims("flip", dims, self.rank())?;
        let mut maps: Vec<AxisMap> = self.shape().iter().map(|&n| (0..n).map(Some).collect()).collect();
        for &d in &dims {
            maps[d].reverse();
        }
        self.remap(maps, 0.0)
    }
}
