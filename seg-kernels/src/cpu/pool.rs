//! Pooling over 1, 2 or 3 spatial axes of `planes = N * C` independent planes (lower ranks are 3-D
//! with size-1 axes), with PyTorch's semantics.
//!
//! Per axis, output `o` of a window pooling reads the input positions `o * stride - padding + j * dilation`
//! for `j < kernel` that lie in `[0, input)`; the output size is PyTorch's `pooling_output_shape`:
//!
//! `out = floor((input + 2 padding - dilation (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0)) / stride) + 1`,
//! minus one in ceil mode when `(out - 1) stride >= input + padding` (the last window must start
//! inside the input or its left padding).
//!
//! - Max pooling: `y[o] = max_{i in window(o)} x[i]` (the padding is `-inf`), and `argmax[o]` the flat
//!   index of `i` within the input plane. As PyTorch, the scan (depth, then height, then width) keeps
//!   `i` when `x[i] > best || isnan(x[i])`: the first maximum, or the last NaN. Backward:
//!   `dx[argmax[o]] += dy[o]`.
//! - Average pooling (dilation 1): `y[o] = sum_{i in window(o)} x[i] / divisor(o)` with, per the
//!   [`AvgDivisor`], the product over axes of `min(start + kernel, input + padding) - start`
//!   (`count_include_pad`: the window clipped to the padded border only, so a ceil-mode window that
//!   runs past it counts only its padded part), of the clipped window's size, or a fixed value. A window
//!   with no input position gives 0. Backward: `dx[i] += dy[o] / divisor(o)` for `i` in `window(o)`.
//! - Adaptive average pooling to `out` positions per axis: window `[floor(o in / out), ceil((o + 1) in / out))`,
//!   divisor its size.
//!
//! The fast paths precompute each axis' windows once and run over (plane, output depth) slabs with
//! rayon (backwards over planes, as they scatter within a plane); the `*_reference` functions are
//! direct loops written as PyTorch's CPU kernels.

use std::ops::{Div, Sub};

use rayon::prelude::*;

use super::gemm::GemmElement;

/// A float element type of the pooling and resampling kernels (f32, f64).
pub trait FloatElement: GemmElement + PartialOrd + Sub<Output = Self> + Div<Output = Self> + std::fmt::Debug {
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl FloatElement for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl FloatElement for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Shape and hyper-parameters of a window pooling. Spatial arrays are `(depth, height, width)`; a 2-D
/// pooling has depth 1 (kernel 1, stride 1, padding 0, dilation 1), a 1-D one also height 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// `N * C`.
    pub planes: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
    pub ceil_mode: bool,
}

/// The divisor of an average pooling (PyTorch's `count_include_pad` and `divisor_override`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgDivisor {
    /// The window clipped to the padded input (`count_include_pad=True`, PyTorch's default).
    IncludePad,
    /// The window clipped to the input (`count_include_pad=False`).
    ExcludePad,
    /// A fixed divisor (`divisor_override`).
    Override(usize),
}

/// The input positions of one output along one axis: `first + j * step` for `j < count`; `padded` is
/// the window's size clipped to the padded input only (the `count_include_pad` divisor factor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    first: usize,
    count: usize,
    step: usize,
    padded: usize,
}

impl PoolGeometry {
    /// Output size of axis `a` as a signed number (zero or negative when the kernel does not fit).
    fn output_axis(&self, a: usize) -> i64 {
        let (input, k, s, p, d) = (
            self.input[a] as i64,
            self.kernel[a] as i64,
            self.stride[a].max(1) as i64,
            self.padding[a] as i64,
            self.dilation[a] as i64,
        );
        let num = input + 2 * p - d * (k - 1) - 1 + if self.ceil_mode { s - 1 } else { 0 };
        let mut out = num.div_euclid(s) + 1;
        if self.ceil_mode && (out - 1) * s >= input + p {
            out -= 1;
        }
        out
    }

    /// Output spatial size per axis (see the module doc).
    pub fn output(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.output_axis(a).max(0) as usize)
    }

    /// Checks the geometry as PyTorch does; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for a in 0..3 {
            if self.kernel[a] == 0 || self.stride[a] == 0 || self.dilation[a] == 0 {
                return Err("kernel size, stride and dilation must be positive".into());
            }
            if self.padding[a] > self.kernel[a] / 2 {
                return Err(format!(
                    "padding should be at most half of kernel size, but got padding={} and kernel_size={}",
                    self.padding[a], self.kernel[a]
                ));
            }
            if self.input[a] == 0 {
                return Err("the input has a spatial axis of size 0".into());
            }
            if self.output_axis(a) < 1 {
                return Err(format!(
                    "the kernel spans {} positions on an axis of {} (padded {}): the output would be empty",
                    self.dilation[a] * (self.kernel[a] - 1) + 1,
                    self.input[a],
                    self.input[a] + 2 * self.padding[a]
                ));
            }
            if self.spans(a).iter().any(|s| s.count == 0) {
                return Err("a pooling window lies entirely in the padding".into());
            }
        }
        Ok(())
    }

    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
    pub fn output_len(&self) -> usize {
        self.output().iter().product()
    }
    pub fn x_len(&self) -> usize {
        self.planes * self.input_len()
    }
    pub fn y_len(&self) -> usize {
        self.planes * self.output_len()
    }

    /// The windows of axis `a`, one per output position.
    fn spans(&self, a: usize) -> Vec<Span> {
        let (input, k, s, p, d) = (
            self.input[a] as i64,
            self.kernel[a] as i64,
            self.stride[a] as i64,
            self.padding[a] as i64,
            self.dilation[a] as i64,
        );
        (0..self.output_axis(a).max(0))
            .map(|o| {
                let start = o * s - p;
                let j0 = if start < 0 { (-start + d - 1) / d } else { 0 };
                let j1 = if start >= input {
                    0
                } else {
                    ((input - start + d - 1) / d).min(k)
                };
                let padded = (start + k).min(input + p) - start;
                Span {
                    first: (start + j0 * d).max(0) as usize,
                    count: (j1 - j0).max(0) as usize,
                    step: d as usize,
                    padded: padded.max(0) as usize,
                }
            })
            .collect()
    }

    fn all_spans(&self) -> [Vec<Span>; 3] {
        std::array::from_fn(|a| self.spans(a))
    }
}

/// Shape of an adaptive pooling: `planes = N * C` planes of `input` resized to `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveGeometry {
    pub planes: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
}

impl AdaptiveGeometry {
    /// Checks the geometry; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.input.contains(&0) {
            return Err("the input has a spatial axis of size 0".into());
        }
        if self.output.contains(&0) {
            return Err("output sizes must be positive".into());
        }
        Ok(())
    }
    pub fn x_len(&self) -> usize {
        self.planes * self.input.iter().product::<usize>()
    }
    pub fn y_len(&self) -> usize {
        self.planes * self.output.iter().product::<usize>()
    }

    fn all_spans(&self) -> [Vec<Span>; 3] {
        std::array::from_fn(|a| {
            let (input, out) = (self.input[a], self.output[a]);
            (0..out)
                .map(|o| {
                    let (start, end) = (o * input / out, ((o + 1) * input).div_ceil(out));
                    Span {
                        first: start,
                        count: end - start,
                        step: 1,
                        padded: end - start,
                    }
                })
                .collect()
        })
    }
}

/// Runs `f(plane, od, slab)` over the output slabs `(plane, od)` of `out` (each `oh * ow` long) in
/// parallel.
fn for_each_slab<T: Send>(out: &mut [T], output: [usize; 3], f: impl Fn(usize, usize, &mut [T]) + Sync) {
    let slab = output[1] * output[2];
    if slab == 0 {
        return;
    }
    out.par_chunks_mut(slab)
        .enumerate()
        .for_each(|(i, s)| f(i / output[0], i % output[0], s));
}

/// `y` and `argmax` (flat index within the input plane) of a max pooling (see the module doc).
pub fn max_pool_forward<T: FloatElement>(g: &PoolGeometry, x: &[T], y: &mut [T], argmax: &mut [i64]) {
    assert!(
        x.len() == g.x_len() && y.len() == g.y_len() && argmax.len() == g.y_len(),
        "max_pool_forward: buffer sizes"
    );
    let spans = g.all_spans();
    let (out, [_, h, w], il) = (g.output(), g.input, g.input_len());
    let slab = out[1] * out[2];
    if slab == 0 {
        return;
    }
    y.par_chunks_mut(slab)
        .zip(argmax.par_chunks_mut(slab))
        .enumerate()
        .for_each(|(i, (y, argmax))| {
            let x = &x[i / out[0] * il..][..il];
            let sd = spans[0][i % out[0]];
            let mut o = 0;
            for sh in &spans[1] {
                for sw in &spans[2] {
                    let mut at = (sd.first * h + sh.first) * w + sw.first;
                    let mut best = T::NEG_INFINITY;
                    for a in 0..sd.count {
                        for b in 0..sh.count {
                            let row = ((sd.first + a * sd.step) * h + sh.first + b * sh.step) * w + sw.first;
                            if sw.step == 1 {
                                for (c, &v) in x[row..row + sw.count].iter().enumerate() {
                                    // branch-free select: the winner of a window is unpredictable
                                    let take = v > best || v.is_nan();
                                    best = if take { v } else { best };
                                    at = if take { row + c } else { at };
                                }
                            } else {
                                for c in 0..sw.count {
                                    let v = x[row + c * sw.step];
                                    let take = v > best || v.is_nan();
                                    best = if take { v } else { best };
                                    at = if take { row + c * sw.step } else { at };
                                }
                            }
                        }
                    }
                    y[o] = best;
                    argmax[o] = at as i64;
                    o += 1;
                }
            }
        });
}

/// `dx` (overwritten) of a max pooling: `dy` scattered to the `argmax` positions. Panics when an
/// index lies outside the input plane (the indices come from [`max_pool_forward`]).
pub fn max_pool_backward<T: FloatElement>(g: &PoolGeometry, dy: &[T], argmax: &[i64], dx: &mut [T]) {
    assert!(
        dy.len() == g.y_len() && argmax.len() == g.y_len() && dx.len() == g.x_len(),
        "max_pool_backward: buffer sizes"
    );
    let (il, ol) = (g.input_len(), g.output_len());
    if il == 0 || ol == 0 {
        dx.iter_mut().for_each(|v| *v = T::ZERO);
        return;
    }
    dx.par_chunks_mut(il)
        .zip(dy.par_chunks(ol).zip(argmax.par_chunks(ol)))
        .for_each(|(dx, (dy, argmax))| {
            dx.iter_mut().for_each(|v| *v = T::ZERO);
            for (&g, &i) in dy.iter().zip(argmax) {
                dx[i as usize] = dx[i as usize] + g;
            }
        });
}

/// The divisor of one output window, or `None` when the window holds no input position.
fn divisor_of(spans: [&Span; 3], divisor: AvgDivisor) -> Option<usize> {
    if spans.iter().any(|s| s.count == 0) {
        return None;
    }
    Some(match divisor {
        AvgDivisor::IncludePad => spans.iter().map(|s| s.padded).product(),
        AvgDivisor::ExcludePad => spans.iter().map(|s| s.count).product(),
        AvgDivisor::Override(d) => d,
    })
}

/// Window averages over precomputed spans (step 1), `y` in (plane, depth) slabs.
fn average_forward<T: FloatElement>(
    spans: &[Vec<Span>; 3],
    input: [usize; 3],
    divisor: AvgDivisor,
    x: &[T],
    y: &mut [T],
) {
    let output = spans.each_ref().map(Vec::len);
    let il: usize = input.iter().product();
    let [_, h, w] = input;
    for_each_slab(y, output, |plane, od, y| {
        let x = &x[plane * il..][..il];
        let sd = &spans[0][od];
        let mut o = 0;
        for sh in &spans[1] {
            for sw in &spans[2] {
                y[o] = match divisor_of([sd, sh, sw], divisor) {
                    None => T::ZERO,
                    Some(div) => {
                        let mut sum = T::ZERO;
                        for zd in sd.first..sd.first + sd.count {
                            for zh in sh.first..sh.first + sh.count {
                                let row = (zd * h + zh) * w + sw.first;
                                for &v in &x[row..row + sw.count] {
                                    sum = sum + v;
                                }
                            }
                        }
                        sum / T::from_f64(div as f64)
                    }
                };
                o += 1;
            }
        }
    });
}

/// The adjoint of [`average_forward`]: `dx` overwritten, parallel over planes.
fn average_backward<T: FloatElement>(
    spans: &[Vec<Span>; 3],
    input: [usize; 3],
    divisor: AvgDivisor,
    dy: &[T],
    dx: &mut [T],
) {
    let ol: usize = spans.iter().map(Vec::len).product();
    let il: usize = input.iter().product();
    let [_, h, w] = input;
    if il == 0 || ol == 0 {
        dx.iter_mut().for_each(|v| *v = T::ZERO);
        return;
    }
    dx.par_chunks_mut(il).zip(dy.par_chunks(ol)).for_each(|(dx, dy)| {
        dx.iter_mut().for_each(|v| *v = T::ZERO);
        let mut o = 0;
        for sd in &spans[0] {
            for sh in &spans[1] {
                for sw in &spans[2] {
                    if let Some(div) = divisor_of([sd, sh, sw], divisor) {
                        let g = dy[o] / T::from_f64(div as f64);
                        for zd in sd.first..sd.first + sd.count {
                            for zh in sh.first..sh.first + sh.count {
                                let row = (zd * h + zh) * w + sw.first;
                                for v in &mut dx[row..row + sw.count] {
                                    *v = *v + g;
                                }
                            }
                        }
                    }
                    o += 1;
                }
            }
        }
    });
}

/// `y` of an average pooling (see the module doc; `g.dilation` must be 1).
pub fn avg_pool_forward<T: FloatElement>(g: &PoolGeometry, divisor: AvgDivisor, x: &[T], y: &mut [T]) {
    assert!(
        x.len() == g.x_len() && y.len() == g.y_len() && g.dilation == [1; 3],
        "avg_pool_forward: buffer sizes or dilation"
    );
    average_forward(&g.all_spans(), g.input, divisor, x, y);
}

/// `dx` (overwritten) of an average pooling.
pub fn avg_pool_backward<T: FloatElement>(g: &PoolGeometry, divisor: AvgDivisor, dy: &[T], dx: &mut [T]) {
    assert!(
        dy.len() == g.y_len() && dx.len() == g.x_len() && g.dilation == [1; 3],
        "avg_pool_backward: buffer sizes or dilation"
    );
    average_backward(&g.all_spans(), g.input, divisor, dy, dx);
}

/// `y` of an adaptive average pooling (see the module doc).
pub fn adaptive_avg_pool_forward<T: FloatElement>(g: &AdaptiveGeometry, x: &[T], y: &mut [T]) {
    assert!(
        x.len() == g.x_len() && y.len() == g.y_len(),
        "adaptive_avg_pool_forward: buffer sizes"
    );
    average_forward(&g.all_spans(), g.input, AvgDivisor::ExcludePad, x, y);
}

/// `dx` (overwritten) of an adaptive average pooling.
pub fn adaptive_avg_pool_backward<T: FloatElement>(g: &AdaptiveGeometry, dy: &[T], dx: &mut [T]) {
    assert!(
        dy.len() == g.y_len() && dx.len() == g.x_len(),
        "adaptive_avg_pool_backward: buffer sizes"
    );
    average_backward(&g.all_spans(), g.input, AvgDivisor::ExcludePad, dy, dx);
}

/// Calls `f(plane, flat output index within the plane, [od, oh, ow])` for every output, in order.
fn for_each_output(planes: usize, out: [usize; 3], mut f: impl FnMut(usize, usize, [usize; 3])) {
    for n in 0..planes {
        let mut o = 0;
        for od in 0..out[0] {
            for oh in 0..out[1] {
                for ow in 0..out[2] {
                    f(n, o, [od, oh, ow]);
                    o += 1;
                }
            }
        }
    }
}

/// Max pooling by direct loops, as PyTorch's `cpu_max_pool`.
pub fn max_pool_forward_reference<T: FloatElement>(g: &PoolGeometry, x: &[T], y: &mut [T], argmax: &mut [i64]) {
    let (out, input, il, ol) = (g.output(), g.input.map(|v| v as i64), g.input_len(), g.output_len());
    for_each_output(g.planes, out, |n, o, oz| {
        // First in-range position per axis (PyTorch's initial max index).
        let start: [i64; 3] = std::array::from_fn(|a| {
            let mut s = (oz[a] * g.stride[a]) as i64 - g.padding[a] as i64;
            while s < 0 {
                s += g.dilation[a] as i64;
            }
            s
        });
        let mut at = (start[0] * input[1] + start[1]) * input[2] + start[2];
        let mut best = T::NEG_INFINITY;
        for kd in 0..g.kernel[0] {
            for kh in 0..g.kernel[1] {
                for kw in 0..g.kernel[2] {
                    let k = [kd, kh, kw];
                    let i: [i64; 3] = std::array::from_fn(|a| {
                        (oz[a] * g.stride[a] + k[a] * g.dilation[a]) as i64 - g.padding[a] as i64
                    });
                    if (0..3).all(|a| (0..input[a]).contains(&i[a])) {
                        let flat = (i[0] * input[1] + i[1]) * input[2] + i[2];
                        let v = x[n * il + flat as usize];
                        if v > best || v.is_nan() {
                            best = v;
                            at = flat;
                        }
                    }
                }
            }
        }
        y[n * ol + o] = best;
        argmax[n * ol + o] = at;
    });
}

/// Max pooling backward by direct loops.
pub fn max_pool_backward_reference<T: FloatElement>(g: &PoolGeometry, dy: &[T], argmax: &[i64], dx: &mut [T]) {
    let (il, ol) = (g.input_len(), g.output_len());
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_output(g.planes, g.output(), |n, o, _| {
        let i = n * il + argmax[n * ol + o] as usize;
        dx[i] = dx[i] + dy[n * ol + o];
    });
}

/// Visits every `(x index, y index, divisor)` pair of an average pooling, as PyTorch's `cpu_avg_pool`.
fn for_each_avg_tap(g: &PoolGeometry, divisor: AvgDivisor, mut f: impl FnMut(usize, usize, usize)) {
    let (il, ol) = (g.input_len(), g.output_len());
    let input = g.input.map(|v| v as i64);
    for_each_output(g.planes, g.output(), |n, o, oz| {
        let mut lo = [0i64; 3];
        let mut hi = [0i64; 3];
        let mut pool_size = 1;
        for a in 0..3 {
            lo[a] = (oz[a] * g.stride[a]) as i64 - g.padding[a] as i64;
            hi[a] = (lo[a] + g.kernel[a] as i64).min(input[a] + g.padding[a] as i64);
            pool_size *= hi[a] - lo[a];
            lo[a] = lo[a].max(0);
            hi[a] = hi[a].min(input[a]);
        }
        if (0..3).any(|a| lo[a] >= hi[a]) {
            return;
        }
        let div = match divisor {
            AvgDivisor::Override(d) => d,
            AvgDivisor::IncludePad => pool_size as usize,
            AvgDivisor::ExcludePad => (0..3).map(|a| (hi[a] - lo[a]) as usize).product(),
        };
        for d in lo[0]..hi[0] {
            for h in lo[1]..hi[1] {
                for w in lo[2]..hi[2] {
                    let flat = ((d * input[1] + h) * input[2] + w) as usize;
                    f(n * il + flat, n * ol + o, div);
                }
            }
        }
    });
}

/// Average pooling by direct loops.
pub fn avg_pool_forward_reference<T: FloatElement>(g: &PoolGeometry, divisor: AvgDivisor, x: &[T], y: &mut [T]) {
    let mut sums = vec![0.0f64; y.len()];
    let mut divs = vec![0usize; y.len()];
    for_each_avg_tap(g, divisor, |xi, yi, div| {
        sums[yi] += x[xi].to_f64();
        divs[yi] = div;
    });
    for ((v, s), d) in y.iter_mut().zip(sums).zip(divs) {
        *v = if d == 0 { T::ZERO } else { T::from_f64(s / d as f64) };
    }
}

/// Average pooling backward by direct loops.
pub fn avg_pool_backward_reference<T: FloatElement>(g: &PoolGeometry, divisor: AvgDivisor, dy: &[T], dx: &mut [T]) {
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_avg_tap(g, divisor, |xi, yi, div| {
        dx[xi] = dx[xi] + dy[yi] / T::from_f64(div as f64);
    });
}

/// Visits every `(x index, y index, window size)` of an adaptive average pooling.
fn for_each_adaptive_tap(g: &AdaptiveGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let il: usize = g.input.iter().product();
    let ol: usize = g.output.iter().product();
    for_each_output(g.planes, g.output, |n, o, oz| {
        let range: [(usize, usize); 3] = std::array::from_fn(|a| {
            let (i, out) = (g.input[a] as f64, g.output[a] as f64);
            (
                (oz[a] as f64 * i / out).floor() as usize,
                ((oz[a] + 1) as f64 * i / out).ceil() as usize,
            )
        });
        let size = range.iter().map(|(s, e)| e - s).product();
        for d in range[0].0..range[0].1 {
            for h in range[1].0..range[1].1 {
                for w in range[2].0..range[2].1 {
                    f(n * il + (d * g.input[1] + h) * g.input[2] + w, n * ol + o, size);
                }
            }
        }
    });
}

/// Adaptive average pooling by direct loops.
pub fn adaptive_avg_pool_forward_reference<T: FloatElement>(g: &AdaptiveGeometry, x: &[T], y: &mut [T]) {
    y.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_adaptive_tap(g, |xi, yi, size| y[yi] = y[yi] + x[xi] / T::from_f64(size as f64));
}

/// Adaptive average pooling backward by direct loops.
pub fn adaptive_avg_pool_backward_reference<T: FloatElement>(g: &AdaptiveGeometry, dy: &[T], dx: &mut [T]) {
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_adaptive_tap(g, |xi, yi, size| dx[xi] = dx[xi] + dy[yi] / T::from_f64(size as f64));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-10 * (1.0 + y.abs()))
    }

    fn geometry() -> impl Strategy<Value = PoolGeometry> {
        (
            1usize..4,
            proptest::array::uniform3(1usize..8),
            proptest::array::uniform3(1usize..4),
            proptest::array::uniform3(1usize..4),
            proptest::array::uniform3(0usize..2),
            proptest::array::uniform3(1usize..3),
            any::<bool>(),
            0usize..3,
        )
            .prop_map(|(planes, input, kernel, stride, padding, dilation, ceil_mode, flat)| {
                let mut g = PoolGeometry {
                    planes,
                    input,
                    kernel,
                    stride,
                    padding: std::array::from_fn(|a| padding[a].min(kernel[a] / 2)),
                    dilation,
                    ceil_mode,
                };
                for a in 0..flat {
                    // 2-D or 1-D pooling: leading axes of size 1
                    (g.input[a], g.kernel[a], g.stride[a], g.padding[a], g.dilation[a]) = (1, 1, 1, 0, 1);
                }
                g
            })
            .prop_filter("valid geometry", |g| g.validate().is_ok())
    }

    /// Inputs with ties (few distinct values) and, when `nan`, a NaN or two.
    fn inputs(len: usize, seed: u64, ties: bool, nan: bool) -> Vec<f64> {
        let mut x = values(len, seed);
        if ties {
            x.iter_mut().for_each(|v| *v = (*v * 2.0).round());
        }
        if nan {
            x[len / 2] = f64::NAN;
            x[len - 1] = f64::NAN;
        }
        x
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn max_pool_matches_direct_loops(g in geometry(), ties in any::<bool>(), nan in any::<bool>()) {
            let x = inputs(g.x_len(), 1, ties, nan);
            let (mut fast, mut slow) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
            let (mut fast_i, mut slow_i) = (vec![0; g.y_len()], vec![0; g.y_len()]);
            max_pool_forward(&g, &x, &mut fast, &mut fast_i);
            max_pool_forward_reference(&g, &x, &mut slow, &mut slow_i);
            prop_assert!(close(&fast, &slow));
            prop_assert_eq!(&fast_i, &slow_i);
            let dy = values(g.y_len(), 2);
            let (mut fast, mut slow) = (vec![7.0; g.x_len()], vec![0.0; g.x_len()]);
            max_pool_backward(&g, &dy, &fast_i, &mut fast);
            max_pool_backward_reference(&g, &dy, &slow_i, &mut slow);
            prop_assert!(close(&fast, &slow));
        }

        #[test]
        fn avg_pool_matches_direct_loops(g in geometry(), which in 0usize..3) {
            let g = PoolGeometry { dilation: [1; 3], ..g };
            prop_assume!(g.validate().is_ok());
            let divisor = [AvgDivisor::IncludePad, AvgDivisor::ExcludePad, AvgDivisor::Override(3)][which];
            let (x, dy) = (values(g.x_len(), 3), values(g.y_len(), 4));
            let (mut fast, mut slow) = (vec![7.0; g.y_len()], vec![0.0; g.y_len()]);
            avg_pool_forward(&g, divisor, &x, &mut fast);
            avg_pool_forward_reference(&g, divisor, &x, &mut slow);
            prop_assert!(close(&fast, &slow));
            let (mut fast, mut slow) = (vec![7.0; g.x_len()], vec![0.0; g.x_len()]);
            avg_pool_backward(&g, divisor, &dy, &mut fast);
            avg_pool_backward_reference(&g, divisor, &dy, &mut slow);
            prop_assert!(close(&fast, &slow));
        }

        #[test]
        fn adaptive_avg_pool_matches_direct_loops(
            planes in 1usize..4,
            input in proptest::array::uniform3(1usize..9),
            output in proptest::array::uniform3(1usize..9),
        ) {
            let g = AdaptiveGeometry { planes, input, output };
            let (x, dy) = (values(g.x_len(), 5), values(g.y_len(), 6));
            let (mut fast, mut slow) = (vec![7.0; g.y_len()], vec![0.0; g.y_len()]);
            adaptive_avg_pool_forward(&g, &x, &mut fast);
            adaptive_avg_pool_forward_reference(&g, &x, &mut slow);
            prop_assert!(close(&fast, &slow));
            let (mut fast, mut slow) = (vec![7.0; g.x_len()], vec![0.0; g.x_len()]);
            adaptive_avg_pool_backward(&g, &dy, &mut fast);
            adaptive_avg_pool_backward_reference(&g, &dy, &mut slow);
            prop_assert!(close(&fast, &slow));
        }
    }

    fn one_d(input: usize, kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> PoolGeometry {
        PoolGeometry {
            planes: 1,
            input: [1, 1, input],
            kernel: [1, 1, kernel],
            stride: [1, 1, stride],
            padding: [0, 0, padding],
            dilation: [1; 3],
            ceil_mode,
        }
    }

    #[test]
    fn output_sizes_and_ceil_mode_divisors_match_pytorch() {
        // F.avg_pool1d(arange(6), 3, 2, 1, ceil_mode=True) = [1/3, 2, 4, 2.5]; without padding
        // counted [0.5, 2, 4, 5]. The last window, [5, 8), runs past the padded border at 7.
        let g = one_d(6, 3, 2, 1, true);
        assert_eq!(g.output(), [1, 1, 4]);
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        let mut y = vec![0.0; 4];
        avg_pool_forward(&g, AvgDivisor::IncludePad, &x, &mut y);
        assert_eq!(y, [1.0 / 3.0, 2.0, 4.0, 2.5]);
        avg_pool_forward(&g, AvgDivisor::ExcludePad, &x, &mut y);
        assert_eq!(y, [0.5, 2.0, 4.0, 5.0]);
        assert_eq!(one_d(6, 3, 2, 1, false).output(), [1, 1, 3]);
        // ceil mode drops a last window that would start in the right padding
        assert_eq!(one_d(5, 2, 2, 1, true).output(), [1, 1, 3]);
        assert_eq!(one_d(5, 2, 2, 0, true).output(), [1, 1, 3]);
    }

    #[test]
    fn max_pool_takes_the_first_maximum_and_the_last_nan() {
        let g = one_d(4, 4, 4, 0, false);
        let (mut y, mut i) = (vec![0.0; 1], vec![0; 1]);
        max_pool_forward(&g, &[1.0, 3.0, 3.0, 2.0], &mut y, &mut i);
        assert_eq!((y[0], i[0]), (3.0, 1));
        let g = one_d(5, 5, 5, 0, false);
        max_pool_forward(&g, &[1.0, f64::NAN, 3.0, f64::NAN, 0.0], &mut y, &mut i);
        assert!(y[0].is_nan());
        assert_eq!(i[0], 3);
    }

    #[test]
    fn adaptive_windows_overlap_when_growing() {
        // F.adaptive_avg_pool1d(arange(3), 5) = [0, 0.5, 1, 1.5, 2]
        let g = AdaptiveGeometry {
            planes: 1,
            input: [1, 1, 3],
            output: [1, 1, 5],
        };
        let mut y = vec![0.0; 5];
        adaptive_avg_pool_forward(&g, &[0.0, 1.0, 2.0], &mut y);
        assert_eq!(y, [0.0, 0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn invalid_geometries_are_reported() {
        assert!(one_d(7, 3, 1, 2, false)
            .validate()
            .unwrap_err()
            .contains("half of kernel"));
        assert!(one_d(5, 6, 1, 0, false).validate().unwrap_err().contains("empty"));
        assert!(one_d(0, 1, 1, 0, false).validate().unwrap_err().contains("size 0"));
        assert!(one_d(5, 2, 0, 0, false).validate().is_err());
        // k = 2, dilation 3, padding 1 on 2 positions: the first window reads -1 and 2 only.
        let g = PoolGeometry {
            dilation: [1, 1, 3],
            ..one_d(2, 2, 1, 1, false)
        };
        assert!(g.validate().unwrap_err().contains("entirely in the padding"));
    }
}
