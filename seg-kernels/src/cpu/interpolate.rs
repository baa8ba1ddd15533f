//! Resampling (PyTorch's `interpolate`) over 1, 2 or 3 spatial axes of `planes = N * C` independent
//! planes, modes `nearest` (PyTorch's legacy nearest) and `linear` (linear, bilinear, trilinear: the
//! product of per-axis linear weights).
//!
//! Per axis, with `in` input and `out` output positions and `scale` the user's scale factor when one
//! was given (PyTorch's `scales`, `recompute_scale_factor=None`):
//!
//! - nearest: `src(o) = min(floor(o * r), in - 1)` computed in f32, with `r = 1 / scale` when a scale
//!   is given, else `r = in / out` (PyTorch's `nearest_neighbor_compute_source_index`);
//! - linear (PyTorch's `area_pixel_compute_source_index` and `guard_index_and_lambda`): `r =
//!   (in - 1) / (out - 1)` (0 when `out = 1`) with `align_corners`, else as for nearest; the real
//!   source `s = r o` with `align_corners`, else `s = max(r (o + 0.5) - 0.5, 0)`; then `i0 = min(floor(s), in - 1)`,
//!   `i1 = i0 + (i0 < in - 1)`, `l1 = clamp(s - i0, 0, 1)`, `l0 = 1 - l1`. An axis with `in == out`
//!   is the identity whatever the scale (as PyTorch's linear kernels, forward and backward).
//!
//! Forward: `y[o] = sum over corners c of prod_a w_a(c) x[i(c)]` (nearest: `y[o] = x[src(o)]`).
//! Backward, its adjoint: `dx[i(c)] += prod_a w_a(c) dy[o]`. (PyTorch's nearest *backward* uses
//! shortcuts `src(o) = o` when `out == in` and `src(o) = o / 2` when `out == 2 in` that its forward does
//! not, so for a scale factor such as 1.2 on 3 positions its gradient is not the adjoint of its output;
//! this kernel's is.)
//!
//! The fast path is separable and streams depth slices: each input depth slice is resampled in-plane
//! (width, then height: gathers of rows blended with two weights) into a two-slice cache, and each
//! output depth slice blends two cached slices, so the volume is read and written once; the work is
//! split over (plane, range of output depths) with rayon. The backward gathers, for each input depth
//! slice, the output slices that read it, then runs the in-plane adjoint passes (height, then width:
//! scatter-adds). The `*_reference` functions compute every output from its corners.

use rayon::prelude::*;

use super::pool::FloatElement;

/// The resampling rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpMode {
    /// PyTorch's `nearest` (legacy; not `nearest-exact`).
    Nearest,
    /// `linear`, `bilinear` or `trilinear`, by the number of resampled axes.
    Linear,
}

/// Shape and mode of a resampling. Spatial arrays are `(depth, height, width)`; a 2-D resampling has
/// input and output depth 1, a 1-D one also height 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InterpGeometry {
    /// `N * C`.
    pub planes: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub mode: InterpMode,
    /// Only for [`InterpMode::Linear`].
    pub align_corners: bool,
    /// The user's scale factor per axis, when given and not recomputed from the sizes.
    pub scale: [Option<f64>; 3],
}

impl InterpGeometry {
    /// Checks the geometry; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.input.contains(&0) || self.output.contains(&0) {
            return Err(format!(
                "input and output sizes should be greater than 0, but got input {:?} and output {:?}",
                self.input, self.output
            ));
        }
        Ok(())
    }
    pub fn x_len(&self) -> usize {
        self.planes * self.input.iter().product::<usize>()
    }
    pub fn y_len(&self) -> usize {
        self.planes * self.output.iter().product::<usize>()
    }
}

/// `r` of the module doc for the non-`align_corners` rules, in the element type `T` (the CUDA
/// launcher passes it to its kernels).
pub fn plain_ratio<T: FloatElement>(input: usize, output: usize, scale: Option<f64>) -> T {
    match scale {
        Some(s) if s > 0.0 => T::from_f64(1.0 / s),
        _ => T::from_f64(input as f64) / T::from_f64(output as f64),
    }
}

/// The nearest source position of output `dst` (see the module doc).
pub fn nearest_source(dst: usize, input: usize, output: usize, scale: Option<f64>) -> usize {
    let r: f32 = plain_ratio(input, output, scale);
    ((dst as f32 * r).floor() as usize).min(input - 1)
}

/// The two linear source positions `(i0, i1)` of output `dst` and their weights `(l0, l1)`.
pub fn linear_source<T: FloatElement>(
    dst: usize,
    input: usize,
    output: usize,
    align_corners: bool,
    scale: Option<f64>,
) -> (usize, usize, T, T) {
    if input == output {
        return (dst, dst, T::ONE, T::ZERO);
    }
    let o = T::from_f64(dst as f64);
    let real = if align_corners {
        let r = if output > 1 {
            T::from_f64((input - 1) as f64) / T::from_f64((output - 1) as f64)
        } else {
            T::ZERO
        };
        r * o
    } else {
        let half = T::from_f64(0.5);
        let s = plain_ratio::<T>(input, output, scale) * (o + half) - half;
        if s < T::ZERO {
            T::ZERO
        } else {
            s
        }
    };
    let i0 = (real.to_f64().floor() as usize).min(input - 1);
    let mut l1 = real - T::from_f64(i0 as f64);
    if l1 < T::ZERO {
        l1 = T::ZERO;
    } else if l1 > T::ONE {
        l1 = T::ONE;
    }
    let i1 = i0 + usize::from(i0 < input - 1);
    (i0, i1, T::ONE - l1, l1)
}

/// How one axis is resampled.
enum AxisMap<T> {
    Identity,
    Nearest(Vec<usize>),
    Linear(Vec<(usize, usize, T, T)>),
}

fn axis_map<T: FloatElement>(g: &InterpGeometry, a: usize) -> AxisMap<T> {
    let (input, output, scale) = (g.input[a], g.output[a], g.scale[a]);
    match g.mode {
        InterpMode::Nearest => {
            let src: Vec<usize> = (0..output).map(|o| nearest_source(o, input, output, scale)).collect();
            if input == output && src.iter().enumerate().all(|(o, &i)| o == i) {
                AxisMap::Identity
            } else {
                AxisMap::Nearest(src)
            }
        }
        InterpMode::Linear if input == output => AxisMap::Identity,
        InterpMode::Linear => AxisMap::Linear(
            (0..output)
                .map(|o| linear_source(o, input, output, g.align_corners, scale))
                .collect(),
        ),
    }
}

/// One pass over an `(outer, n_in, inner)` array into `(outer, n_out, inner)` (`dst` overwritten).
fn resample<T: FloatElement>(map: &AxisMap<T>, src: &[T], dst: &mut [T], outer: usize, n_in: usize, inner: usize) {
    match map {
        AxisMap::Identity => dst.copy_from_slice(src),
        AxisMap::Nearest(idx) => {
            let n_out = idx.len();
            for a in 0..outer {
                let (s, d) = (
                    &src[a * n_in * inner..][..n_in * inner],
                    &mut dst[a * n_out * inner..][..n_out * inner],
                );
                if inner == 1 {
                    d.iter_mut().zip(idx).for_each(|(v, &i)| *v = s[i]);
                } else {
                    for (row, &i) in d.chunks_exact_mut(inner).zip(idx) {
                        row.copy_from_slice(&s[i * inner..][..inner]);
                    }
                }
            }
        }
        AxisMap::Linear(taps) => {
            let n_out = taps.len();
            for a in 0..outer {
                let (s, d) = (
                    &src[a * n_in * inner..][..n_in * inner],
                    &mut dst[a * n_out * inner..][..n_out * inner],
                );
                if inner == 1 {
                    d.iter_mut()
                        .zip(taps)
                        .for_each(|(v, &(i0, i1, l0, l1))| *v = l0 * s[i0] + l1 * s[i1]);
                } else {
                    for (row, &(i0, i1, l0, l1)) in d.chunks_exact_mut(inner).zip(taps) {
                        let (r0, r1) = (&s[i0 * inner..][..inner], &s[i1 * inner..][..inner]);
                        for ((v, &a), &b) in row.iter_mut().zip(r0).zip(r1) {
                            *v = l0 * a + l1 * b;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`resample`]: `src_grad` (`(outer, n_in, inner)`, overwritten) from `dst_grad`.
fn resample_adjoint<T: FloatElement>(
    map: &AxisMap<T>,
    dst_grad: &[T],
    src_grad: &mut [T],
    outer: usize,
    n_in: usize,
    inner: usize,
) {
    if let AxisMap::Identity = map {
        src_grad.copy_from_slice(dst_grad);
        return;
    }
    src_grad.iter_mut().for_each(|v| *v = T::ZERO);
    let add = |s: &mut [T], i: usize, row: &[T], w: T| {
        for (v, &g) in s[i * inner..][..inner].iter_mut().zip(row) {
            *v = *v + w * g;
        }
    };
    let n_out = dst_grad.len() / (outer * inner).max(1);
    for a in 0..outer {
        let s = &mut src_grad[a * n_in * inner..][..n_in * inner];
        let d = &dst_grad[a * n_out * inner..][..n_out * inner];
        match map {
            AxisMap::Identity => unreachable!("handled above"),
            AxisMap::Nearest(idx) => {
                for (row, &i) in d.chunks_exact(inner).zip(idx) {
                    for (v, &g) in s[i * inner..][..inner].iter_mut().zip(row) {
                        *v = *v + g;
                    }
                }
            }
            AxisMap::Linear(taps) => {
                for (row, &(i0, i1, l0, l1)) in d.chunks_exact(inner).zip(taps) {
                    add(s, i0, row, l0);
                    add(s, i1, row, l1);
                }
            }
        }
    }
}

/// Runs the passes `axes` (in order) on one plane, from `x` (shape `from`) into `y`, through the
/// scratch buffers; `step(map, src, dst, outer, n_src, inner)` is one pass, `sizes[a]` the size an
/// axis takes after its pass.
#[allow(clippy::too_many_arguments)]
fn run_passes<T: FloatElement>(
    maps: &[AxisMap<T>; 3],
    axes: &[usize],
    from: [usize; 3],
    sizes: [usize; 3],
    x: &[T],
    y: &mut [T],
    scratch: &mut [Vec<T>; 2],
    step: impl Fn(&AxisMap<T>, &[T], &mut [T], usize, usize, usize),
) {
    if axes.is_empty() {
        y.copy_from_slice(x);
        return;
    }
    let mut shape = from;
    // None: the current array is `x`; Some(b): it is scratch[b].
    let mut current: Option<usize> = None;
    for (n, &a) in axes.iter().enumerate() {
        let (outer, inner) = (shape[..a].iter().product(), shape[a + 1..].iter().product());
        let n_src = shape[a];
        shape[a] = sizes[a];
        let len: usize = shape.iter().product();
        let [s0, s1] = scratch;
        let (src, dst): (&[T], &mut [T]) = match (current, n + 1 == axes.len()) {
            (None, true) => (x, &mut *y),
            (Some(0), true) => (s0, &mut *y),
            (Some(_), true) => (s1, &mut *y),
            (None, false) => (x, resized(s0, len)),
            (Some(0), false) => (s0, resized(s1, len)),
            (Some(_), false) => (s1, resized(s0, len)),
        };
        step(&maps[a], src, dst, outer, n_src, inner);
        current = Some(match current {
            Some(0) => 1,
            _ => 0,
        });
    }
}

fn resized<T: FloatElement>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    v.resize(len, T::ZERO);
    &mut v[..len]
}

fn maps<T: FloatElement>(g: &InterpGeometry) -> [AxisMap<T>; 3] {
    std::array::from_fn(|a| axis_map(g, a))
}

/// The in-plane passes (width, then height) that are not the identity, in forward order.
fn plane_axes<T>(maps: &[AxisMap<T>; 3]) -> Vec<usize> {
    [2, 1]
        .into_iter()
        .filter(|&a| !matches!(maps[a], AxisMap::Identity))
        .collect()
}

/// Depth slices `(H, W)` resampled in-plane to `(Ho, Wo)`, computed on demand; the last two are kept
/// (a depth blend reads two neighbouring slices, and successive outputs mostly reuse them).
struct SliceCache<T> {
    slices: [Vec<T>; 2],
    tags: [Option<usize>; 2],
    scratch: [Vec<T>; 2],
}

impl<T: FloatElement> SliceCache<T> {
    fn new() -> Self {
        Self {
            slices: [Vec::new(), Vec::new()],
            tags: [None, None],
            scratch: [Vec::new(), Vec::new()],
        }
    }

    /// The slot holding slice `d` of `x`, computing it (never into slot `keep`) when missing.
    fn ensure(&mut self, d: usize, keep: Option<usize>, g: &InterpGeometry, maps: &[AxisMap<T>; 3], x: &[T]) -> usize {
        if let Some(k) = self.tags.iter().position(|&t| t == Some(d)) {
            return k;
        }
        let k = match keep {
            Some(0) => 1,
            Some(_) => 0,
            None => usize::from(self.tags[0].is_some() && self.tags[1].is_none()),
        };
        let [_, h, w] = g.input;
        let len = g.output[1] * g.output[2];
        let slice = resized(&mut self.slices[k], len);
        let from = [1, h, w];
        let to = [1, g.output[1], g.output[2]];
        let src = &x[d * h * w..][..h * w];
        run_passes(
            maps,
            &plane_axes(maps),
            from,
            to,
            src,
            slice,
            &mut self.scratch,
            resample,
        );
        self.tags[k] = Some(d);
        k
    }
}

/// Splits each plane's `depth` output (or input) slices into chunks so that there are a few pieces of
/// work per thread even with one plane; returns the slices per chunk.
fn depth_chunk(planes: usize, depth: usize) -> usize {
    let per_plane = (4 * rayon::current_num_threads())
        .div_ceil(planes.max(1))
        .clamp(1, depth.max(1));
    depth.div_ceil(per_plane).max(1)
}

/// `y` of a resampling (see the module doc).
pub fn interpolate_forward<T: FloatElement>(g: &InterpGeometry, x: &[T], y: &mut [T]) {
    assert!(
        x.len() == g.x_len() && y.len() == g.y_len() && g.validate().is_ok(),
        "interpolate_forward: geometry or buffer sizes"
    );
    if g.planes == 0 {
        return;
    }
    let maps = maps::<T>(g);
    let (il, ol) = (g.x_len() / g.planes, g.y_len() / g.planes);
    let [_, h, w] = g.input;
    let slice = g.output[1] * g.output[2];
    let chunk = depth_chunk(g.planes, g.output[0]);
    let axes = plane_axes(&maps);
    y.par_chunks_mut(ol).zip(x.par_chunks(il)).for_each(|(y, x)| {
        y.par_chunks_mut(chunk * slice)
            .enumerate()
            .for_each_init(SliceCache::new, |cache, (c, y)| {
                for (j, y) in y.chunks_exact_mut(slice).enumerate() {
                    let od = c * chunk + j;
                    match &maps[0] {
                        AxisMap::Identity => {
                            let src = &x[od * h * w..][..h * w];
                            run_passes(&maps, &axes, [1, h, w], g.output, src, y, &mut cache.scratch, resample);
                        }
                        AxisMap::Nearest(idx) => {
                            let k = cache.ensure(idx[od], None, g, &maps, x);
                            y.copy_from_slice(&cache.slices[k]);
                        }
                        AxisMap::Linear(taps) => {
                            let (d0, d1, l0, l1) = taps[od];
                            let k0 = cache.ensure(d0, None, g, &maps, x);
                            let k1 = cache.ensure(d1, Some(k0), g, &maps, x);
                            let (s0, s1) = (&cache.slices[k0], &cache.slices[k1]);
                            for ((v, &a), &b) in y.iter_mut().zip(s0.iter()).zip(s1.iter()) {
                                *v = l0 * a + l1 * b;
                            }
                        }
                    }
                }
            });
    });
}

/// For each input position of an axis, the `(output position, weight)` pairs that read it.
fn readers<T: FloatElement>(map: &AxisMap<T>, n_in: usize) -> Vec<Vec<(usize, T)>> {
    let mut inv = vec![Vec::new(); n_in];
    match map {
        AxisMap::Identity => inv.iter_mut().enumerate().for_each(|(i, r)| r.push((i, T::ONE))),
        AxisMap::Nearest(idx) => idx.iter().enumerate().for_each(|(o, &i)| inv[i].push((o, T::ONE))),
        AxisMap::Linear(taps) => {
            for (o, &(i0, i1, l0, l1)) in taps.iter().enumerate() {
                inv[i0].push((o, l0));
                inv[i1].push((o, l1));
            }
        }
    }
    inv
}

/// `dx` (overwritten) of a resampling: the adjoint of [`interpolate_forward`] applied to `dy`. Each
/// input depth slice gathers the output slices that read it, then runs the in-plane adjoint passes
/// (height, then width).
pub fn interpolate_backward<T: FloatElement>(g: &InterpGeometry, dy: &[T], dx: &mut [T]) {
    assert!(
        dy.len() == g.y_len() && dx.len() == g.x_len() && g.validate().is_ok(),
        "interpolate_backward: geometry or buffer sizes"
    );
    if g.planes == 0 {
        return;
    }
    let maps = maps::<T>(g);
    let (il, ol) = (g.x_len() / g.planes, g.y_len() / g.planes);
    let [_, h, w] = g.input;
    let slice = g.output[1] * g.output[2];
    let chunk = depth_chunk(g.planes, g.input[0]);
    let mut axes = plane_axes(&maps);
    axes.reverse();
    let inv = readers(&maps[0], g.input[0]);
    let adjoint = |map: &AxisMap<T>, src: &[T], dst: &mut [T], outer: usize, _n_out: usize, inner: usize| {
        let n_in = dst.len() / (outer * inner);
        resample_adjoint(map, src, dst, outer, n_in, inner)
    };
    dx.par_chunks_mut(il).zip(dy.par_chunks(ol)).for_each(|(dx, dy)| {
        dx.par_chunks_mut(chunk * h * w).enumerate().for_each_init(
            || (Vec::new(), [Vec::new(), Vec::new()]),
            |(gathered, scratch), (c, dx)| {
                for (j, dx) in dx.chunks_exact_mut(h * w).enumerate() {
                    let d = c * chunk + j;
                    let from = [1, g.output[1], g.output[2]];
                    if let AxisMap::Identity = maps[0] {
                        let src = &dy[d * slice..][..slice];
                        run_passes(&maps, &axes, from, [1, h, w], src, dx, scratch, adjoint);
                        continue;
                    }
                    let acc = resized(gathered, slice);
                    acc.iter_mut().for_each(|v| *v = T::ZERO);
                    for &(od, wt) in &inv[d] {
                        for (v, &gv) in acc.iter_mut().zip(&dy[od * slice..][..slice]) {
                            *v = *v + wt * gv;
                        }
                    }
                    run_passes(&maps, &axes, from, [1, h, w], acc, dx, scratch, adjoint);
                }
            },
        );
    });
}

/// Per-axis corners `(position, weight)` of output position `o` along axis `a`.
fn corners<T: FloatElement>(g: &InterpGeometry, a: usize, o: usize) -> Vec<(usize, T)> {
    let (input, output, scale) = (g.input[a], g.output[a], g.scale[a]);
    match g.mode {
        InterpMode::Nearest => vec![(nearest_source(o, input, output, scale), T::ONE)],
        InterpMode::Linear => {
            let (i0, i1, l0, l1) = linear_source::<T>(o, input, output, g.align_corners, scale);
            vec![(i0, l0), (i1, l1)]
        }
    }
}

/// Visits every `(x index, y index, weight)` of a resampling: the direct definition.
fn for_each_corner<T: FloatElement>(g: &InterpGeometry, mut f: impl FnMut(usize, usize, T)) {
    let (il, ol): (usize, usize) = (g.input.iter().product(), g.output.iter().product());
    for n in 0..g.planes {
        for od in 0..g.output[0] {
            for oh in 0..g.output[1] {
                for ow in 0..g.output[2] {
                    let o = (od * g.output[1] + oh) * g.output[2] + ow;
                    for (d, wd) in corners::<T>(g, 0, od) {
                        for (h, wh) in corners::<T>(g, 1, oh) {
                            for (w, ww) in corners::<T>(g, 2, ow) {
                                let i = (d * g.input[1] + h) * g.input[2] + w;
                                f(n * il + i, n * ol + o, wd * wh * ww);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forward from each output's corners.
pub fn interpolate_forward_reference<T: FloatElement>(g: &InterpGeometry, x: &[T], y: &mut [T]) {
    y.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_corner(g, |xi, yi, w: T| y[yi] = y[yi] + w * x[xi]);
}

/// The backward by scattering each output's gradient to its corners.
pub fn interpolate_backward_reference<T: FloatElement>(g: &InterpGeometry, dy: &[T], dx: &mut [T]) {
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_corner(g, |xi, yi, w: T| dx[xi] = dx[xi] + w * dy[yi]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-10 * (1.0 + y.abs()))
    }

    fn geometry() -> impl Strategy<Value = InterpGeometry> {
        (
            1usize..4,
            proptest::array::uniform3(1usize..7),
            proptest::array::uniform3(1usize..11),
            any::<bool>(),
            any::<bool>(),
            proptest::array::uniform3(proptest::option::of(0.3f64..3.5)),
            0usize..3,
        )
            .prop_map(|(planes, input, output, nearest, align_corners, scale, flat)| {
                let mut g = InterpGeometry {
                    planes,
                    input,
                    output,
                    mode: if nearest {
                        InterpMode::Nearest
                    } else {
                        InterpMode::Linear
                    },
                    align_corners: align_corners && !nearest,
                    scale,
                };
                for a in 0..3 {
                    if let Some(s) = g.scale[a] {
                        g.output[a] = ((g.input[a] as f64 * s).floor() as usize).max(1);
                    }
                }
                for a in 0..flat {
                    (g.input[a], g.output[a], g.scale[a]) = (1, 1, None);
                }
                g
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]
        #[test]
        fn separable_passes_match_the_corner_sums(g in geometry()) {
            prop_assert!(g.validate().is_ok());
            let (x, dy) = (values(g.x_len(), 1), values(g.y_len(), 2));
            let (mut fast, mut slow) = (vec![7.0; g.y_len()], vec![0.0; g.y_len()]);
            interpolate_forward(&g, &x, &mut fast);
            interpolate_forward_reference(&g, &x, &mut slow);
            prop_assert!(close(&fast, &slow));
            let (mut fast, mut slow) = (vec![7.0; g.x_len()], vec![0.0; g.x_len()]);
            interpolate_backward(&g, &dy, &mut fast);
            interpolate_backward_reference(&g, &dy, &mut slow);
            prop_assert!(close(&fast, &slow));
            // the backward is the adjoint: <forward(x), dy> = <x, backward(dy)>
            let mut y = vec![0.0; g.y_len()];
            interpolate_forward(&g, &x, &mut y);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&fast).map(|(a, b)| a * b).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()));
        }
    }

    fn one_d(input: usize, output: usize, mode: InterpMode, align_corners: bool, scale: Option<f64>) -> InterpGeometry {
        InterpGeometry {
            planes: 1,
            input: [1, 1, input],
            output: [1, 1, output],
            mode,
            align_corners,
            scale: [None, None, scale],
        }
    }

    fn run(g: &InterpGeometry, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; g.y_len()];
        interpolate_forward(g, x, &mut y);
        y
    }

    #[test]
    fn nearest_uses_the_scale_factor_when_given() {
        let x = [10.0, 20.0, 30.0];
        // F.interpolate(x, scale_factor=1.2) keeps 3 positions but reads [0, 0, 1]
        assert_eq!(
            run(&one_d(3, 3, InterpMode::Nearest, false, Some(1.2)), &x),
            [10.0, 10.0, 20.0]
        );
        // size=3: the identity
        assert_eq!(run(&one_d(3, 3, InterpMode::Nearest, false, None), &x), x);
        // scale_factor=2.2 -> 6 positions: floor(o / 2.2) = [0, 0, 0, 1, 1, 2]
        assert_eq!(
            run(&one_d(3, 6, InterpMode::Nearest, false, Some(2.2)), &x),
            [10.0, 10.0, 10.0, 20.0, 20.0, 30.0]
        );
    }

    #[test]
    fn linear_weights_match_pytorch() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        // F.interpolate(arange(5), scale_factor=1.5, mode="linear"): sources (o + 0.5) / 1.5 - 0.5
        let y = run(&one_d(5, 7, InterpMode::Linear, false, Some(1.5)), &x);
        let expected = [
            0.0,
            0.5,
            1.0 + 1.0 / 6.0,
            1.0 + 5.0 / 6.0,
            2.5,
            3.0 + 1.0 / 6.0,
            3.0 + 5.0 / 6.0,
        ];
        assert!(close(&y, &expected), "{y:?}");
        // align_corners: sources o * 4 / 6
        let y = run(&one_d(5, 7, InterpMode::Linear, true, Some(1.5)), &x);
        let expected: Vec<f64> = (0..7).map(|o| o as f64 * 4.0 / 6.0).collect();
        assert!(close(&y, &expected), "{y:?}");
        // same size with a scale factor: the identity, as PyTorch
        assert_eq!(run(&one_d(3, 3, InterpMode::Linear, false, Some(1.2)), &x[..3]), x[..3]);
        // downsampling by 0.6: [2/3 x0 + 1/3 x1, x2]
        let y = run(&one_d(4, 2, InterpMode::Linear, false, Some(0.6)), &x[..4]);
        assert!(close(&y, &[1.0 / 3.0, 2.0]), "{y:?}");
    }

    #[test]
    fn invalid_sizes_are_reported() {
        assert!(one_d(0, 3, InterpMode::Nearest, false, None).validate().is_err());
        assert!(one_d(3, 0, InterpMode::Linear, false, None).validate().is_err());
    }
}
