//! Normalisation: statistics over groups of elements, then an affine map; instance, group, batch and
//! layer norm with PyTorch's meaning.
//!
//! **Channel norms** ([`NormGeometry`]). For `x` of shape `(N, C, S)` (`S` the product of the spatial
//! sizes) every element belongs to one statistics group: with [`StatsOver::Groups`]`(G)` the
//! `(C / G) S` elements of sample `n` and channels `g C/G .. (g + 1) C/G` (group norm; instance norm is
//! `G = C`), with [`StatsOver::Channels`] the `N S` elements of channel `c` (batch norm). With the
//! group's mean `mu`, biased variance `var = mean((x - mu)^2)` and `rstd = 1 / sqrt(var + eps)`:
//!
//! `xhat = (x - mu) rstd`, `y[n, c, s] = xhat[n, c, s] w[c] + b[c]`
//!
//! (`w = 1`, `b = 0` without affine). Backward, with `g = dy w[c]` and means over the statistics group:
//!
//! `dx = rstd (g - mean(g) - xhat mean(g xhat))`, `dw[c] = sum_{n, s} dy xhat`, `db[c] = sum_{n, s} dy`;
//!
//! when the statistics are constants (batch norm in eval mode, with running statistics) `dx = rstd g`.
//!
//! **Layer norm** ([`RowGeometry`]). For `x` of shape `(M, K)` (`K` the product of `normalized_shape`,
//! `M` of the leading dims) the statistics are per row and the affine is elementwise:
//! `y[m, k] = xhat[m, k] w[k] + b[k]`; `dx` by the same formula with `g = dy w[k]` and means over the
//! row, `dw[k] = sum_m dy xhat`, `db[k] = sum_m dy`.
//!
//! The fast path accumulates in f64: statistics per chunk of [`CHUNK`] elements by two passes over
//! cache-resident data (mean, then squared deviations), chunks merged by Chan's pairwise formula
//! (`M2 = M2a + M2b + d^2 na nb / n`), so one read of `x` from memory gives two-pass accuracy. Every
//! pass runs on rayon over blocks of at most [`BLOCK`] elements cut at plane boundaries, so a few
//! large planes and many small ones both spread over the threads. The backward reads `x` and `dy`
//! twice: pass 1 sums `dy` and `dy (x - mu)` per `(n, c)` plane (per row for layer norm), from which
//! the group means of `g` and `g xhat`, `dw` and `db` follow; pass 2 writes `dx`. The `*_reference`
//! functions are the naive loops (two-pass statistics per group, the formulas above element by
//! element) the fast path is tested against.

use std::ops::Range;

use rayon::prelude::*;

/// Elements per parallel task.
pub const BLOCK: usize = 1 << 15;
/// Elements per cache-resident two-pass statistics chunk.
pub const CHUNK: usize = 1024;
/// Independent accumulators of a sum (lets the compiler vectorise f64 sums).
const LANES: usize = 8;

/// The element types the kernels read and write (f32, f64); arithmetic is in f64.
pub trait NormElement: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl NormElement for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl NormElement for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Which elements of `(N, C, S)` share statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsOver {
    /// Per sample and group of `C / G` consecutive channels (group norm; instance norm is `G = C`).
    Groups(usize),
    /// Per channel, over the batch and the spatial positions (batch norm).
    Channels,
}

/// Shape of a channel norm: `x` is `(batch, channels, spatial)` in row-major order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeometry {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub stats: StatsOver,
}

impl NormGeometry {
    /// Checks the grouping; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self.stats {
            StatsOver::Groups(g) if g == 0 || !self.channels.is_multiple_of(g) => {
                Err(format!("{} channels cannot be split into {g} groups", self.channels))
            }
            _ => Ok(()),
        }
    }

    /// Elements of `x`.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(n, c)` planes of `S` elements.
    fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Statistics groups: `N G`, or `C` for batch norm.
    pub fn stats_len(&self) -> usize {
        match self.stats {
            StatsOver::Groups(g) => self.batch * g,
            StatsOver::Channels => self.channels,
        }
    }

    /// Elements per statistics group.
    pub fn group_len(&self) -> usize {
        match self.stats {
            StatsOver::Groups(g) => self.channels / g * self.spatial,
            StatsOver::Channels => self.batch * self.spatial,
        }
    }

    /// The statistics group of plane `n C + c`.
    fn stat_of(&self, plane: usize) -> usize {
        let (n, c) = (plane / self.channels, plane % self.channels);
        match self.stats {
            StatsOver::Groups(g) => n * g + c / (self.channels / g),
            StatsOver::Channels => c,
        }
    }

    fn check(&self, what: &str, x: usize, mean: &[f64], rstd: &[f64], weight: Option<usize>) {
        assert!(
            self.validate().is_ok()
                && x == self.len()
                && mean.len() == self.stats_len()
                && rstd.len() == self.stats_len()
                && weight.is_none_or(|w| w == self.channels),
            "{what}: buffer sizes"
        );
    }
}

/// Shape of a layer norm: `x` is `(rows, len)`, normalised per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGeometry {
    pub rows: usize,
    pub len: usize,
}

impl RowGeometry {
    fn check(&self, what: &str, x: usize, mean: &[f64], rstd: &[f64], weight: Option<usize>) {
        assert!(
            x == self.rows * self.len
                && mean.len() == self.rows
                && rstd.len() == self.rows
                && weight.is_none_or(|w| w == self.len),
            "{what}: buffer sizes"
        );
    }
}

/// Mean and biased variance of each statistics group.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

impl Moments {
    /// `1 / sqrt(var + eps)` per group.
    pub fn rstd(&self, eps: f64) -> Vec<f64> {
        self.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect()
    }
}

/// Count, mean and sum of squared deviations of some elements.
#[derive(Clone, Copy, Debug)]
struct Partial {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Partial {
    const EMPTY: Partial = Partial {
        n: 0.0,
        mean: 0.0,
        m2: 0.0,
    };

    /// Chan et al.'s pairwise merge.
    fn merge(self, o: Partial) -> Partial {
        if o.n == 0.0 {
            return self;
        }
        if self.n == 0.0 {
            return o;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        Partial {
            n,
            mean: self.mean + d * (o.n / n),
            m2: self.m2 + o.m2 + d * d * (self.n * o.n / n),
        }
    }

    /// Two passes per cache-sized chunk, chunks merged.
    fn of<T: NormElement>(xs: &[T]) -> Partial {
        xs.chunks(CHUNK)
            .map(|c| {
                let n = c.len() as f64;
                let mean = lane_sum(c, |v| v) / n;
                let m2 = lane_sum(c, |v| (v - mean) * (v - mean));
                Partial { n, mean, m2 }
            })
            .fold(Partial::EMPTY, Partial::merge)
    }

    fn moments(parts: impl Iterator<Item = Partial>) -> (f64, f64) {
        let p = parts.fold(Partial::EMPTY, Partial::merge);
        if p.n == 0.0 {
            (f64::NAN, f64::NAN)
        } else {
            (p.mean, p.m2 / p.n)
        }
    }
}

/// `sum f(x)` over `xs` with [`LANES`] accumulators.
#[inline(always)]
fn lane_sum<T: NormElement>(xs: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v.to_f64());
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v.to_f64())).sum();
    acc.iter().sum::<f64>() + tail
}

/// `[sum dy w, sum dy w (x - mu)]` over equally long slices (`w = 1` when absent).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn grad_sums<T: NormElement>(dy: &[T], x: &[T], w: Option<&[T]>, mu: f64) -> [f64; 2] {
    let (mut s, mut sx) = ([0.0; LANES], [0.0; LANES]);
    let lanes = dy.chunks_exact(LANES).zip(x.chunks_exact(LANES));
    match w {
        None => {
            for (d, x) in lanes {
                for l in 0..LANES {
                    let g = d[l].to_f64();
                    s[l] += g;
                    sx[l] += g * (x[l].to_f64() - mu);
                }
            }
        }
        Some(w) => {
            for ((d, x), w) in lanes.zip(w.chunks_exact(LANES)) {
                for l in 0..LANES {
                    let g = d[l].to_f64() * w[l].to_f64();
                    s[l] += g;
                    sx[l] += g * (x[l].to_f64() - mu);
                }
            }
        }
    }
    let mut out = [s.iter().sum::<f64>(), sx.iter().sum::<f64>()];
    for i in dy.len() - dy.len() % LANES..dy.len() {
        let g = dy[i].to_f64() * w.map_or(1.0, |w| w[i].to_f64());
        out[0] += g;
        out[1] += g * (x[i].to_f64() - mu);
    }
    out
}

fn add2(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

/// `f(plane, elements)` over the blocks (at most [`BLOCK`] elements) of each of `planes` planes of
/// `plane_len` elements, in parallel; the block results of each plane merged in order.
fn per_plane<R: Copy + Send>(
    planes: usize,
    plane_len: usize,
    f: impl Fn(usize, Range<usize>) -> R + Sync,
    merge: impl Fn(R, R) -> R,
    empty: R,
) -> Vec<R> {
    let blocks = plane_len.div_ceil(BLOCK).max(1);
    let min_len = (BLOCK / plane_len.max(1)).max(1);
    let parts: Vec<R> = (0..planes * blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .map(|i| {
            let (p, b) = (i / blocks, i % blocks);
            let (lo, hi) = ((b * BLOCK).min(plane_len), ((b + 1) * BLOCK).min(plane_len));
            f(p, p * plane_len + lo..p * plane_len + hi)
        })
        .collect();
    parts
        .chunks(blocks)
        .map(|c| c.iter().fold(empty, |a, &r| merge(a, r)))
        .collect()
}

/// Calls `f(plane, start, piece)` for the pieces of `out` (planes of `plane_len` elements, flat) cut
/// at block and plane boundaries, in parallel; `start` is the flat index of `piece[0]`.
fn par_pieces<T: Send>(out: &mut [T], plane_len: usize, f: impl Fn(usize, usize, &mut [T]) + Sync) {
    if plane_len == 0 {
        return;
    }
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(b, block)| {
        let (mut start, mut rest) = (b * BLOCK, block);
        while !rest.is_empty() {
            let p = start / plane_len;
            let take = ((p + 1) * plane_len - start).min(rest.len());
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(take);
            f(p, start, piece);
            start += take;
            rest = tail;
        }
    });
}

/// Mean and biased variance of each statistics group of `x`.
pub fn norm_moments<T: NormElement>(g: &NormGeometry, x: &[T]) -> Moments {
    assert!(g.validate().is_ok() && x.len() == g.len(), "norm_moments: buffer sizes");
    let planes = per_plane(
        g.planes(),
        g.spatial,
        |_, r| Partial::of(&x[r]),
        Partial::merge,
        Partial::EMPTY,
    );
    let (mean, var) = match g.stats {
        StatsOver::Groups(groups) => {
            let cg = g.channels / groups;
            (0..g.batch * groups)
                .map(|s| Partial::moments(planes[s * cg..(s + 1) * cg].iter().copied()))
                .unzip()
        }
        StatsOver::Channels => (0..g.channels)
            .map(|c| Partial::moments((0..g.batch).map(|n| planes[n * g.channels + c])))
            .unzip(),
    };
    Moments { mean, var }
}

/// Largest statistics group (elements) that one task handles whole, so that its second read of `x`
/// (and `dy`) comes from the cache.
const FUSE_MAX: usize = 1 << 18;

/// `Some(C / G)` when every statistics group is one contiguous run of planes that fits the fused
/// path and there are enough groups to keep the threads busy.
fn fused_group_channels(g: &NormGeometry) -> Option<usize> {
    match g.stats {
        StatsOver::Groups(groups)
            if (1..=FUSE_MAX).contains(&g.group_len()) && g.stats_len() >= 2 * rayon::current_num_threads() =>
        {
            Some(g.channels / groups)
        }
        _ => None,
    }
}

/// [`norm_moments`] and then [`norm_forward`] with `rstd = 1 / sqrt(var + eps)`; returns the
/// moments. Small groups are done one group per task, reading `x` from memory once.
pub fn norm_forward_training<T: NormElement>(
    g: &NormGeometry,
    x: &[T],
    eps: f64,
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    y: &mut [T],
) -> Moments {
    assert!(
        g.validate().is_ok() && x.len() == g.len() && y.len() == g.len(),
        "norm_forward_training: buffer sizes"
    );
    let Some(cg) = fused_group_channels(g) else {
        let moments = norm_moments(g, x);
        norm_forward(g, x, &moments.mean, &moments.rstd(eps), weight, bias, y);
        return moments;
    };
    assert!(
        weight.is_none_or(|w| w.len() == g.channels) && bias.is_none_or(|b| b.len() == g.channels),
        "norm_forward_training: buffer sizes"
    );
    let gl = g.group_len();
    let (mean, var) = y
        .par_chunks_mut(gl)
        .zip(x.par_chunks(gl))
        .enumerate()
        .map(|(st, (ys, xs))| {
            let (mu, var) = Partial::moments(std::iter::once(Partial::of(xs)));
            let r = 1.0 / (var + eps).sqrt();
            for (j, (ys, xs)) in ys.chunks_mut(g.spatial).zip(xs.chunks(g.spatial)).enumerate() {
                let c = (st * cg + j) % g.channels;
                let scale = r * weight.map_or(1.0, |w| w[c].to_f64());
                let shift = bias.map_or(0.0, |b| b[c].to_f64());
                for (y, &x) in ys.iter_mut().zip(xs) {
                    *y = T::from_f64((x.to_f64() - mu) * scale + shift);
                }
            }
            (mu, var)
        })
        .unzip();
    Moments { mean, var }
}

/// `y = (x - mean) rstd w[c] + b[c]` with the statistics of each element's group.
pub fn norm_forward<T: NormElement>(
    g: &NormGeometry,
    x: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    g.check("norm_forward", x.len(), mean, rstd, weight.map(<[T]>::len));
    assert!(
        y.len() == g.len() && bias.is_none_or(|b| b.len() == g.channels),
        "norm_forward: buffer sizes"
    );
    par_pieces(y, g.spatial, |p, start, ys| {
        let (st, c) = (g.stat_of(p), p % g.channels);
        let scale = rstd[st] * weight.map_or(1.0, |w| w[c].to_f64());
        let shift = bias.map_or(0.0, |b| b[c].to_f64());
        let (mu, xs) = (mean[st], &x[start..start + ys.len()]);
        for (y, &x) in ys.iter_mut().zip(xs) {
            *y = T::from_f64((x.to_f64() - mu) * scale + shift);
        }
    });
}

/// The gradients a backward writes (overwritten); `None` where not wanted.
pub struct NormGrads<'a, T> {
    pub dx: Option<&'a mut [T]>,
    pub dweight: Option<&'a mut [T]>,
    pub dbias: Option<&'a mut [T]>,
}

/// Gradients of the channel norm from `dy`, the saved `mean` and `rstd` of each group, and the
/// weight. `constant_stats`: the statistics did not come from `x` (batch norm in eval mode).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward<T: NormElement>(
    g: &NormGeometry,
    x: &[T],
    dy: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    constant_stats: bool,
    grads: NormGrads<'_, T>,
) {
    g.check("norm_backward", x.len(), mean, rstd, weight.map(<[T]>::len));
    assert!(
        dy.len() == g.len() && grads.dx.as_ref().is_none_or(|dx| dx.len() == g.len()),
        "norm_backward: buffer sizes"
    );
    let w = |c: usize| weight.map_or(1.0, |w| w[c].to_f64());
    let NormGrads { dx, dweight, dbias } = grads;
    let (sums, dx) = match (fused_group_channels(g), dx) {
        (Some(cg), Some(dx)) if !constant_stats => {
            // Each group in one task: its second read of x and dy comes from the cache.
            let (gl, s) = (g.group_len(), g.spatial);
            let mut sums = vec![[0.0; 2]; g.planes()];
            dx.par_chunks_mut(gl)
                .zip(sums.par_chunks_mut(cg))
                .enumerate()
                .for_each(|(st, (dx, sums))| {
                    let (base, mu, r) = (st * gl, mean[st], rstd[st]);
                    let (mut mg, mut mgx) = (0.0, 0.0);
                    for (j, sum) in sums.iter_mut().enumerate() {
                        let at = base + j * s..base + (j + 1) * s;
                        *sum = grad_sums(&dy[at.clone()], &x[at], None, mu);
                        let wc = w((st * cg + j) % g.channels);
                        mg += wc * sum[0] / gl as f64;
                        mgx += wc * sum[1] * r / gl as f64;
                    }
                    for (j, out) in dx.chunks_mut(s).enumerate() {
                        let at = base + j * s..base + (j + 1) * s;
                        let a = r * w((st * cg + j) % g.channels);
                        write_dx(out, &dy[at.clone()], &x[at], mu, [a, r * r * mgx, r * mg]);
                    }
                });
            (sums, None)
        }
        (_, dx) => {
            // Pass 1: per plane, sum dy and sum dy (x - mu).
            let sums = per_plane(
                g.planes(),
                g.spatial,
                |p, r| grad_sums(&dy[r.clone()], &x[r], None, mean[g.stat_of(p)]),
                add2,
                [0.0; 2],
            );
            (sums, dx)
        }
    };
    let channel_sum = |f: &dyn Fn(usize) -> f64| -> Vec<T> {
        (0..g.channels)
            .map(|c| T::from_f64((0..g.batch).map(|n| f(n * g.channels + c)).sum()))
            .collect()
    };
    if let Some(dbias) = dbias {
        assert_eq!(dbias.len(), g.channels, "norm_backward: buffer sizes");
        dbias.copy_from_slice(&channel_sum(&|p| sums[p][0]));
    }
    if let Some(dweight) = dweight {
        assert_eq!(dweight.len(), g.channels, "norm_backward: buffer sizes");
        dweight.copy_from_slice(&channel_sum(&|p| sums[p][1] * rstd[g.stat_of(p)]));
    }
    let Some(dx) = dx else { return };
    // Group means of g = dy w and of g xhat.
    let (mut mg, mut mgx) = (vec![0.0; g.stats_len()], vec![0.0; g.stats_len()]);
    if !constant_stats {
        for (p, s) in sums.iter().enumerate() {
            let (st, wc) = (g.stat_of(p), w(p % g.channels));
            mg[st] += wc * s[0];
            mgx[st] += wc * s[1] * rstd[st];
        }
        let count = g.group_len() as f64;
        mg.iter_mut().chain(mgx.iter_mut()).for_each(|v| *v /= count);
    }
    // Pass 2: dx = rstd (dy w - mg - xhat mgx) = dy a - (x - mu) b - c.
    par_pieces(dx, g.spatial, |p, start, out| {
        let st = g.stat_of(p);
        let r = rstd[st];
        let at = start..start + out.len();
        let coef = [r * w(p % g.channels), r * r * mgx[st], r * mg[st]];
        write_dx(out, &dy[at.clone()], &x[at], mean[st], coef);
    });
}

/// `dx = dy a - (x - mu) b - c` with `[a, b, c] = coef`.
#[inline(always)]
fn write_dx<T: NormElement>(out: &mut [T], dy: &[T], x: &[T], mu: f64, [a, b, c]: [f64; 3]) {
    for ((d, &dy), &x) in out.iter_mut().zip(dy).zip(x) {
        *d = T::from_f64(dy.to_f64() * a - (x.to_f64() - mu) * b - c);
    }
}

/// Mean and biased variance of each row.
pub fn row_moments<T: NormElement>(g: &RowGeometry, x: &[T]) -> Moments {
    assert_eq!(x.len(), g.rows * g.len, "row_moments: buffer sizes");
    let (mean, var) = per_plane(g.rows, g.len, |_, r| Partial::of(&x[r]), Partial::merge, Partial::EMPTY)
        .into_iter()
        .map(|p| Partial::moments(std::iter::once(p)))
        .unzip();
    Moments { mean, var }
}

/// `y[m, k] = (x - mean[m]) rstd[m] w[k] + b[k]`.
pub fn layer_norm_forward<T: NormElement>(
    g: &RowGeometry,
    x: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    g.check("layer_norm_forward", x.len(), mean, rstd, weight.map(<[T]>::len));
    assert!(
        y.len() == x.len() && bias.is_none_or(|b| b.len() == g.len),
        "layer_norm_forward: buffer sizes"
    );
    par_pieces(y, g.len, |m, start, ys| {
        let (r, mu, k0) = (rstd[m], mean[m], start - m * g.len);
        let xs = &x[start..start + ys.len()];
        let range = k0..k0 + ys.len();
        match (weight, bias) {
            (Some(w), Some(b)) => {
                for (((y, &x), &w), &b) in ys.iter_mut().zip(xs).zip(&w[range.clone()]).zip(&b[range]) {
                    *y = T::from_f64((x.to_f64() - mu) * r * w.to_f64() + b.to_f64());
                }
            }
            _ => {
                for (k, (y, &x)) in range.zip(ys.iter_mut().zip(xs)) {
                    let (w, b) = (
                        weight.map_or(1.0, |w| w[k].to_f64()),
                        bias.map_or(0.0, |b| b[k].to_f64()),
                    );
                    *y = T::from_f64((x.to_f64() - mu) * r * w + b);
                }
            }
        }
    });
}

/// Gradients of the layer norm from `dy`, the saved `mean` and `rstd` of each row, and the weight.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: NormElement>(
    g: &RowGeometry,
    x: &[T],
    dy: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    grads: NormGrads<'_, T>,
) {
    g.check("layer_norm_backward", x.len(), mean, rstd, weight.map(<[T]>::len));
    assert_eq!(dy.len(), x.len(), "layer_norm_backward: buffer sizes");
    if grads.dweight.is_some() || grads.dbias.is_some() {
        let (dw, db) = column_sums(g, x, dy, mean, rstd);
        if let Some(dweight) = grads.dweight {
            assert_eq!(dweight.len(), g.len, "layer_norm_backward: buffer sizes");
            dweight.iter_mut().zip(dw).for_each(|(d, v)| *d = T::from_f64(v));
        }
        if let Some(dbias) = grads.dbias {
            assert_eq!(dbias.len(), g.len, "layer_norm_backward: buffer sizes");
            dbias.iter_mut().zip(db).for_each(|(d, v)| *d = T::from_f64(v));
        }
    }
    let Some(dx) = grads.dx else { return };
    assert_eq!(dx.len(), x.len(), "layer_norm_backward: buffer sizes");
    // Pass 1: per row, sum g and sum g (x - mu), with g = dy w.
    let sums = per_plane(
        g.rows,
        g.len,
        |m, r| {
            let k = r.start - m * g.len..r.end - m * g.len;
            grad_sums(&dy[r.clone()], &x[r], weight.map(|w| &w[k]), mean[m])
        },
        add2,
        [0.0; 2],
    );
    let count = g.len as f64;
    // Pass 2: dx = rstd (g - mean(g) - xhat mean(g xhat)).
    par_pieces(dx, g.len, |m, start, out| {
        let (r, mu, k0, end) = (rstd[m], mean[m], start - m * g.len, start + out.len());
        let (mg, b) = (sums[m][0] / count, r * r * sums[m][1] * r / count);
        for (k, ((d, &dy), &x)) in (k0..).zip(out.iter_mut().zip(&dy[start..end]).zip(&x[start..end])) {
            let gk = dy.to_f64() * weight.map_or(1.0, |w| w[k].to_f64());
            *d = T::from_f64(r * (gk - mg) - (x.to_f64() - mu) * b);
        }
    });
}

/// `(sum_m dy xhat, sum_m dy)` per column, in parallel over blocks of rows and columns.
fn column_sums<T: NormElement>(g: &RowGeometry, x: &[T], dy: &[T], mean: &[f64], rstd: &[f64]) -> (Vec<f64>, Vec<f64>) {
    const COLS: usize = 4096;
    let col_blocks = g.len.div_ceil(COLS).max(1);
    let rows_per_task = (BLOCK / g.len.clamp(1, COLS)).max(1);
    let row_groups = g.rows.div_ceil(rows_per_task);
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (0..row_groups * col_blocks)
        .into_par_iter()
        .map(|i| {
            let (rg, cb) = (i / col_blocks, i % col_blocks);
            let cols = cb * COLS..((cb + 1) * COLS).min(g.len);
            let (mut dw, mut db) = (vec![0.0; cols.len()], vec![0.0; cols.len()]);
            for m in rg * rows_per_task..((rg + 1) * rows_per_task).min(g.rows) {
                let (r, mu) = (rstd[m], mean[m]);
                let at = m * g.len + cols.start..m * g.len + cols.end;
                for (((w, b), &dy), &x) in dw.iter_mut().zip(&mut db).zip(&dy[at.clone()]).zip(&x[at]) {
                    *w += dy.to_f64() * (x.to_f64() - mu) * r;
                    *b += dy.to_f64();
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0; g.len], vec![0.0; g.len]);
    for (i, (pw, pb)) in parts.into_iter().enumerate() {
        let start = (i % col_blocks) * COLS;
        dw[start..start + pw.len()]
            .iter_mut()
            .zip(pw)
            .for_each(|(a, v)| *a += v);
        db[start..start + pb.len()]
            .iter_mut()
            .zip(pb)
            .for_each(|(a, v)| *a += v);
    }
    (dw, db)
}

/// The flat indices of statistics group `st`'s elements.
fn members(g: &NormGeometry, st: usize) -> Vec<usize> {
    (0..g.planes())
        .filter(|&p| g.stat_of(p) == st)
        .flat_map(|p| p * g.spatial..(p + 1) * g.spatial)
        .collect()
}

/// Two-pass mean and biased variance of the given elements.
fn two_pass<T: NormElement>(x: &[T], idx: impl Iterator<Item = usize> + Clone) -> (f64, f64) {
    let n = idx.clone().count() as f64;
    let mean = idx.clone().map(|i| x[i].to_f64()).sum::<f64>() / n;
    let var = idx.map(|i| (x[i].to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// [`norm_moments`] by two passes over each group's elements.
pub fn norm_moments_reference<T: NormElement>(g: &NormGeometry, x: &[T]) -> Moments {
    let (mean, var) = (0..g.stats_len())
        .map(|st| two_pass(x, members(g, st).into_iter()))
        .unzip();
    Moments { mean, var }
}

/// [`norm_forward`] element by element.
pub fn norm_forward_reference<T: NormElement>(
    g: &NormGeometry,
    x: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    for (i, y) in y.iter_mut().enumerate() {
        let (p, c) = (i / g.spatial, i / g.spatial % g.channels);
        let st = g.stat_of(p);
        let xhat = (x[i].to_f64() - mean[st]) * rstd[st];
        *y = T::from_f64(xhat * weight.map_or(1.0, |w| w[c].to_f64()) + bias.map_or(0.0, |b| b[c].to_f64()));
    }
}

/// [`norm_backward`] by the formulas of the module doc, group by group.
#[allow(clippy::too_many_arguments)]
pub fn norm_backward_reference<T: NormElement>(
    g: &NormGeometry,
    x: &[T],
    dy: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    constant_stats: bool,
    mut grads: NormGrads<'_, T>,
) {
    let channel = |i: usize| i / g.spatial % g.channels;
    let w = |i: usize| weight.map_or(1.0, |w| w[channel(i)].to_f64());
    let stat = |i: usize| g.stat_of(i / g.spatial);
    let xhat = |i: usize| (x[i].to_f64() - mean[stat(i)]) * rstd[stat(i)];
    if let Some(dx) = grads.dx.as_deref_mut() {
        for (st, &r) in rstd.iter().enumerate() {
            let idx = members(g, st);
            let n = idx.len() as f64;
            let mg = idx.iter().map(|&i| dy[i].to_f64() * w(i)).sum::<f64>() / n;
            let mgx = idx.iter().map(|&i| dy[i].to_f64() * w(i) * xhat(i)).sum::<f64>() / n;
            for &i in &idx {
                let gi = dy[i].to_f64() * w(i);
                dx[i] = T::from_f64(if constant_stats {
                    r * gi
                } else {
                    r * (gi - mg - xhat(i) * mgx)
                });
            }
        }
    }
    for c in 0..g.channels {
        let idx: Vec<usize> = (0..g.len()).filter(|&i| channel(i) == c).collect();
        if let Some(dw) = grads.dweight.as_deref_mut() {
            dw[c] = T::from_f64(idx.iter().map(|&i| dy[i].to_f64() * xhat(i)).sum());
        }
        if let Some(db) = grads.dbias.as_deref_mut() {
            db[c] = T::from_f64(idx.iter().map(|&i| dy[i].to_f64()).sum());
        }
    }
}

/// [`row_moments`] by two passes over each row.
pub fn row_moments_reference<T: NormElement>(g: &RowGeometry, x: &[T]) -> Moments {
    let (mean, var) = (0..g.rows).map(|m| two_pass(x, m * g.len..(m + 1) * g.len)).unzip();
    Moments { mean, var }
}

/// [`layer_norm_forward`] element by element.
pub fn layer_norm_forward_reference<T: NormElement>(
    g: &RowGeometry,
    x: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    y: &mut [T],
) {
    for (i, y) in y.iter_mut().enumerate() {
        let (m, k) = (i / g.len, i % g.len);
        let xhat = (x[i].to_f64() - mean[m]) * rstd[m];
        *y = T::from_f64(xhat * weight.map_or(1.0, |w| w[k].to_f64()) + bias.map_or(0.0, |b| b[k].to_f64()));
    }
}

/// [`layer_norm_backward`] by the formulas of the module doc, row by row.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward_reference<T: NormElement>(
    g: &RowGeometry,
    x: &[T],
    dy: &[T],
    mean: &[f64],
    rstd: &[f64],
    weight: Option<&[T]>,
    mut grads: NormGrads<'_, T>,
) {
    let w = |k: usize| weight.map_or(1.0, |w| w[k].to_f64());
    let xhat = |i: usize| (x[i].to_f64() - mean[i / g.len]) * rstd[i / g.len];
    if let Some(dx) = grads.dx.as_deref_mut() {
        for (m, &r) in rstd.iter().enumerate() {
            let row = m * g.len..(m + 1) * g.len;
            let n = g.len as f64;
            let mg = row.clone().map(|i| dy[i].to_f64() * w(i % g.len)).sum::<f64>() / n;
            let mgx = row
                .clone()
                .map(|i| dy[i].to_f64() * w(i % g.len) * xhat(i))
                .sum::<f64>()
                / n;
            for i in row {
                dx[i] = T::from_f64(r * (dy[i].to_f64() * w(i % g.len) - mg - xhat(i) * mgx));
            }
        }
    }
    for k in 0..g.len {
        let col = (0..g.rows).map(|m| m * g.len + k);
        if let Some(dw) = grads.dweight.as_deref_mut() {
            dw[k] = T::from_f64(col.clone().map(|i| dy[i].to_f64() * xhat(i)).sum());
        }
        if let Some(db) = grads.dbias.as_deref_mut() {
            db[k] = T::from_f64(col.map(|i| dy[i].to_f64()).sum());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    /// Runs the fast path and the reference of a channel norm and asserts they agree.
    fn check_channel(g: &NormGeometry, affine: bool, constant_stats: bool, seed: u64) -> Result<(), TestCaseError> {
        prop_assert!(g.validate().is_ok());
        let (x, dy) = (values(g.len(), seed), values(g.len(), seed + 1));
        let (w, b) = (values(g.channels, seed + 2), values(g.channels, seed + 3));
        let (weight, bias) = if affine {
            (Some(&w[..]), Some(&b[..]))
        } else {
            (None, None)
        };
        let (fast, moments) = (norm_moments(g, &x), norm_moments_reference(g, &x));
        prop_assert!(close(&fast.mean, &moments.mean, 1e-12) && close(&fast.var, &moments.var, 1e-12));
        let (mean, rstd) = (&moments.mean, moments.rstd(1e-5));
        let (mut y1, mut y2) = (vec![9.0; g.len()], vec![0.0; g.len()]);
        norm_forward(g, &x, mean, &rstd, weight, bias, &mut y1);
        norm_forward_reference(g, &x, mean, &rstd, weight, bias, &mut y2);
        prop_assert!(close(&y1, &y2, 1e-10));
        let mut y3 = vec![9.0; g.len()];
        let m3 = norm_forward_training(g, &x, 1e-5, weight, bias, &mut y3);
        prop_assert!(close(&m3.mean, &moments.mean, 1e-12) && close(&m3.var, &moments.var, 1e-12));
        prop_assert!(close(&y3, &y2, 1e-10));
        let mut fast = [vec![9.0; g.len()], vec![9.0; g.channels], vec![9.0; g.channels]];
        let mut slow = [vec![0.0; g.len()], vec![0.0; g.channels], vec![0.0; g.channels]];
        for (out, reference) in [(&mut fast, false), (&mut slow, true)] {
            let [dx, dw, db] = out;
            let grads = NormGrads {
                dx: Some(dx),
                dweight: Some(dw),
                dbias: Some(db),
            };
            let f = if reference {
                norm_backward_reference
            } else {
                norm_backward
            };
            f(g, &x, &dy, mean, &rstd, weight, constant_stats, grads);
        }
        for (f, s) in fast.iter().zip(&slow) {
            prop_assert!(close(f, s, 1e-9), "{f:?} vs {s:?}");
        }
        Ok(())
    }

    fn channel_geometry() -> impl Strategy<Value = NormGeometry> {
        (0usize..4, 1usize..4, 1usize..4, 0usize..40, any::<bool>()).prop_map(|(batch, cg, groups, spatial, bn)| {
            NormGeometry {
                batch,
                channels: cg * groups,
                spatial,
                stats: if bn {
                    StatsOver::Channels
                } else {
                    StatsOver::Groups(groups)
                },
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn channel_norm_matches_reference(g in channel_geometry(), affine in any::<bool>(), constant in any::<bool>(), seed in 0u64..100) {
            let g = NormGeometry { batch: g.batch.max(1), spatial: g.spatial.max(1), ..g };
            check_channel(&g, affine, constant, seed)?;
        }

        #[test]
        fn layer_norm_matches_reference(rows in 1usize..6, len in 1usize..50, affine in any::<bool>(), seed in 0u64..100) {
            let g = RowGeometry { rows, len };
            let n = rows * len;
            let (x, dy) = (values(n, seed), values(n, seed + 1));
            let (w, b) = (values(len, seed + 2), values(len, seed + 3));
            let (weight, bias) = if affine { (Some(&w[..]), Some(&b[..])) } else { (None, None) };
            let (fast, slow) = (row_moments(&g, &x), row_moments_reference(&g, &x));
            prop_assert!(close(&fast.mean, &slow.mean, 1e-12) && close(&fast.var, &slow.var, 1e-12));
            let rstd = slow.rstd(1e-3);
            let (mut y1, mut y2) = (vec![9.0; n], vec![0.0; n]);
            layer_norm_forward(&g, &x, &slow.mean, &rstd, weight, bias, &mut y1);
            layer_norm_forward_reference(&g, &x, &slow.mean, &rstd, weight, bias, &mut y2);
            prop_assert!(close(&y1, &y2, 1e-10));
            let mut fast = [vec![9.0; n], vec![9.0; len], vec![9.0; len]];
            let mut slow_g = [vec![0.0; n], vec![0.0; len], vec![0.0; len]];
            for (out, reference) in [(&mut fast, false), (&mut slow_g, true)] {
                let [dx, dw, db] = out;
                let grads = NormGrads { dx: Some(dx), dweight: Some(dw), dbias: Some(db) };
                let f = if reference { layer_norm_backward_reference } else { layer_norm_backward };
                f(&g, &x, &dy, &slow.mean, &rstd, weight, grads);
            }
            for (f, s) in fast.iter().zip(&slow_g) {
                prop_assert!(close(f, s, 1e-9), "{f:?} vs {s:?}");
            }
        }
    }

    #[test]
    fn planes_larger_than_a_block_and_empty_shapes() {
        // One plane spans several blocks and chunks, another is cut by a block boundary.
        let g = NormGeometry {
            batch: 1,
            channels: 2,
            spatial: 2 * BLOCK + 3 * CHUNK + 7,
            stats: StatsOver::Groups(1),
        };
        check_channel(&g, true, false, 5).unwrap();
        let g = NormGeometry {
            stats: StatsOver::Channels,
            ..g
        };
        check_channel(&g, true, false, 6).unwrap();
        // Many tiny planes: several per parallel task.
        let g = NormGeometry {
            batch: 3,
            channels: 4000,
            spatial: 3,
            stats: StatsOver::Groups(2000),
        };
        check_channel(&g, true, false, 7).unwrap();
        // Enough groups for the fused one-group-per-task path, groups of several planes.
        let g = NormGeometry {
            batch: 2,
            channels: 128,
            spatial: 50,
            stats: StatsOver::Groups(64),
        };
        assert_eq!(fused_group_channels(&g), Some(2));
        check_channel(&g, true, false, 12).unwrap();
        check_channel(&g, false, false, 13).unwrap();
        // No elements at all: nothing to do, and no panic.
        let g = NormGeometry {
            batch: 0,
            channels: 4,
            spatial: 5,
            stats: StatsOver::Groups(2),
        };
        let m = norm_moments::<f32>(&g, &[]);
        assert!(m.mean.is_empty());
        norm_forward::<f32>(&g, &[], &[], &[], None, None, &mut []);
        // Layer norm with long rows: several column blocks and row blocks.
        let g = RowGeometry {
            rows: 3,
            len: BLOCK + 9,
        };
        let (x, dy) = (values(3 * g.len, 8), values(3 * g.len, 9));
        let w = values(g.len, 10);
        let m = row_moments(&g, &x);
        let rstd = m.rstd(1e-5);
        let mut fast = [vec![0.0; 3 * g.len], vec![0.0; g.len], vec![0.0; g.len]];
        let mut slow = fast.clone();
        for (out, reference) in [(&mut fast, false), (&mut slow, true)] {
            let [dx, dw, db] = out;
            let grads = NormGrads {
                dx: Some(dx),
                dweight: Some(dw),
                dbias: Some(db),
            };
            let f = if reference {
                layer_norm_backward_reference
            } else {
                layer_norm_backward
            };
            f(&g, &x, &dy, &m.mean, &rstd, Some(&w), grads);
        }
        for (f, s) in fast.iter().zip(&slow) {
            assert!(close(f, s, 1e-9));
        }
    }

    #[test]
    fn statistics_of_f32_far_from_zero_are_accurate() {
        // Values 1000 + O(1) in f32: a one-pass sum of squares would lose the variance.
        let xs: Vec<f32> = values(50_000, 11).iter().map(|v| 1000.0 + *v as f32).collect();
        let g = RowGeometry { rows: 1, len: xs.len() };
        let m = row_moments(&g, &xs);
        let exact = row_moments_reference(&g, &xs);
        assert!((m.mean[0] - exact.mean[0]).abs() < 1e-12 * 1000.0);
        assert!(
            (m.var[0] - exact.var[0]).abs() < 1e-12,
            "{} vs {}",
            m.var[0],
            exact.var[0]
        );
        assert!(
            (exact.var[0] - 1.0 / 3.0).abs() < 0.01,
            "values in [-1, 1) have variance ~1/3"
        );
    }

    #[test]
    fn instance_norm_of_a_known_plane() {
        // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
        let g = NormGeometry {
            batch: 1,
            channels: 1,
            spatial: 4,
            stats: StatsOver::Groups(1),
        };
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let m = norm_moments(&g, &x);
        assert_eq!((m.mean[0], m.var[0]), (2.5, 1.25));
        let rstd = m.rstd(0.0);
        let mut y = [0.0f32; 4];
        norm_forward(&g, &x, &m.mean, &rstd, Some(&[2.0]), Some(&[1.0]), &mut y);
        let s = 1.0 / 1.25f64.sqrt();
        let want = [-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s].map(|v| (2.0 * v + 1.0) as f32);
        assert_eq!(y, want);
    }

    #[test]
    fn invalid_groups_are_reported() {
        let g = NormGeometry {
            batch: 1,
            channels: 6,
            spatial: 2,
            stats: StatsOver::Groups(4),
        };
        assert!(g.validate().unwrap_err().contains("4 groups"));
        assert!(NormGeometry {
            stats: StatsOver::Groups(0),
            ..g
        }
        .validate()
        .is_err());
        assert!(NormGeometry {
            stats: StatsOver::Groups(3),
            ..g
        }
        .validate()
        .is_ok());
    }
}
