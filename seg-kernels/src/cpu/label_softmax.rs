//! Per (batch, class) sums of a channel softmax against class labels, and their backward: the fused
//! core of the segmentation losses (Dice, cross-entropy, sigmoid focal) when the target is labels.
//!
//! Logits `x` `(B, C, S)` (`S` the spatial size), labels `y` `(B, S)` in `0..C`; per voxel
//! `p = softmax_c(x)`, `lse = ln sum_c e^{x_c}` (so `-ln p_c = lse - x_c`), `t_c = [y = c]`,
//! `m = [y != ignore]` (1 without `ignore`), `k = 2` with `squared` else 1. The sums, `(B, ROWS, C)`,
//! are over the voxels `s` of each batch element:
//!
//! | row | summand |
//! | --- | --- |
//! | [`TP`] | `m t_c p_c` |
//! | [`PS`] | `m p_c^k` |
//! | [`NLL`] | `t_c (lse - x_c)` |
//! | [`LSE`] | `lse - x_c` |
//! | [`FOCAL_POS`] | `t_c f(x_c, 1)` |
//! | [`FOCAL_NEG`] | `(1 - t_c) f(x_c, 0)` |
//!
//! with MONAI's sigmoid focal term for a binary target (`(1 - p_t)^gamma BCE(x, t)`), written with
//! `sp(v) = ln(1 + e^v)`, `u = t ? sp(x) : sp(-x)`, `v = t ? sp(-x) : sp(x)`: `f(x, t) = e^{-gamma u} v`.
//! The focal rows are computed only with `focal_gamma` (else 0).
//!
//! The backward takes `g_r[b, c]`, the gradient of the loss in row `r`, and recomputes the softmax
//! from `x` (nothing of size `(B, C, S)` is saved): with
//! `a_c = m (g_TP[c] t_c + k g_PS[c] p_c^{k-1})`,
//!
//! `dx_c = p_c (a_c - sum_j p_j a_j + g_NLL[y] + sum_j g_LSE[j]) - t_c g_NLL[y] - g_LSE[c] + g_F f'(x_c, t_c)`,
//!
//! `g_F = t_c ? g_FOCAL_POS[c] : g_FOCAL_NEG[c]`, `f'(x, t) = s e^{-gamma u} (gamma (1 - e^{-u}) v + e^{-u})`,
//! `s = t ? -1 : 1` (using `sigmoid(x) = e^{-sp(-x)}`, `sigmoid(-x) = e^{-sp(x)}`).
//!
//! A non-finite logit makes its [`LSE`] sum non-finite, which is how callers detect one without a
//! pass of their own. Threads: rayon over (batch, block of voxels); f32 runs on AVX-512 or AVX2+FMA
//! over whole vectors of voxels (the channel planes are contiguous), the remainder and f64 on the
//! per-voxel loops that also make the reference.

use num_traits::Float;
use rayon::prelude::*;

use super::SharedOut;

/// Row of `sum m t_c p_c` (the soft true positives).
pub const TP: usize = 0;
/// Row of `sum m p_c^k`.
pub const PS: usize = 1;
/// Row of `sum t_c (-ln p_c)`.
pub const NLL: usize = 2;
/// Row of `sum (-ln p_c)`.
pub const LSE: usize = 3;
/// Row of `sum t_c f(x_c, 1)`.
pub const FOCAL_POS: usize = 4;
/// Row of `sum (1 - t_c) f(x_c, 0)`.
pub const FOCAL_NEG: usize = 5;
/// The number of rows.
pub const ROWS: usize = 6;

/// Voxels per task.
const BLOCK: usize = 4096;

/// The problem: sizes and options (module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelSoftmaxShape {
    pub batch: usize,
    pub classes: usize,
    pub spatial: usize,
    /// The label whose voxels the Dice rows ([`TP`], [`PS`]) leave out; in `0..classes`.
    pub ignore: Option<usize>,
    /// `p^2` in [`PS`] (MONAI's `squared_pred`).
    pub squared: bool,
    /// `gamma` of the focal rows; `None` leaves them 0.
    pub focal_gamma: Option<f64>,
}

impl LabelSoftmaxShape {
    fn check(&self, x: usize, y: usize) {
        assert!(
            x == self.batch * self.classes * self.spatial && y == self.batch * self.spatial,
            "label softmax: {} logits and {y} labels for {self:?}",
            x
        );
        assert!(
            self.ignore.is_none_or(|i| i < self.classes),
            "label softmax: ignore out of range"
        );
    }

    fn sums_len(&self) -> usize {
        self.batch * ROWS * self.classes
    }

    fn blocks(&self) -> usize {
        self.spatial.div_ceil(BLOCK)
    }
}

/// The element types: f32 takes the SIMD path where the CPU has one, f64 the per-voxel loops.
pub trait LabelSoftmaxFloat: Float + Send + Sync {
    /// Adds the sums of whole vectors of voxels `from..` (below `to`) of one batch element to `acc`;
    /// returns the first voxel left for the per-voxel loop.
    fn forward_vectors(
        _s: &LabelSoftmaxShape,
        _x: &[Self],
        _y: &[u32],
        from: usize,
        _to: usize,
        _acc: &mut [f64],
    ) -> usize {
        from
    }

    /// Writes `dx` of whole vectors of voxels `from..` (below `to`) of one batch element into `dx`
    /// (`(C, len)`, voxel `v` at column `v - from`), from its gradients `g` `(ROWS, C)`; returns the
    /// first voxel left for the per-voxel loop.
    fn backward_vectors(
        _s: &LabelSoftmaxShape,
        _x: &[Self],
        _y: &[u32],
        _g: &[Self],
        from: usize,
        _to: usize,
        _dx: &mut [Self],
    ) -> usize {
        from
    }
}

impl LabelSoftmaxFloat for f64 {}

impl LabelSoftmaxFloat for f32 {
    fn forward_vectors(s: &LabelSoftmaxShape, x: &[f32], y: &[u32], from: usize, to: usize, acc: &mut [f64]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = super::simd::Isa::detect() {
            // SAFETY: the ISA was detected; the slices are one batch element's (checked sizes).
            return unsafe { fast::forward_fn(isa)(s, x, y, from, to, acc) };
        }
        from
    }

    fn backward_vectors(
        s: &LabelSoftmaxShape,
        x: &[f32],
        y: &[u32],
        g: &[f32],
        from: usize,
        to: usize,
        dx: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = super::simd::Isa::detect() {
            // SAFETY: as in forward_vectors; dx holds (C, to - from).
            return unsafe { fast::backward_fn(isa)(s, x, y, g, from, to, dx) };
        }
        from
    }
}

fn lit<T: Float>(v: f64) -> T {
    T::from(v).expect("a float converts")
}

/// `ln(1 + e^v)` without overflow.
fn softplus<T: Float>(v: T) -> T {
    v.max(T::zero()) + (-v.abs()).exp().ln_1p()
}

/// `(u, v)` of the focal term at logit `x` and binary target `t` (module doc).
fn focal_uv<T: Float>(x: T, t: bool) -> (T, T) {
    let a = softplus(x);
    if t {
        (a, a - x)
    } else {
        (a - x, a)
    }
}

/// The focal term `f(x, t)`.
fn focal_value<T: Float>(x: T, t: bool, gamma: T) -> T {
    let (u, v) = focal_uv(x, t);
    (-gamma * u).exp() * v
}

/// Its derivative `f'(x, t)`.
fn focal_slope<T: Float>(x: T, t: bool, gamma: T) -> T {
    let (u, v) = focal_uv(x, t);
    let sign = if t { -T::one() } else { T::one() };
    sign * (-gamma * u).exp() * (gamma * -(-u).exp_m1() * v + (-u).exp())
}

/// The softmax at voxel `v` of one batch element's logits `x` `(C, S)` into `p`; returns `lse`.
fn voxel_softmax<T: Float>(x: &[T], spatial: usize, v: usize, p: &mut [T]) -> T {
    let at = |c: usize| x[c * spatial + v];
    let max = (0..p.len()).fold(T::neg_infinity(), |m, c| m.max(at(c)));
    let mut z = T::zero();
    for (c, pc) in p.iter_mut().enumerate() {
        *pc = (at(c) - max).exp();
        z = z + *pc;
    }
    for pc in p.iter_mut() {
        *pc = *pc / z;
    }
    max + z.ln()
}

/// Adds voxel `v`'s summands (module doc) to `acc` `(ROWS, C)`; `p` is scratch of `C`.
fn voxel_forward<T: Float>(s: &LabelSoftmaxShape, x: &[T], y: usize, v: usize, p: &mut [T], acc: &mut [f64]) {
    let classes = s.classes;
    let lse = voxel_softmax(x, s.spatial, v, p);
    let m = if s.ignore == Some(y) { 0.0 } else { 1.0 };
    for (c, &pc) in p.iter().enumerate() {
        let xc = x[c * s.spatial + v];
        let nl = (lse - xc).to_f64().unwrap_or(f64::NAN);
        let pc = pc.to_f64().unwrap_or(f64::NAN);
        let target = y == c;
        if target {
            acc[TP * classes + c] += m * pc;
            acc[NLL * classes + c] += nl;
        }
        acc[PS * classes + c] += m * if s.squared { pc * pc } else { pc };
        acc[LSE * classes + c] += nl;
        if let Some(gamma) = s.focal_gamma {
            let f = focal_value(xc, target, lit(gamma)).to_f64().unwrap_or(f64::NAN);
            acc[if target { FOCAL_POS } else { FOCAL_NEG } * classes + c] += f;
        }
    }
}

/// `dx_c` (module doc) at voxel `v`, handed to `write(c, dx_c)`; `g` `(ROWS, C)` is this batch
/// element's, `g_lse` the sum of its [`LSE`] row; `p`, `a` are scratch of `C`.
#[allow(clippy::too_many_arguments)]
fn voxel_backward<T: Float>(
    s: &LabelSoftmaxShape,
    x: &[T],
    y: usize,
    v: usize,
    g: &[T],
    g_lse: T,
    (p, a): (&mut [T], &mut [T]),
    mut write: impl FnMut(usize, T),
) {
    let classes = s.classes;
    voxel_softmax(x, s.spatial, v, p);
    let m = if s.ignore == Some(y) { T::zero() } else { T::one() };
    let mut dot = T::zero();
    for c in 0..classes {
        let dp = if s.squared { lit::<T>(2.0) * p[c] } else { T::one() };
        let tp = if y == c { g[TP * classes + c] } else { T::zero() };
        a[c] = m * (tp + g[PS * classes + c] * dp);
        dot = dot + p[c] * a[c];
    }
    let g_nll = g[NLL * classes + y];
    let base = g_nll + g_lse - dot;
    for c in 0..classes {
        let target = y == c;
        let mut dx = p[c] * (a[c] + base) - g[LSE * classes + c];
        if target {
            dx = dx - g_nll;
        }
        if let Some(gamma) = s.focal_gamma {
            let row = if target { FOCAL_POS } else { FOCAL_NEG };
            dx = dx + g[row * classes + c] * focal_slope(x[c * s.spatial + v], target, lit(gamma));
        }
        write(c, dx);
    }
}

/// The sums `(B, ROWS, C)` by plain loops over the voxels, one thread.
pub fn label_softmax_sums_reference<T: Float>(s: &LabelSoftmaxShape, x: &[T], y: &[u32]) -> Vec<f64> {
    s.check(x.len(), y.len());
    let (classes, spatial) = (s.classes, s.spatial);
    let mut sums = vec![0.0; s.sums_len()];
    let mut p = vec![T::zero(); classes];
    for b in 0..s.batch {
        let xb = &x[b * classes * spatial..][..classes * spatial];
        let acc = &mut sums[b * ROWS * classes..][..ROWS * classes];
        for v in 0..spatial {
            voxel_forward(s, xb, y[b * spatial + v] as usize, v, &mut p, acc);
        }
    }
    sums
}

/// `dx` `(B, C, S)` from the gradients `g` `(B, ROWS, C)` of the sums, by plain loops, one thread.
pub fn label_softmax_backward_reference<T: Float>(s: &LabelSoftmaxShape, x: &[T], y: &[u32], g: &[f64]) -> Vec<T> {
    s.check(x.len(), y.len());
    assert_eq!(g.len(), s.sums_len(), "label softmax: gradient size");
    let (classes, spatial) = (s.classes, s.spatial);
    let mut dx = vec![T::zero(); x.len()];
    let (mut p, mut a) = (vec![T::zero(); classes], vec![T::zero(); classes]);
    for b in 0..s.batch {
        let (gb, g_lse) = batch_grads::<T>(s, g, b);
        let xb = &x[b * classes * spatial..][..classes * spatial];
        let dxb = &mut dx[b * classes * spatial..][..classes * spatial];
        for v in 0..spatial {
            let y = y[b * spatial + v] as usize;
            voxel_backward(s, xb, y, v, &gb, g_lse, (&mut p, &mut a), |c, d| {
                dxb[c * spatial + v] = d
            });
        }
    }
    dx
}

/// Batch element `b`'s gradients `(ROWS, C)` in `T`, and the sum of their [`LSE`] row.
fn batch_grads<T: Float>(s: &LabelSoftmaxShape, g: &[f64], b: usize) -> (Vec<T>, T) {
    let rc = ROWS * s.classes;
    let gb: Vec<T> = g[b * rc..][..rc].iter().map(|&v| lit(v)).collect();
    let g_lse = gb[LSE * s.classes..][..s.classes].iter().fold(T::zero(), |a, &v| a + v);
    (gb, g_lse)
}

/// The sums `(B, ROWS, C)` (module doc) on rayon's threads, summed in a fixed order.
pub fn label_softmax_sums<T: LabelSoftmaxFloat>(s: &LabelSoftmaxShape, x: &[T], y: &[u32]) -> Vec<f64> {
    s.check(x.len(), y.len());
    let (classes, spatial, blocks) = (s.classes, s.spatial, s.blocks());
    let partials: Vec<Vec<f64>> = (0..s.batch * blocks)
        .into_par_iter()
        .map(|task| {
            let (b, from) = (task / blocks, (task % blocks) * BLOCK);
            let to = (from + BLOCK).min(spatial);
            let xb = &x[b * classes * spatial..][..classes * spatial];
            let yb = &y[b * spatial..][..spatial];
            let mut acc = vec![0.0; ROWS * classes];
            let mut p = vec![T::zero(); classes];
            let rest = T::forward_vectors(s, xb, yb, from, to, &mut acc);
            for (v, &label) in yb.iter().enumerate().take(to).skip(rest) {
                voxel_forward(s, xb, label as usize, v, &mut p, &mut acc);
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0; s.sums_len()];
    for (task, part) in partials.iter().enumerate() {
        let b = task / blocks;
        for (total, v) in sums[b * ROWS * classes..].iter_mut().zip(part) {
            *total += v;
        }
    }
    sums
}

/// `dx` `(B, C, S)` from the gradients `g` `(B, ROWS, C)` of the sums (module doc), on rayon's threads.
pub fn label_softmax_backward<T: LabelSoftmaxFloat>(s: &LabelSoftmaxShape, x: &[T], y: &[u32], g: &[f64]) -> Vec<T> {
    s.check(x.len(), y.len());
    assert_eq!(g.len(), s.sums_len(), "label softmax: gradient size");
    let (classes, spatial, blocks) = (s.classes, s.spatial, s.blocks());
    let grads: Vec<(Vec<T>, T)> = (0..s.batch).map(|b| batch_grads(s, g, b)).collect();
    let mut dx = vec![T::zero(); x.len()];
    let out = SharedOut::new(&mut dx);
    (0..s.batch * blocks).into_par_iter().for_each(|task| {
        let (b, from) = (task / blocks, (task % blocks) * BLOCK);
        let to = (from + BLOCK).min(spatial);
        let len = to - from;
        let xb = &x[b * classes * spatial..][..classes * spatial];
        let yb = &y[b * spatial..][..spatial];
        let (gb, g_lse) = &grads[b];
        let mut local = vec![T::zero(); classes * len];
        let (mut p, mut a) = (vec![T::zero(); classes], vec![T::zero(); classes]);
        for v in T::backward_vectors(s, xb, yb, gb, from, to, &mut local)..to {
            let scratch = (&mut p[..], &mut a[..]);
            voxel_backward(s, xb, yb[v] as usize, v, gb, *g_lse, scratch, |c, d| {
                local[c * len + v - from] = d
            });
        }
        for c in 0..classes {
            // SAFETY: task (b, block) alone writes voxels from..to of batch element b.
            unsafe { out.write((b * classes + c) * spatial + from, &local[c * len..][..len]) };
        }
    });
    dx
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::super::simd::{Avx2, Avx512, F32Simd, Isa};
    use super::{LabelSoftmaxShape, FOCAL_NEG, FOCAL_POS, LSE, NLL, PS, ROWS, TP};

    /// `[y = c]` lane by lane for integer-valued `y`: 1 where `|y - c| < 1/2`.
    #[inline(always)]
    unsafe fn onehot<S: F32Simd>(y: S::V, c: usize) -> S::V {
        let d = S::sub(y, S::splat(c as f32));
        let abs = S::max(d, S::sub(S::splat(0.0), d));
        S::select_gt(S::splat(0.5), abs, S::splat(1.0), S::splat(0.0))
    }

    /// The labels of voxels `v..v + LANES` as f32 lanes (exact below 2^24).
    #[inline(always)]
    unsafe fn labels<S: F32Simd>(y: &[u32], v: usize) -> S::V {
        let mut lanes = [0.0f32; 16];
        for (l, &label) in lanes.iter_mut().zip(&y[v..v + S::LANES]) {
            *l = label as f32;
        }
        S::load(lanes.as_ptr(), S::LANES)
    }

    /// The logits of class `c` at voxels `v..v + LANES`.
    #[inline(always)]
    unsafe fn logits<S: F32Simd>(x: &[f32], spatial: usize, c: usize, v: usize) -> S::V {
        S::load(x[c * spatial + v..][..S::LANES].as_ptr(), S::LANES)
    }

    /// The softmax of voxels `v..v + LANES` into `p` (`C` vectors); returns `lse`.
    #[inline(always)]
    unsafe fn softmax<S: F32Simd>(x: &[f32], spatial: usize, v: usize, p: &mut [S::V]) -> S::V {
        let mut max = logits::<S>(x, spatial, 0, v);
        for c in 1..p.len() {
            max = S::max(max, logits::<S>(x, spatial, c, v));
        }
        let mut z = S::splat(0.0);
        for (c, pc) in p.iter_mut().enumerate() {
            *pc = S::exp(S::sub(logits::<S>(x, spatial, c, v), max));
            z = S::add(z, *pc);
        }
        let inv = S::div(S::splat(1.0), z);
        for pc in p.iter_mut() {
            *pc = S::mul(*pc, inv);
        }
        S::add(max, S::ln(z))
    }

    /// `m`: 0 where the label is `ignore`.
    #[inline(always)]
    unsafe fn counted<S: F32Simd>(s: &LabelSoftmaxShape, y: S::V) -> S::V {
        match s.ignore {
            Some(i) => S::sub(S::splat(1.0), onehot::<S>(y, i)),
            None => S::splat(1.0),
        }
    }

    /// `(u, v)` of the focal term for logits `x` and binary targets `t`: `u = sp(x) - x + t x`,
    /// `v = sp(x) - t x`.
    #[inline(always)]
    unsafe fn focal_uv<S: F32Simd>(x: S::V, t: S::V) -> (S::V, S::V) {
        let a = S::softplus(x);
        let tx = S::mul(t, x);
        (S::add(S::sub(a, x), tx), S::sub(a, tx))
    }

    /// [`super::LabelSoftmaxFloat::forward_vectors`] for one instruction set.
    ///
    /// # Safety
    /// The CPU has `S`'s instruction set.
    #[inline(always)]
    unsafe fn forward<S: F32Simd>(
        s: &LabelSoftmaxShape,
        x: &[f32],
        y: &[u32],
        from: usize,
        to: usize,
        acc: &mut [f64],
    ) -> usize {
        let (classes, spatial, lanes) = (s.classes, s.spatial, S::LANES);
        let end = from + (to - from) / lanes * lanes;
        let zero = S::splat(0.0);
        let mut p = vec![zero; classes];
        let mut sums = vec![zero; ROWS * classes];
        let gamma = s.focal_gamma.map(|g| S::splat(-(g as f32)));
        for v in (from..end).step_by(lanes) {
            let yv = labels::<S>(y, v);
            let lse = softmax::<S>(x, spatial, v, &mut p);
            let m = counted::<S>(s, yv);
            for (c, &pc) in p.iter().enumerate() {
                let at = |row: usize| row * classes + c;
                let xc = logits::<S>(x, spatial, c, v);
                let t = onehot::<S>(yv, c);
                let nl = S::sub(lse, xc);
                let pk = if s.squared { S::mul(pc, pc) } else { pc };
                sums[at(TP)] = S::fma(S::mul(m, t), pc, sums[at(TP)]);
                sums[at(PS)] = S::fma(m, pk, sums[at(PS)]);
                sums[at(NLL)] = S::fma(t, nl, sums[at(NLL)]);
                sums[at(LSE)] = S::add(sums[at(LSE)], nl);
                if let Some(neg_gamma) = gamma {
                    let (u, w) = focal_uv::<S>(xc, t);
                    let f = S::mul(S::exp(S::mul(neg_gamma, u)), w);
                    let tf = S::mul(t, f);
                    sums[at(FOCAL_POS)] = S::add(sums[at(FOCAL_POS)], tf);
                    sums[at(FOCAL_NEG)] = S::add(sums[at(FOCAL_NEG)], S::sub(f, tf));
                }
            }
        }
        for (total, v) in acc.iter_mut().zip(&sums) {
            *total += f64::from(S::sum(*v));
        }
        end
    }

    /// [`super::LabelSoftmaxFloat::backward_vectors`] for one instruction set.
    ///
    /// # Safety
    /// The CPU has `S`'s instruction set.
    #[inline(always)]
    unsafe fn backward<S: F32Simd>(
        s: &LabelSoftmaxShape,
        x: &[f32],
        y: &[u32],
        g: &[f32],
        from: usize,
        to: usize,
        dx: &mut [f32],
    ) -> usize {
        let (classes, spatial, lanes, len) = (s.classes, s.spatial, S::LANES, to - from);
        let end = from + len / lanes * lanes;
        let grad = |row: usize, c: usize| S::splat(g[row * classes + c]);
        let g_lse = S::splat(g[LSE * classes..][..classes].iter().sum());
        let zero = S::splat(0.0);
        let (mut p, mut a) = (vec![zero; classes], vec![zero; classes]);
        let gamma = s.focal_gamma.map(|g| g as f32);
        for v in (from..end).step_by(lanes) {
            let yv = labels::<S>(y, v);
            softmax::<S>(x, spatial, v, &mut p);
            let m = counted::<S>(s, yv);
            let (mut g_nll, mut dot) = (zero, zero);
            for c in 0..classes {
                let t = onehot::<S>(yv, c);
                g_nll = S::fma(t, grad(NLL, c), g_nll);
                let dp = if s.squared {
                    S::mul(S::splat(2.0), p[c])
                } else {
                    S::splat(1.0)
                };
                a[c] = S::mul(m, S::fma(t, grad(TP, c), S::mul(grad(PS, c), dp)));
                dot = S::fma(p[c], a[c], dot);
            }
            let base = S::sub(S::add(g_nll, g_lse), dot);
            for c in 0..classes {
                let t = onehot::<S>(yv, c);
                let mut d = S::sub(S::mul(p[c], S::add(a[c], base)), S::fma(t, g_nll, grad(LSE, c)));
                if let Some(gamma) = gamma {
                    let xc = logits::<S>(x, spatial, c, v);
                    let (u, w) = focal_uv::<S>(xc, t);
                    let e = S::exp(S::mul(S::splat(-gamma), u));
                    let eu = S::exp(S::sub(zero, u));
                    let slope = S::mul(e, S::fma(S::mul(S::splat(gamma), S::sub(S::splat(1.0), eu)), w, eu));
                    let (pos, neg) = (grad(FOCAL_POS, c), grad(FOCAL_NEG, c));
                    let g_f = S::fma(t, S::sub(pos, neg), neg);
                    let sign = S::sub(S::splat(1.0), S::add(t, t));
                    d = S::fma(S::mul(g_f, sign), slope, d);
                }
                S::store(dx[c * len + v - from..][..lanes].as_mut_ptr(), d, lanes);
            }
        }
        end
    }

    macro_rules! instantiate {
        ($forward:ident, $backward:ident, $simd:ty, $feature:literal) => {
            /// [`forward`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`forward`].
            #[target_feature(enable = $feature)]
            unsafe fn $forward(
                s: &LabelSoftmaxShape,
                x: &[f32],
                y: &[u32],
                from: usize,
                to: usize,
                acc: &mut [f64],
            ) -> usize {
                forward::<$simd>(s, x, y, from, to, acc)
            }

            /// [`backward`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`backward`].
            #[target_feature(enable = $feature)]
            unsafe fn $backward(
                s: &LabelSoftmaxShape,
                x: &[f32],
                y: &[u32],
                g: &[f32],
                from: usize,
                to: usize,
                dx: &mut [f32],
            ) -> usize {
                backward::<$simd>(s, x, y, g, from, to, dx)
            }
        };
    }
    instantiate!(forward_avx512, backward_avx512, Avx512, "avx512f");
    instantiate!(forward_avx2, backward_avx2, Avx2, "avx2,fma");

    /// [`forward`] for one instruction set.
    pub(super) type ForwardFn = unsafe fn(&LabelSoftmaxShape, &[f32], &[u32], usize, usize, &mut [f64]) -> usize;
    /// [`backward`] for one instruction set.
    pub(super) type BackwardFn =
        unsafe fn(&LabelSoftmaxShape, &[f32], &[u32], &[f32], usize, usize, &mut [f32]) -> usize;

    pub(super) fn forward_fn(isa: Isa) -> ForwardFn {
        match isa {
            Isa::Avx512 => forward_avx512,
            Isa::Avx2Fma => forward_avx2,
        }
    }

    pub(super) fn backward_fn(isa: Isa) -> BackwardFn {
        match isa {
            Isa::Avx512 => backward_avx512,
            Isa::Avx2Fma => backward_avx2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    /// A random problem: logits (scaled by `scale`) in f64 and labels.
    fn case(s: &LabelSoftmaxShape, scale: f64, seed: u64) -> (Vec<f64>, Vec<u32>) {
        let x: Vec<f64> = values(s.batch * s.classes * s.spatial, seed)
            .iter()
            .map(|v| v * scale)
            .collect();
        let y = values(s.batch * s.spatial, seed + 1)
            .iter()
            .map(|v| (((v + 1.0) / 2.0 * s.classes as f64) as u32).min(s.classes as u32 - 1))
            .collect();
        (x, y)
    }

    fn close(fast: &[f64], slow: &[f64], tol: f64) -> bool {
        fast.len() == slow.len()
            && fast
                .iter()
                .zip(slow)
                .all(|(a, b)| (a - b).abs() <= tol * (1.0 + b.abs()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn threaded_and_simd_paths_match_the_reference(
            batch in 1usize..3, classes in 2usize..7, spatial in 1usize..300, seed in 0u64..1000,
            scale in 0.5f64..12.0, ignore in proptest::option::of(0usize..6), squared in any::<bool>(),
            gamma in proptest::option::of(0.0f64..4.0),
        ) {
            let s = LabelSoftmaxShape {
                batch, classes, spatial, ignore: ignore.filter(|&i| i < classes), squared, focal_gamma: gamma,
            };
            let (x, y) = case(&s, scale, seed);
            let g = values(s.sums_len(), seed + 2);
            let sums = label_softmax_sums_reference(&s, &x, &y);
            let dx = label_softmax_backward_reference(&s, &x, &y, &g);
            prop_assert!(close(&label_softmax_sums(&s, &x, &y), &sums, 1e-12));
            prop_assert!(close(&label_softmax_backward(&s, &x, &y, &g), &dx, 1e-12));
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
            let sums = label_softmax_sums_reference(&s, &x64, &y);
            let dx = label_softmax_backward_reference(&s, &x64, &y, &g);
            let fast = label_softmax_sums(&s, &x32, &y);
            prop_assert!(close(&fast, &sums, 2e-5), "{fast:?}\n{sums:?}");
            let fast: Vec<f64> = label_softmax_backward(&s, &x32, &y, &g).iter().map(|&v| f64::from(v)).collect();
            prop_assert!(close(&fast, &dx, 2e-5), "{fast:?}\n{dx:?}");
        }
    }

    #[test]
    fn sums_of_a_two_class_voxel_by_hand() {
        // Logits (0, ln 3) at one voxel labelled 1: p = (1/4, 3/4), lse = ln 4.
        let s = LabelSoftmaxShape {
            batch: 1,
            classes: 2,
            spatial: 1,
            ignore: None,
            squared: true,
            focal_gamma: Some(0.0),
        };
        let sums = label_softmax_sums(&s, &[0.0, 3f64.ln()], &[1]);
        let (l4, l3) = (4f64.ln(), 3f64.ln());
        let bce = |x: f64, t: f64| x * (1.0 - t) + (1.0 + (-x).exp()).ln();
        let expected = [
            0.0,
            0.75,
            1.0 / 16.0,
            9.0 / 16.0,
            0.0,
            l4 - l3,
            l4,
            l4 - l3,
            0.0,
            bce(l3, 1.0),
            bce(0.0, 0.0),
            0.0,
        ];
        assert!(close(&sums, &expected, 1e-12), "{sums:?}");
    }

    #[test]
    fn a_non_finite_logit_shows_in_the_lse_row() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let s = LabelSoftmaxShape {
                batch: 1,
                classes: 3,
                spatial: 40,
                ignore: None,
                squared: false,
                focal_gamma: None,
            };
            for at in [5, 37, 85] {
                let mut x = vec![0.5f32; 120];
                x[at] = bad;
                let sums = label_softmax_sums(&s, &x, &[0; 40]);
                assert!(
                    sums[LSE * 3..][..3].iter().any(|v| !v.is_finite()),
                    "{bad} at {at}: {sums:?}"
                );
            }
        }
    }
}
