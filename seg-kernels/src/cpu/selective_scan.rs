//! Mamba's selective scan (S6), forward and backward, with `selective_scan_ref`'s semantics.
//!
//! For each sample `b` and channel `d` (group `g = d / (D / G)` of the shared `B`, `C`), over
//! positions `l` with a state `h` of `N` values starting at 0:
//!
//! ```text
//! dt_l  = softplus(delta_l + bias_d)            (or delta_l + bias_d without softplus)
//! h_l   = exp(dt_l A_d) * h_{l-1} + dt_l B_{g,l} u_l          (elementwise over n)
//! y_l   = sum_n C_{g,n,l} h_{n,l}
//! out_l = (y_l + D_d u_l) * silu(z_l)           (factor silu(z) only when z is given)
//! ```
//!
//! and `last_state = h_{L-1}`. The backward runs the recurrence in reverse with the state gradient
//! `gh_{l-1} = exp(dt_l A) gh_l + C_{l-1} gy_{l-1}` (`gy` the gradient reaching `y`), from which
//! `dA += gh_l h_{l-1} e^{dt_l A} dt_l`, `dB_l += gh_l dt_l u_l`, `dC_l += gy_l h_l`,
//! `ddt_l = sum_n gh_l (h_{l-1} e^{dt_l A} A + B_l u_l)`, `du_l = sum_n gh_l dt_l B_l + D gy_l`.
//!
//! The fast f32 path ([`scan_forward`], [`scan_backward`]) keeps the state in SIMD vectors over `n`,
//! runs channels in parallel, and in the forward stores the state only every [`CHUNK`] positions:
//! the backward recomputes each chunk's states from its stored start (as mamba_ssm's CUDA kernel
//! does), so its memory is `L / CHUNK` states per channel, not `L`. The `*_reference` functions are
//! the plain loops it is tested against, generic over f32 and f64 (the latter for gradient checks).

use std::ops::Range;

use num_traits::Float;
use rayon::prelude::*;

use super::simd::Isa;
use super::SharedOut;

/// Positions per recomputation chunk of the backward.
pub const CHUNK: usize = 64;

/// Sizes and flags of a scan: `u`, `delta`, `z` are `(batch, dim, len)`, `A` is `(dim, state)`,
/// `B` and `C` are `(batch, groups, state, len)`, `D` and `delta_bias` are `(dim)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanShape {
    pub batch: usize,
    pub dim: usize,
    pub len: usize,
    pub state: usize,
    pub groups: usize,
    pub delta_softplus: bool,
}

impl ScanShape {
    /// Checks the shape; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups == 0 || !self.dim.is_multiple_of(self.groups) {
            return Err(format!(
                "{} channels cannot share B and C in {} groups",
                self.dim, self.groups
            ));
        }
        Ok(())
    }

    fn group_of(&self, d: usize) -> usize {
        d / (self.dim / self.groups)
    }
}

/// The inputs of a scan (see [`ScanShape`] for their shapes).
#[derive(Clone, Copy, Debug)]
pub struct ScanInputs<'a, T> {
    pub u: &'a [T],
    pub delta: &'a [T],
    pub a: &'a [T],
    pub b: &'a [T],
    pub c: &'a [T],
    pub d: Option<&'a [T]>,
    pub z: Option<&'a [T]>,
    pub delta_bias: Option<&'a [T]>,
}

/// The outputs of a scan's backward: a gradient for every input (those of absent optional inputs
/// are empty).
#[derive(Clone, Debug, PartialEq)]
pub struct ScanGrads<T> {
    pub u: Vec<T>,
    pub delta: Vec<T>,
    pub a: Vec<T>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Vec<T>,
    pub z: Vec<T>,
    pub delta_bias: Vec<T>,
}

fn softplus<T: Float>(x: T) -> T {
    if x > T::from(20.0).unwrap() {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// `dt` and `d dt / d delta` at one position.
fn step_dt<T: Float>(shape: &ScanShape, delta: T, bias: T) -> (T, T) {
    let x = delta + bias;
    if shape.delta_softplus {
        (
            softplus(x),
            if x > T::from(20.0).unwrap() {
                T::one()
            } else {
                sigmoid(x)
            },
        )
    } else {
        (x, T::one())
    }
}

/// `(silu(z), silu'(z))`, or `(1, 0)` without `z`.
fn gate<T: Float>(z: Option<T>) -> (T, T) {
    match z {
        None => (T::one(), T::zero()),
        Some(z) => {
            let s = sigmoid(z);
            (z * s, s * (T::one() + z * (T::one() - s)))
        }
    }
}

/// Offsets of channel `(b, d)`'s rows: its `(b, d, :)` row and its group's `(b, g, 0, :)` row.
fn rows(shape: &ScanShape, b: usize, d: usize) -> (usize, usize) {
    let (l, n) = (shape.len, shape.state);
    ((b * shape.dim + d) * l, (b * shape.groups + shape.group_of(d)) * n * l)
}

fn check_sizes<T>(shape: &ScanShape, x: &ScanInputs<T>) {
    let (bdl, gnl) = (
        shape.batch * shape.dim * shape.len,
        shape.batch * shape.groups * shape.state * shape.len,
    );
    assert!(
        x.u.len() == bdl && x.delta.len() == bdl && x.a.len() == shape.dim * shape.state,
        "scan: u/delta/A"
    );
    assert!(x.b.len() == gnl && x.c.len() == gnl, "scan: B/C sizes");
    assert!(x.z.is_none_or(|z| z.len() == bdl), "scan: z size");
    assert!(
        x.d.is_none_or(|d| d.len() == shape.dim) && x.delta_bias.is_none_or(|v| v.len() == shape.dim),
        "scan: D"
    );
}

/// The forward by plain loops: `y` `(batch, dim, len)` and `last_state` `(batch, dim, state)`.
pub fn scan_forward_reference<T: Float>(shape: &ScanShape, x: &ScanInputs<T>, y: &mut [T], last_state: &mut [T]) {
    check_sizes(shape, x);
    let (len, n) = (shape.len, shape.state);
    for b in 0..shape.batch {
        for d in 0..shape.dim {
            let (row, grow) = rows(shape, b, d);
            let bias = x.delta_bias.map_or(T::zero(), |v| v[d]);
            let mut h = vec![T::zero(); n];
            for l in 0..len {
                let (dt, _) = step_dt(shape, x.delta[row + l], bias);
                let u = x.u[row + l];
                let mut acc = T::zero();
                for (i, h) in h.iter_mut().enumerate() {
                    *h = (dt * x.a[d * n + i]).exp() * *h + dt * x.b[grow + i * len + l] * u;
                    acc = acc + x.c[grow + i * len + l] * *h;
                }
                let skip = x.d.map_or(T::zero(), |dd| dd[d] * u);
                y[row + l] = (acc + skip) * gate(x.z.map(|z| z[row + l])).0;
            }
            last_state[(b * shape.dim + d) * n..][..n].copy_from_slice(&h);
        }
    }
}

/// The backward by plain loops, storing every state: gradients of `sum(y * gy) +
/// sum(last_state * g_last)`.
pub fn scan_backward_reference<T: Float>(
    shape: &ScanShape,
    x: &ScanInputs<T>,
    gy: &[T],
    g_last: Option<&[T]>,
) -> ScanGrads<T> {
    check_sizes(shape, x);
    let (len, n) = (shape.len, shape.state);
    let mut g = ScanGrads {
        u: vec![T::zero(); x.u.len()],
        delta: vec![T::zero(); x.u.len()],
        a: vec![T::zero(); x.a.len()],
        b: vec![T::zero(); x.b.len()],
        c: vec![T::zero(); x.c.len()],
        d: vec![T::zero(); if x.d.is_some() { shape.dim } else { 0 }],
        z: vec![T::zero(); if x.z.is_some() { x.u.len() } else { 0 }],
        delta_bias: vec![T::zero(); if x.delta_bias.is_some() { shape.dim } else { 0 }],
    };
    for b in 0..shape.batch {
        for d in 0..shape.dim {
            let (row, grow) = rows(shape, b, d);
            let bias = x.delta_bias.map_or(T::zero(), |v| v[d]);
            // states[l + 1] = h_l, states[0] = 0
            let mut states = vec![T::zero(); (len + 1) * n];
            for l in 0..len {
                let (dt, _) = step_dt(shape, x.delta[row + l], bias);
                for i in 0..n {
                    let a = (dt * x.a[d * n + i]).exp();
                    states[(l + 1) * n + i] = a * states[l * n + i] + dt * x.b[grow + i * len + l] * x.u[row + l];
                }
            }
            let mut gh: Vec<T> = match g_last {
                Some(gl) => gl[(b * shape.dim + d) * n..][..n].to_vec(),
                None => vec![T::zero(); n],
            };
            for l in (0..len).rev() {
                let (dt, ddt) = step_dt(shape, x.delta[row + l], bias);
                let u = x.u[row + l];
                let h = &states[(l + 1) * n..][..n];
                let y = (0..n).fold(T::zero(), |s, i| s + x.c[grow + i * len + l] * h[i]);
                let skip = x.d.map_or(T::zero(), |dd| dd[d] * u);
                let (s, ds) = gate(x.z.map(|z| z[row + l]));
                let gyl = gy[row + l] * s;
                if x.z.is_some() {
                    g.z[row + l] = gy[row + l] * (y + skip) * ds;
                }
                if let Some(dd) = x.d {
                    g.d[d] = g.d[d] + gyl * u;
                    g.u[row + l] = g.u[row + l] + gyl * dd[d];
                }
                let mut gdt = T::zero();
                for i in 0..n {
                    let (bi, ci) = (grow + i * len + l, x.a[d * n + i]);
                    gh[i] = gh[i] + gyl * x.c[bi];
                    g.c[bi] = g.c[bi] + gyl * h[i];
                    let a = (dt * ci).exp();
                    let prev = states[l * n + i];
                    gdt = gdt + gh[i] * (prev * a * ci + x.b[bi] * u);
                    g.a[d * n + i] = g.a[d * n + i] + gh[i] * prev * a * dt;
                    g.b[bi] = g.b[bi] + gh[i] * dt * u;
                    g.u[row + l] = g.u[row + l] + gh[i] * dt * x.b[bi];
                    gh[i] = gh[i] * a;
                }
                g.delta[row + l] = gdt * ddt;
                if x.delta_bias.is_some() {
                    g.delta_bias[d] = g.delta_bias[d] + gdt * ddt;
                }
            }
        }
    }
    g
}

/// `B` or `C` `(batch, groups, state, len)` as `(batch, groups, len, padded)` with the state axis
/// last and zero-padded to whole vectors: the layout the fast path reads a position's vector in.
fn transpose_padded(shape: &ScanShape, m: &[f32], padded: usize) -> Vec<f32> {
    let (len, n) = (shape.len, shape.state);
    let mut out = vec![0.0f32; shape.batch * shape.groups * len * padded];
    out.par_chunks_mut(len * padded).enumerate().for_each(|(bg, dst)| {
        let src = &m[bg * n * len..][..n * len];
        for i in 0..n {
            for l in 0..len {
                dst[l * padded + i] = src[i * len + l];
            }
        }
    });
    out
}

/// The fast path's view of the inputs: `B`, `C` and `A` padded to whole vectors along the state.
struct Packed<'a> {
    shape: ScanShape,
    x: ScanInputs<'a, f32>,
    padded: usize,
    a: Vec<f32>,
    bt: Vec<f32>,
    ct: Vec<f32>,
}

impl<'a> Packed<'a> {
    fn new(shape: &ScanShape, x: &ScanInputs<'a, f32>, lanes: usize) -> Self {
        let padded = shape.state.div_ceil(lanes) * lanes;
        let mut a = vec![0.0f32; shape.dim * padded];
        for d in 0..shape.dim {
            a[d * padded..][..shape.state].copy_from_slice(&x.a[d * shape.state..][..shape.state]);
        }
        Packed {
            shape: *shape,
            x: *x,
            padded,
            a,
            bt: transpose_padded(shape, x.b, padded),
            ct: transpose_padded(shape, x.c, padded),
        }
    }

    /// Offset of channel `(b, d)`'s group in `bt`/`ct`.
    fn group_row(&self, b: usize, d: usize) -> usize {
        (b * self.shape.groups + self.shape.group_of(d)) * self.shape.len * self.padded
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::super::simd::{Avx2, Avx512, F32Simd};
    use super::*;

    /// Per-position terms of up to [`CHUNK`] positions from `start`: the step `dt`, its derivative
    /// in `delta`, the gate `silu(z)` and its derivative, computed a vector of positions at a time
    /// (softplus and sigmoid need exp and ln, which per position in scalar code cost more than the
    /// whole state update).
    pub(super) struct PositionTerms {
        start: usize,
        dt: [f32; CHUNK],
        ddt: [f32; CHUNK],
        gate: [f32; CHUNK],
        dgate: [f32; CHUNK],
    }

    impl Default for PositionTerms {
        fn default() -> Self {
            Self {
                start: 0,
                dt: [0.0; CHUNK],
                ddt: [0.0; CHUNK],
                gate: [1.0; CHUNK],
                dgate: [0.0; CHUNK],
            }
        }
    }

    impl PositionTerms {
        /// Fills the terms of positions `start..start + n` (`n <= CHUNK`) of the channel at `row`.
        ///
        /// # Safety
        /// The CPU supports `S`'s instruction set.
        #[inline(always)]
        unsafe fn fill<S: F32Simd>(&mut self, p: &Packed, row: usize, bias: f32, start: usize, n: usize) {
            self.start = start;
            let one = S::splat(1.0);
            for i in (0..n).step_by(S::LANES) {
                let lanes = S::LANES.min(n - i);
                let x = S::add(S::load(p.x.delta.as_ptr().add(row + start + i), lanes), S::splat(bias));
                let (dt, ddt) = if p.shape.delta_softplus {
                    (S::softplus(x), S::sigmoid(x))
                } else {
                    (x, one)
                };
                S::store(self.dt.as_mut_ptr().add(i), dt, lanes);
                S::store(self.ddt.as_mut_ptr().add(i), ddt, lanes);
                if let Some(z) = p.x.z {
                    let z = S::load(z.as_ptr().add(row + start + i), lanes);
                    let sg = S::sigmoid(z);
                    let dgate = S::mul(sg, S::fma(z, S::sub(one, sg), one));
                    S::store(self.gate.as_mut_ptr().add(i), S::mul(z, sg), lanes);
                    S::store(self.dgate.as_mut_ptr().add(i), dgate, lanes);
                }
            }
        }
    }

    /// Runs channel `(b, d)` forward from position `from` with state `h` (padded, updated), writing
    /// `y` when given and the state at the end of every chunk into `checkpoints` when given.
    ///
    /// # Safety
    /// The CPU supports `S`'s instruction set; `h` holds `p.padded` values.
    #[inline(always)]
    pub(super) unsafe fn forward_channel<S: F32Simd>(
        p: &Packed,
        b: usize,
        d: usize,
        range: Range<usize>,
        h: &mut [f32],
        mut y: Option<&mut [f32]>,
        mut trace: Option<(&mut [f32], &mut [f32])>,
    ) {
        let (row, grow) = (rows(&p.shape, b, d).0, p.group_row(b, d));
        let bias = p.x.delta_bias.map_or(0.0, |v| v[d]);
        let a = &p.a[d * p.padded..][..p.padded];
        let mut terms = PositionTerms::default();
        for l in range.clone() {
            if l == range.start || l % CHUNK == 0 {
                terms.fill::<S>(p, row, bias, l, (CHUNK - l % CHUNK).min(range.end - l));
            }
            let dt = terms.dt[l - terms.start];
            let u = p.x.u[row + l];
            let (dtv, duv) = (S::splat(dt), S::splat(dt * u));
            let (bl, cl) = (
                p.bt.as_ptr().add(grow + l * p.padded),
                p.ct.as_ptr().add(grow + l * p.padded),
            );
            let mut acc = S::splat(0.0);
            for v in (0..p.padded).step_by(S::LANES) {
                let decay = S::exp(S::mul(dtv, S::load(a.as_ptr().add(v), S::LANES)));
                let hv = S::fma(
                    decay,
                    S::load(h.as_ptr().add(v), S::LANES),
                    S::mul(duv, S::load(bl.add(v), S::LANES)),
                );
                S::store(h.as_mut_ptr().add(v), hv, S::LANES);
                acc = S::fma(hv, S::load(cl.add(v), S::LANES), acc);
                if let Some((_, decays)) = trace.as_mut() {
                    S::store(
                        decays.as_mut_ptr().add((l - range.start) * p.padded + v),
                        decay,
                        S::LANES,
                    );
                }
            }
            if let Some(y) = y.as_deref_mut() {
                let skip = p.x.d.map_or(0.0, |dd| dd[d] * u);
                y[l] = (S::sum(acc) + skip) * terms.gate[l - terms.start];
            }
            if let Some((states, _)) = trace.as_mut() {
                states[(l - range.start) * p.padded..][..p.padded].copy_from_slice(h);
            }
        }
    }

    /// Per-channel results of the backward.
    pub(super) struct ChannelGrads<'g> {
        pub u: &'g mut [f32],
        pub delta: &'g mut [f32],
        pub z: &'g mut [f32],
        /// Padded `dA` row of the channel (accumulated over samples).
        pub a: &'g mut [f32],
        pub d: &'g mut f32,
        pub delta_bias: &'g mut f32,
        /// The part's `(batch, groups, len, padded)` accumulators of `dB` and `dC`.
        pub bt: &'g mut [f32],
        pub ct: &'g mut [f32],
    }

    /// The backward of channel `(b, d)`: chunks from the last, each recomputed from its stored
    /// starting state, then walked in reverse.
    ///
    /// # Safety
    /// The CPU supports `S`'s instruction set; `starts` holds the state before every chunk.
    #[inline(always)]
    pub(super) unsafe fn backward_channel<S: F32Simd>(
        p: &Packed,
        b: usize,
        d: usize,
        starts: &[f32],
        gy: &[f32],
        g_last: Option<&[f32]>,
        g: ChannelGrads,
    ) {
        let (len, np) = (p.shape.len, p.padded);
        let (row, grow) = (rows(&p.shape, b, d).0, p.group_row(b, d));
        let bias = p.x.delta_bias.map_or(0.0, |v| v[d]);
        let a = &p.a[d * np..][..np];
        let mut gh = vec![0.0f32; np];
        if let Some(gl) = g_last {
            gh[..p.shape.state].copy_from_slice(&gl[(b * p.shape.dim + d) * p.shape.state..][..p.shape.state]);
        }
        let (mut states, mut decays) = (vec![0.0f32; CHUNK * np], vec![0.0f32; CHUNK * np]);
        let mut terms = PositionTerms::default();
        let mut h = vec![0.0f32; np];
        for chunk in (0..len.div_ceil(CHUNK)).rev() {
            let range = chunk * CHUNK..len.min((chunk + 1) * CHUNK);
            h.copy_from_slice(&starts[chunk * np..][..np]);
            forward_channel::<S>(p, b, d, range.clone(), &mut h, None, Some((&mut states, &mut decays)));
            terms.fill::<S>(p, row, bias, range.start, range.len());
            for l in range.clone().rev() {
                let i = l - range.start;
                let (dt, ddt) = (terms.dt[i], terms.ddt[i]);
                let u = p.x.u[row + l];
                let at = l - range.start;
                let hl = states.as_ptr().add(at * np);
                let prev = if at == 0 {
                    starts.as_ptr().add(chunk * np)
                } else {
                    states.as_ptr().add((at - 1) * np)
                };
                let (bl, cl) = (p.bt.as_ptr().add(grow + l * np), p.ct.as_ptr().add(grow + l * np));
                let (gbl, gcl) = (
                    g.bt.as_mut_ptr().add(grow + l * np),
                    g.ct.as_mut_ptr().add(grow + l * np),
                );
                let mut y = S::splat(0.0);
                for v in (0..np).step_by(S::LANES) {
                    y = S::fma(S::load(hl.add(v), S::LANES), S::load(cl.add(v), S::LANES), y);
                }
                let y = S::sum(y);
                let skip = p.x.d.map_or(0.0, |dd| dd[d] * u);
                let (s, ds) = (terms.gate[i], terms.dgate[i]);
                let gyl = gy[row + l] * s;
                if p.x.z.is_some() {
                    g.z[l] = gy[row + l] * (y + skip) * ds;
                }
                let mut gu = 0.0;
                if let Some(dd) = p.x.d {
                    *g.d += gyl * u;
                    gu += gyl * dd[d];
                }
                let (gyv, dtv, duv) = (S::splat(gyl), S::splat(dt), S::splat(dt * u));
                let (mut gdt, mut gub) = (S::splat(0.0), S::splat(0.0));
                for v in (0..np).step_by(S::LANES) {
                    let av = S::load(a.as_ptr().add(v), S::LANES);
                    let decay = S::load(decays.as_ptr().add(at * np + v), S::LANES);
                    let ghv = S::fma(gyv, S::load(cl.add(v), S::LANES), S::load(gh.as_ptr().add(v), S::LANES));
                    S::store(
                        gcl.add(v),
                        S::fma(gyv, S::load(hl.add(v), S::LANES), S::load(gcl.add(v), S::LANES)),
                        S::LANES,
                    );
                    let bv = S::load(bl.add(v), S::LANES);
                    // gh * h_prev * e^{dt A}: the gradient reaching the decay factor.
                    let g_decay = S::mul(S::mul(ghv, S::load(prev.add(v), S::LANES)), decay);
                    gdt = S::fma(g_decay, av, gdt);
                    gdt = S::fma(S::mul(ghv, bv), S::splat(u), gdt);
                    let ga = g.a.as_mut_ptr().add(v);
                    S::store(ga, S::fma(g_decay, dtv, S::load(ga, S::LANES)), S::LANES);
                    S::store(gbl.add(v), S::fma(ghv, duv, S::load(gbl.add(v), S::LANES)), S::LANES);
                    gub = S::fma(ghv, bv, gub);
                    S::store(gh.as_mut_ptr().add(v), S::mul(ghv, decay), S::LANES);
                }
                g.u[l] = gu + dt * S::sum(gub);
                let gdelta = S::sum(gdt) * ddt;
                g.delta[l] = gdelta;
                *g.delta_bias += gdelta;
            }
        }
    }

    macro_rules! instantiate {
        ($forward:ident, $backward:ident, $simd:ty, $feature:literal) => {
            /// [`forward_channel`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`forward_channel`].
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $forward(
                p: &Packed,
                b: usize,
                d: usize,
                range: Range<usize>,
                h: &mut [f32],
                y: Option<&mut [f32]>,
                trace: Option<(&mut [f32], &mut [f32])>,
            ) {
                forward_channel::<$simd>(p, b, d, range, h, y, trace)
            }

            /// [`backward_channel`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`backward_channel`].
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $backward(
                p: &Packed,
                b: usize,
                d: usize,
                starts: &[f32],
                gy: &[f32],
                g_last: Option<&[f32]>,
                g: ChannelGrads,
            ) {
                backward_channel::<$simd>(p, b, d, starts, gy, g_last, g)
            }
        };
    }
    instantiate!(forward_avx512, backward_avx512, Avx512, "avx512f");
    instantiate!(forward_avx2, backward_avx2, Avx2, "avx2,fma");

    /// [`forward_channel`] for one instruction set.
    pub(super) type ForwardFn = unsafe fn(
        &Packed,
        usize,
        usize,
        Range<usize>,
        &mut [f32],
        Option<&mut [f32]>,
        Option<(&mut [f32], &mut [f32])>,
    );
    /// [`backward_channel`] for one instruction set.
    pub(super) type BackwardFn = unsafe fn(&Packed, usize, usize, &[f32], &[f32], Option<&[f32]>, ChannelGrads);

    pub(super) fn lanes(isa: Isa) -> usize {
        match isa {
            Isa::Avx512 => Avx512::LANES,
            Isa::Avx2Fma => Avx2::LANES,
        }
    }
}

/// The states a fast forward kept for its backward: the state before every [`CHUNK`] of
/// positions of every channel (vector-padded), `batch * dim * ceil(len / CHUNK)` states in all.
#[derive(Clone, Debug)]
pub struct ScanCheckpoints {
    padded: usize,
    chunks: usize,
    states: Vec<f32>,
}

impl ScanCheckpoints {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.states.len() * 4
    }

    fn channel(&self, channel: usize) -> &[f32] {
        &self.states[channel * self.chunks * self.padded..][..self.chunks * self.padded]
    }
}

/// The scan forward (see the module doc) on the SIMD fast path when the CPU has one, else the
/// reference loops. The fast path also returns the checkpoints its [`scan_backward`] starts from.
pub fn scan_forward(
    shape: &ScanShape,
    x: &ScanInputs<f32>,
    y: &mut [f32],
    last_state: &mut [f32],
) -> Option<ScanCheckpoints> {
    check_sizes(shape, x);
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Isa::detect() {
        let p = Packed::new(shape, x, fast::lanes(isa));
        let (n, np, len) = (shape.state, p.padded, shape.len);
        let chunks = len.div_ceil(CHUNK);
        let forward: fast::ForwardFn = match isa {
            Isa::Avx512 => fast::forward_avx512,
            Isa::Avx2Fma => fast::forward_avx2,
        };
        let mut states = vec![0.0f32; shape.batch * shape.dim * chunks * np];
        let last = SharedOut::new(last_state);
        y.par_chunks_mut(len)
            .zip(states.par_chunks_mut(chunks * np))
            .enumerate()
            .for_each(|(channel, (y, starts))| {
                let (b, d) = (channel / shape.dim, channel % shape.dim);
                let mut h = vec![0.0f32; np];
                for (chunk, start) in starts.chunks_mut(np).enumerate() {
                    start.copy_from_slice(&h);
                    // SAFETY: the ISA was detected; `h` holds `padded` values.
                    unsafe {
                        forward(
                            &p,
                            b,
                            d,
                            chunk * CHUNK..len.min((chunk + 1) * CHUNK),
                            &mut h,
                            Some(&mut *y),
                            None,
                        )
                    };
                }
                // SAFETY: channel (b, d) alone writes its state row.
                unsafe { last.write(channel * n, &h[..n]) };
            });
        return Some(ScanCheckpoints {
            padded: np,
            chunks,
            states,
        });
    }
    scan_forward_reference(shape, x, y, last_state);
    None
}

/// The scan backward: gradients of `sum(y * gy) + sum(last_state * g_last)` for every input, on the
/// SIMD fast path (states recomputed per chunk from `checkpoints`, or from a forward pass of its
/// own without them) when the CPU has one, else the reference loops.
pub fn scan_backward(
    shape: &ScanShape,
    x: &ScanInputs<f32>,
    gy: &[f32],
    g_last: Option<&[f32]>,
    checkpoints: Option<&ScanCheckpoints>,
) -> ScanGrads<f32> {
    check_sizes(shape, x);
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Isa::detect() {
        return backward_fast(isa, shape, x, gy, g_last, checkpoints);
    }
    scan_backward_reference(shape, x, gy, g_last)
}

#[cfg(target_arch = "x86_64")]
fn backward_fast(
    isa: Isa,
    shape: &ScanShape,
    x: &ScanInputs<f32>,
    gy: &[f32],
    g_last: Option<&[f32]>,
    checkpoints: Option<&ScanCheckpoints>,
) -> ScanGrads<f32> {
    let p = Packed::new(shape, x, fast::lanes(isa));
    let (len, n, np, dim) = (shape.len, shape.state, p.padded, shape.dim);
    let chunks = len.div_ceil(CHUNK);
    let bdl = shape.batch * dim * len;
    let (mut gu, mut gdelta) = (vec![0.0f32; bdl], vec![0.0f32; bdl]);
    let mut gz = vec![0.0f32; if x.z.is_some() { bdl } else { 0 }];
    let (mut ga, mut gd, mut gbias) = (vec![0.0f32; dim * np], vec![0.0f32; dim], vec![0.0f32; dim]);
    let (out_u, out_delta, out_z) = (
        SharedOut::new(&mut gu),
        SharedOut::new(&mut gdelta),
        SharedOut::new(&mut gz),
    );
    let (forward, backward): (fast::ForwardFn, fast::BackwardFn) = match isa {
        Isa::Avx512 => (fast::forward_avx512, fast::backward_avx512),
        Isa::Avx2Fma => (fast::forward_avx2, fast::backward_avx2),
    };
    // Channels in contiguous parts, one per thread: each part owns whole channels of dA, dD and
    // d(delta_bias), and its own dB, dC accumulators (channels of a group share B and C), summed after.
    let parts = rayon::current_num_threads().clamp(1, dim);
    let per_part = dim.div_ceil(parts);
    let group_grads: Vec<[Vec<f32>; 2]> = ga
        .par_chunks_mut(per_part * np)
        .zip(gd.par_chunks_mut(per_part))
        .zip(gbias.par_chunks_mut(per_part))
        .enumerate()
        .map(|(part, ((ga, gd), gbias))| {
            let gnl = shape.batch * shape.groups * len * np;
            let (mut gbt, mut gct) = (vec![0.0f32; gnl], vec![0.0f32; gnl]);
            let mut starts = vec![0.0f32; chunks * np];
            let (mut u_row, mut delta_row, mut z_row) = (vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len]);
            for (local, d) in (part * per_part..dim.min((part + 1) * per_part)).enumerate() {
                for b in 0..shape.batch {
                    // The state before every chunk: kept by the forward, or from a forward pass here.
                    let kept = checkpoints.filter(|c| c.padded == np && c.chunks == chunks);
                    let starts: &[f32] = match kept {
                        Some(c) => c.channel(b * dim + d),
                        None => {
                            let mut h = vec![0.0f32; np];
                            for chunk in 0..chunks {
                                starts[chunk * np..][..np].copy_from_slice(&h);
                                let range = chunk * CHUNK..len.min((chunk + 1) * CHUNK);
                                // SAFETY: the ISA was detected; `h` holds `padded` values.
                                unsafe { forward(&p, b, d, range, &mut h, None, None) };
                            }
                            &starts
                        }
                    };
                    let grads = fast::ChannelGrads {
                        u: &mut u_row,
                        delta: &mut delta_row,
                        z: &mut z_row,
                        a: &mut ga[local * np..][..np],
                        d: &mut gd[local],
                        delta_bias: &mut gbias[local],
                        bt: &mut gbt,
                        ct: &mut gct,
                    };
                    // SAFETY: the ISA was detected; `starts` holds every chunk's starting state.
                    unsafe { backward(&p, b, d, starts, gy, g_last, grads) };
                    let row = (b * dim + d) * len;
                    // SAFETY: channel (b, d) alone writes its rows.
                    unsafe {
                        out_u.write(row, &u_row);
                        out_delta.write(row, &delta_row);
                        if x.z.is_some() {
                            out_z.write(row, &z_row);
                        }
                    }
                }
            }
            [gbt, gct]
        })
        .collect();
    let unpack = |which: usize| {
        let mut out = vec![0.0f32; shape.batch * shape.groups * n * len];
        out.par_chunks_mut(n * len).enumerate().for_each(|(bg, dst)| {
            for part in &group_grads {
                let src = &part[which][bg * len * np..][..len * np];
                for i in 0..n {
                    for l in 0..len {
                        dst[i * len + l] += src[l * np + i];
                    }
                }
            }
        });
        out
    };
    ScanGrads {
        u: gu,
        delta: gdelta,
        a: (0..dim).flat_map(|d| ga[d * np..][..n].to_vec()).collect(),
        b: unpack(0),
        c: unpack(1),
        d: if x.d.is_some() { gd } else { Vec::new() },
        z: gz,
        delta_bias: if x.delta_bias.is_some() { gbias } else { Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    struct Case {
        data: Vec<Vec<f64>>,
        with: [bool; 3],
    }

    impl Case {
        fn new(shape: ScanShape, with: [bool; 3], seed: u64) -> Self {
            let (bdl, gnl) = (
                shape.batch * shape.dim * shape.len,
                shape.batch * shape.groups * shape.state * shape.len,
            );
            let a: Vec<f64> = values(shape.dim * shape.state, seed)
                .iter()
                .map(|v| -0.2 - 2.0 * v.abs())
                .collect();
            let data = vec![
                values(bdl, seed + 1),
                // Without softplus, delta (plus a bias in [-1, 1]) is the step itself: keep it
                // positive, as Mamba does, or the decays exceed 1 and the state grows without bound.
                values(bdl, seed + 2)
                    .iter()
                    .map(|v| if shape.delta_softplus { v * 2.0 } else { v.abs() + 1.0 })
                    .collect(),
                a,
                values(gnl, seed + 3),
                values(gnl, seed + 4),
                values(shape.dim, seed + 5),
                values(bdl, seed + 6).iter().map(|v| v * 3.0).collect(),
                values(shape.dim, seed + 7),
                values(bdl, seed + 8),
                values(shape.batch * shape.dim * shape.state, seed + 9),
            ];
            Case { data, with }
        }

        fn inputs<'a, T>(&self, v: &'a [Vec<T>]) -> ScanInputs<'a, T> {
            ScanInputs {
                u: &v[0],
                delta: &v[1],
                a: &v[2],
                b: &v[3],
                c: &v[4],
                d: self.with[0].then_some(&v[5][..]),
                z: self.with[1].then_some(&v[6][..]),
                delta_bias: self.with[2].then_some(&v[7][..]),
            }
        }
    }

    fn close(what: &str, fast: &[f32], exact: &[f64]) -> Result<(), TestCaseError> {
        prop_assert_eq!(fast.len(), exact.len(), "{} length", what);
        let scale = exact.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (f, e)) in fast.iter().zip(exact).enumerate() {
            prop_assert!((*f as f64 - e).abs() <= 2e-5 * scale, "{}[{}]: {} vs {}", what, i, f, e);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn fast_path_matches_the_reference(
            batch in 1usize..3, per_group in 1usize..4, groups in 1usize..3, len in 1usize..150,
            state in 1usize..20, with in proptest::array::uniform3(any::<bool>()), softplus in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let shape = ScanShape { batch, dim: per_group * groups, len, state, groups, delta_softplus: softplus };
            let case = Case::new(shape, with, seed);
            let exact_inputs = case.inputs(&case.data);
            let data32: Vec<Vec<f32>> = case.data.iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
            let fast_inputs = case.inputs(&data32);
            let (bdl, bdn) = (batch * shape.dim * len, batch * shape.dim * state);
            let (mut y, mut last) = (vec![0.0; bdl], vec![0.0; bdn]);
            scan_forward_reference(&shape, &exact_inputs, &mut y, &mut last);
            let (mut yf, mut lastf) = (vec![f32::NAN; bdl], vec![f32::NAN; bdn]);
            let checkpoints = scan_forward(&shape, &fast_inputs, &mut yf, &mut lastf);
            close("y", &yf, &y)?;
            close("last_state", &lastf, &last)?;
            let g_last: Vec<f32> = data32[9].clone();
            let exact = scan_backward_reference(&shape, &exact_inputs, &case.data[8], Some(&case.data[9]));
            let fast = scan_backward(&shape, &fast_inputs, &data32[8], Some(&g_last), checkpoints.as_ref());
            let recomputed = scan_backward(&shape, &fast_inputs, &data32[8], Some(&g_last), None);
            prop_assert_eq!(&fast, &recomputed, "the backward from checkpoints equals the one that recomputes them");
            for (name, f, e) in [
                ("du", &fast.u, &exact.u), ("ddelta", &fast.delta, &exact.delta), ("dA", &fast.a, &exact.a),
                ("dB", &fast.b, &exact.b), ("dC", &fast.c, &exact.c), ("dD", &fast.d, &exact.d),
                ("dz", &fast.z, &exact.z), ("dbias", &fast.delta_bias, &exact.delta_bias),
            ] {
                close(name, f, e)?;
            }
        }
    }

    #[test]
    fn reference_backward_matches_finite_differences() {
        let shape = ScanShape {
            batch: 1,
            dim: 2,
            len: 5,
            state: 3,
            groups: 1,
            delta_softplus: true,
        };
        let case = Case::new(shape, [true, true, true], 7);
        let loss = |data: &[Vec<f64>]| {
            let (mut y, mut last) = (vec![0.0; 10], vec![0.0; 6]);
            scan_forward_reference(&shape, &case.inputs(data), &mut y, &mut last);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            dot(&y, &data[8]) + dot(&last, &data[9])
        };
        let g = scan_backward_reference(&shape, &case.inputs(&case.data), &case.data[8], Some(&case.data[9]));
        let analytic = [&g.u, &g.delta, &g.a, &g.b, &g.c, &g.d, &g.z, &g.delta_bias];
        for (input, grad) in analytic.iter().enumerate() {
            for i in 0..grad.len() {
                let mut plus = case.data.clone();
                plus[input][i] += 1e-6;
                let mut minus = case.data.clone();
                minus[input][i] -= 1e-6;
                let numeric = (loss(&plus) - loss(&minus)) / 2e-6;
                assert!(
                    (grad[i] - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
                    "input {input}[{i}]: {} vs {numeric}",
                    grad[i]
                );
            }
        }
    }
}
