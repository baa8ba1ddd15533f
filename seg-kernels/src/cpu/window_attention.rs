//! Fused window attention (Swin's windowed multi-head self-attention), forward and backward.
//!
//! For window `w` of `N` tokens, head `h` of `d` channels, with `q, k, v` that head's rows of the
//! packed projection, the gathered relative-position bias `B_h` `(N, N)` and the optional shift
//! mask `M` `(nW, N, N)` (window `w` uses `M[w % nW]`):
//!
//! ```text
//! S_ij = scale q_i . k_j + B_h,ij + M_w,ij
//! P_ij = exp(S_ij - lse_i),          lse_i = ln sum_j exp(S_ij)
//! o_i  = sum_j P_ij v_j
//! ```
//!
//! Backward, from `do` (the gradient reaching `o`), with `D_i = do_i . o_i = sum_j P_ij dP_ij`:
//!
//! ```text
//! dP_ij = do_i . v_j,    dS_ij = P_ij (dP_ij - D_i)
//! dq_i  = scale sum_j dS_ij k_j,   dk_j = scale sum_i dS_ij q_i,   dv_j = sum_i P_ij do_i
//! dB_h += dS (summed over windows),  dM_s += dS (summed over heads and the windows w % nW = s)
//! ```
//!
//! Layouts (row-major): `qkv` `(windows, N, 3, heads, d)` as MONAI's `qkv` linear produces it (`q`,
//! `k`, `v` at parts 0, 1, 2), the output `o` `(windows, N, heads, d)` (MONAI's
//! `(attn @ v).transpose(1, 2).reshape(b, n, c)`), `lse` `(windows, heads, N)`, bias `(heads, N, N)`.
//!
//! The fast f32 path (FlashAttention-2's scheme on CPU SIMD) runs one task per (window, head) in
//! the forward: blocks of [`BLOCK_ROWS`] queries against key tiles of [`BLOCK_COLS`] keys, so the
//! score tile stays in L1, with an online softmax (running max and sum, the output rescaled when
//! the max grows); it keeps only `lse`. The backward recomputes `P` from `q`, `k` and `lse` tile by
//! tile, one task per (head, window group) so that the bias gradient is summed in a fixed order
//! (deterministic for any thread count). Every tile product is one register-blocked broadcast-FMA
//! micro-kernel. The `*_reference` functions are the plain loops it is tested against, generic over
//! f32 and f64.

use num_traits::Float;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
#[cfg(target_arch = "x86_64")]
use super::SharedOut;

/// Query rows per block of the fast path.
pub const BLOCK_ROWS: usize = 32;
/// Keys per score tile of the fast path.
pub const BLOCK_COLS: usize = 128;
/// Window groups of the backward (each a task per head with its own bias-gradient partial) when
/// the mask gradient is not wanted.
const GROUPS: usize = 8;

/// Sizes of a window attention: `windows` (batch times windows per image), `heads`, `tokens` per
/// window (`N`), `head_dim` (`d`), `mask_windows` (`nW`, the mask's first axis; ignored without a
/// mask) and the score `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowAttnShape {
    pub windows: usize,
    pub heads: usize,
    pub tokens: usize,
    pub head_dim: usize,
    pub mask_windows: usize,
    pub scale: f64,
}

impl WindowAttnShape {
    /// Checks the sizes; the message says what is wrong.
    pub fn validate(&self, masked: bool) -> Result<(), String> {
        if self.heads == 0 || self.tokens == 0 || self.head_dim == 0 {
            return Err(format!(
                "heads, tokens and head_dim must be positive, found {}, {}, {}",
                self.heads, self.tokens, self.head_dim
            ));
        }
        if masked && (self.mask_windows == 0 || !self.windows.is_multiple_of(self.mask_windows)) {
            return Err(format!(
                "the number of windows ({}) must be a multiple of the mask's windows ({})",
                self.windows, self.mask_windows
            ));
        }
        Ok(())
    }

    fn qkv_len(&self) -> usize {
        self.windows * self.tokens * 3 * self.heads * self.head_dim
    }

    fn out_len(&self) -> usize {
        self.windows * self.tokens * self.heads * self.head_dim
    }

    fn lse_len(&self) -> usize {
        self.windows * self.heads * self.tokens
    }

    fn bias_len(&self) -> usize {
        self.heads * self.tokens * self.tokens
    }

    fn mask_len(&self) -> usize {
        self.mask_windows * self.tokens * self.tokens
    }

    /// Offset of `qkv[w, i, part, h, 0]`.
    fn qkv_at(&self, w: usize, i: usize, part: usize, h: usize) -> usize {
        (((w * self.tokens + i) * 3 + part) * self.heads + h) * self.head_dim
    }

    /// Offset of `o[w, i, h, 0]`.
    fn out_at(&self, w: usize, i: usize, h: usize) -> usize {
        ((w * self.tokens + i) * self.heads + h) * self.head_dim
    }

    /// Offset of row `i` of the mask of window `w`.
    fn mask_row(&self, w: usize, i: usize) -> usize {
        ((w % self.mask_windows) * self.tokens + i) * self.tokens
    }
}

/// The inputs (see the module doc for layouts).
#[derive(Clone, Copy, Debug)]
pub struct WindowAttnInputs<'a, T> {
    pub qkv: &'a [T],
    pub bias: &'a [T],
    pub mask: Option<&'a [T]>,
}

/// Gradients of the backward: `qkv` in the input's layout, `bias` `(heads, N, N)`, `mask`
/// `(nW, N, N)` (empty unless asked for).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowAttnGrads<T> {
    pub qkv: Vec<T>,
    pub bias: Vec<T>,
    pub mask: Vec<T>,
}

fn check_sizes<T>(s: &WindowAttnShape, x: &WindowAttnInputs<T>) {
    assert!(s.validate(x.mask.is_some()).is_ok(), "window attention: {s:?}");
    assert_eq!(x.qkv.len(), s.qkv_len(), "window attention: qkv size");
    assert_eq!(x.bias.len(), s.bias_len(), "window attention: bias size");
    assert!(
        x.mask.is_none_or(|m| m.len() == s.mask_len()),
        "window attention: mask size"
    );
}

/// The scores `S_i.` of query `i` of window `w`, head `h` (module doc), into `row`.
fn score_row<T: Float>(s: &WindowAttnShape, x: &WindowAttnInputs<T>, w: usize, h: usize, i: usize, row: &mut [T]) {
    let (n, d) = (s.tokens, s.head_dim);
    let scale = T::from(s.scale).unwrap();
    let q = &x.qkv[s.qkv_at(w, i, 0, h)..][..d];
    for (j, out) in row.iter_mut().enumerate() {
        let k = &x.qkv[s.qkv_at(w, j, 1, h)..][..d];
        let dot = q.iter().zip(k).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
        let mask = x.mask.map_or(T::zero(), |m| m[s.mask_row(w, i) + j]);
        *out = scale * dot + x.bias[(h * n + i) * n + j] + mask;
    }
}

/// Softmax of `row` in place; returns its logsumexp.
fn softmax_row<T: Float>(row: &mut [T]) -> T {
    let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
    let mut l = T::zero();
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        l = l + *v;
    }
    for v in row.iter_mut() {
        *v = *v / l;
    }
    m + l.ln()
}

/// The forward by plain loops: `out` `(windows, N, heads, d)` and `lse` `(windows, heads, N)`.
pub fn window_attention_forward_reference<T: Float>(
    s: &WindowAttnShape,
    x: &WindowAttnInputs<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    check_sizes(s, x);
    let (n, d) = (s.tokens, s.head_dim);
    let mut row = vec![T::zero(); n];
    for w in 0..s.windows {
        for h in 0..s.heads {
            for i in 0..n {
                score_row(s, x, w, h, i, &mut row);
                lse[(w * s.heads + h) * n + i] = softmax_row(&mut row);
                let o = &mut out[s.out_at(w, i, h)..][..d];
                o.fill(T::zero());
                for (j, &p) in row.iter().enumerate() {
                    let v = &x.qkv[s.qkv_at(w, j, 2, h)..][..d];
                    for (o, &v) in o.iter_mut().zip(v) {
                        *o = *o + p * v;
                    }
                }
            }
        }
    }
}

/// The backward by plain loops, recomputing `P`: gradients of `sum(o * dout)`; the mask's only
/// when `mask_grad`.
pub fn window_attention_backward_reference<T: Float>(
    s: &WindowAttnShape,
    x: &WindowAttnInputs<T>,
    dout: &[T],
    mask_grad: bool,
) -> WindowAttnGrads<T> {
    check_sizes(s, x);
    let (n, d) = (s.tokens, s.head_dim);
    let scale = T::from(s.scale).unwrap();
    let mut g = WindowAttnGrads {
        qkv: vec![T::zero(); s.qkv_len()],
        bias: vec![T::zero(); s.bias_len()],
        mask: vec![T::zero(); if mask_grad && x.mask.is_some() { s.mask_len() } else { 0 }],
    };
    let mut p = vec![T::zero(); n];
    let mut dp = vec![T::zero(); n];
    for w in 0..s.windows {
        for h in 0..s.heads {
            for i in 0..n {
                score_row(s, x, w, h, i, &mut p);
                softmax_row(&mut p);
                let gout = &dout[s.out_at(w, i, h)..][..d];
                for (j, dp) in dp.iter_mut().enumerate() {
                    let v = &x.qkv[s.qkv_at(w, j, 2, h)..][..d];
                    *dp = gout.iter().zip(v).fold(T::zero(), |a, (&x, &y)| a + x * y);
                }
                let big_d = p.iter().zip(&dp).fold(T::zero(), |a, (&x, &y)| a + x * y);
                for j in 0..n {
                    let ds = p[j] * (dp[j] - big_d);
                    g.bias[(h * n + i) * n + j] = g.bias[(h * n + i) * n + j] + ds;
                    if !g.mask.is_empty() {
                        let at = s.mask_row(w, i) + j;
                        g.mask[at] = g.mask[at] + ds;
                    }
                    let (qi, kj, vj) = (s.qkv_at(w, i, 0, h), s.qkv_at(w, j, 1, h), s.qkv_at(w, j, 2, h));
                    for (c, &go) in gout.iter().enumerate() {
                        g.qkv[qi + c] = g.qkv[qi + c] + scale * ds * x.qkv[kj + c];
                        g.qkv[kj + c] = g.qkv[kj + c] + scale * ds * x.qkv[qi + c];
                        g.qkv[vj + c] = g.qkv[vj + c] + p[j] * go;
                    }
                }
            }
        }
    }
    g
}

/// The forward (module doc) on the SIMD fast path when the CPU has one, else the reference loops.
/// Returns `lse` `(windows, heads, N)`, which [`window_attention_backward`] needs.
pub fn window_attention_forward(s: &WindowAttnShape, x: &WindowAttnInputs<f32>, out: &mut [f32]) -> Vec<f32> {
    check_sizes(s, x);
    let mut lse = vec![0.0f32; s.lse_len()];
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Isa::detect() {
        let f = fast::forward_fn(isa);
        let (out_w, lse_w) = (SharedOut::new(out), SharedOut::new(&mut lse));
        (0..s.windows * s.heads).into_par_iter().for_each(|task| {
            // SAFETY: the ISA was detected; task (w, h) writes only its own rows of out and lse.
            unsafe { f(s, x, task / s.heads, task % s.heads, out_w, lse_w) }
        });
        return lse;
    }
    window_attention_forward_reference(s, x, out, &mut lse);
    lse
}

/// The backward (module doc) on the SIMD fast path when the CPU has one, else the reference
/// loops, from the forward's `out` and `lse`: gradients of `sum(out * dout)`, the mask's only when
/// `mask_grad` (then the windows are grouped by mask index, `nW` groups).
pub fn window_attention_backward(
    s: &WindowAttnShape,
    x: &WindowAttnInputs<f32>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    mask_grad: bool,
) -> WindowAttnGrads<f32> {
    check_sizes(s, x);
    assert!(
        out.len() == s.out_len() && dout.len() == s.out_len() && lse.len() == s.lse_len(),
        "window attention backward: sizes"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Isa::detect() {
        let mask_grad = mask_grad && x.mask.is_some();
        let groups = if mask_grad {
            s.mask_windows
        } else {
            s.windows.clamp(1, GROUPS)
        };
        let f = fast::backward_fn(isa);
        let mut dqkv = vec![0.0f32; s.qkv_len()];
        let dqkv_w = SharedOut::new(&mut dqkv);
        let nn = s.tokens * s.tokens;
        let partials: Vec<Vec<f32>> = (0..s.heads * groups)
            .into_par_iter()
            .map(|task| {
                let (h, g) = (task / groups, task % groups);
                let mut partial = vec![0.0f32; nn];
                for w in (g..s.windows).step_by(groups) {
                    // SAFETY: the ISA was detected; (w, h) writes only its own rows of dqkv.
                    unsafe { f(s, x, out, lse, dout, w, h, dqkv_w, &mut partial) };
                }
                partial
            })
            .collect();
        let mut bias = vec![0.0f32; s.bias_len()];
        for (task, partial) in partials.iter().enumerate() {
            let h = task / groups;
            for (b, p) in bias[h * nn..][..nn].iter_mut().zip(partial) {
                *b += p;
            }
        }
        let mut mask = Vec::new();
        if mask_grad {
            mask = vec![0.0f32; s.mask_len()];
            for (task, partial) in partials.iter().enumerate() {
                let g = task % groups;
                for (m, p) in mask[g * nn..][..nn].iter_mut().zip(partial) {
                    *m += p;
                }
            }
        }
        return WindowAttnGrads { qkv: dqkv, bias, mask };
    }
    window_attention_backward_reference(s, x, dout, mask_grad)
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::super::simd::{Avx2, Avx512, F32Simd, Isa};
    use super::super::SharedOut;
    use super::{WindowAttnInputs, WindowAttnShape, BLOCK_COLS, BLOCK_ROWS};

    /// Score of a padding lane: far below any real score, finite so that `exp` stays defined.
    const NEG_FILL: f32 = -1e30;

    /// One register block of [`gemm`]: rows `r0..r0 + R` (or `rn` of them), columns `c0..c0 + V
    /// LANES` (or `cn`), all of `k`. `FULL` when the block is whole, which removes every tail test.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<S: F32Simd, const R: usize, const V: usize, const FULL: bool>(
        rn: usize,
        cn: usize,
        k: usize,
        a: *const f32,
        (a_rs, a_cs): (usize, usize),
        b: *const f32,
        b_rs: usize,
        c: *mut f32,
        c_rs: usize,
        accumulate: bool,
    ) {
        let l = S::LANES;
        let lanes = |v: usize| if FULL { l } else { cn.saturating_sub(v * l).min(l) };
        let mut acc = [[S::splat(0.0); V]; R];
        if accumulate {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    if (FULL || r < rn) && lanes(v) > 0 {
                        *acc = S::load(c.add(r * c_rs + v * l), lanes(v));
                    }
                }
            }
        }
        for kk in 0..k {
            let mut bv = [S::splat(0.0); V];
            for (v, bv) in bv.iter_mut().enumerate() {
                if lanes(v) > 0 {
                    *bv = S::load(b.add(kk * b_rs + v * l), lanes(v));
                }
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                if FULL || r < rn {
                    let av = S::splat(*a.add(r * a_rs + kk * a_cs));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = S::fma(av, bv, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                if (FULL || r < rn) && lanes(v) > 0 {
                    S::store(c.add(r * c_rs + v * l), acc, lanes(v));
                }
            }
        }
    }

    /// [`block`] over all blocks of a `rows x cols` result.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn blocks<S: F32Simd, const R: usize, const V: usize>(
        rows: usize,
        cols: usize,
        k: usize,
        a: *const f32,
        (a_rs, a_cs): (usize, usize),
        b: *const f32,
        b_rs: usize,
        c: *mut f32,
        c_rs: usize,
        accumulate: bool,
    ) {
        let width = V * S::LANES;
        for r0 in (0..rows).step_by(R) {
            let rn = R.min(rows - r0);
            for c0 in (0..cols).step_by(width) {
                let cn = width.min(cols - c0);
                let (a, b, c) = (a.add(r0 * a_rs), b.add(c0), c.add(r0 * c_rs + c0));
                if rn == R && cn == width {
                    block::<S, R, V, true>(rn, cn, k, a, (a_rs, a_cs), b, b_rs, c, c_rs, accumulate);
                } else {
                    block::<S, R, V, false>(rn, cn, k, a, (a_rs, a_cs), b, b_rs, c, c_rs, accumulate);
                }
            }
        }
    }

    /// `C (+)= A B` for a `rows x cols` `C` (row stride `c_rs`), `A[r, kk] = a[r a_rs + kk a_cs]`
    /// (any strides: `A` may be a transposed tile), `B` row-major with row stride `b_rs`. The
    /// register block is chosen by the width: narrow results take more rows.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm<S: F32Simd>(
        rows: usize,
        cols: usize,
        k: usize,
        a: *const f32,
        a_strides: (usize, usize),
        b: *const f32,
        b_rs: usize,
        c: *mut f32,
        c_rs: usize,
        accumulate: bool,
    ) {
        let l = S::LANES;
        match (l == 16, cols <= l, cols <= 2 * l) {
            (true, true, _) => blocks::<S, 12, 1>(rows, cols, k, a, a_strides, b, b_rs, c, c_rs, accumulate),
            (true, false, true) => blocks::<S, 6, 2>(rows, cols, k, a, a_strides, b, b_rs, c, c_rs, accumulate),
            (true, false, false) => blocks::<S, 4, 4>(rows, cols, k, a, a_strides, b, b_rs, c, c_rs, accumulate),
            (false, true, _) => blocks::<S, 8, 1>(rows, cols, k, a, a_strides, b, b_rs, c, c_rs, accumulate),
            (false, false, _) => blocks::<S, 4, 2>(rows, cols, k, a, a_strides, b, b_rs, c, c_rs, accumulate),
        }
    }

    /// One head of one window, packed: `q` scaled `(N, d)`, `kt` `(d, Np)` (zero-padded to a whole
    /// number of vectors), `v` `(N, d)`, and for the backward `k` `(N, d)` and `vt` `(d, Np)`.
    struct Packed {
        np: usize,
        q: Vec<f32>,
        k: Vec<f32>,
        kt: Vec<f32>,
        v: Vec<f32>,
        vt: Vec<f32>,
    }

    impl Packed {
        fn new(s: &WindowAttnShape, qkv: &[f32], w: usize, h: usize, lanes: usize, backward: bool) -> Self {
            let (n, d) = (s.tokens, s.head_dim);
            let np = n.div_ceil(lanes) * lanes;
            let scale = s.scale as f32;
            let mut p = Packed {
                np,
                q: vec![0.0; n * d],
                k: vec![0.0; if backward { n * d } else { 0 }],
                kt: vec![0.0; d * np],
                v: vec![0.0; n * d],
                vt: vec![0.0; if backward { d * np } else { 0 }],
            };
            for i in 0..n {
                let (q, k, v) = (
                    &qkv[s.qkv_at(w, i, 0, h)..][..d],
                    &qkv[s.qkv_at(w, i, 1, h)..][..d],
                    &qkv[s.qkv_at(w, i, 2, h)..][..d],
                );
                for c in 0..d {
                    p.q[i * d + c] = q[c] * scale;
                    p.kt[c * np + i] = k[c];
                    if backward {
                        p.vt[c * np + i] = v[c];
                    }
                }
                if backward {
                    p.k[i * d..][..d].copy_from_slice(k);
                }
                p.v[i * d..][..d].copy_from_slice(v);
            }
            p
        }
    }

    /// Runs `f(at, v)` over the vectors `v` of the biased scores `row + bias + mask` (keys `j0..j0 +
    /// cols` of query `i`, `at` where `v` lies in the row), the padding lanes up to the next whole
    /// vector [`NEG_FILL`]: one pass that later steps fuse into.
    #[inline(always)]
    unsafe fn biased_row<S: F32Simd>(
        s: &WindowAttnShape,
        x: &WindowAttnInputs<f32>,
        row: &mut [f32],
        (w, h, i): (usize, usize, usize),
        (j0, cols): (usize, usize),
        mut f: impl FnMut(*mut f32, S::V),
    ) {
        let n = s.tokens;
        let bias = x.bias.as_ptr().add((h * n + i) * n + j0);
        let mask = x.mask.map(|m| m.as_ptr().add(s.mask_row(w, i) + j0));
        let padded = cols.div_ceil(S::LANES) * S::LANES;
        row[cols..padded].fill(NEG_FILL);
        let p = row.as_mut_ptr();
        for c in (0..cols).step_by(S::LANES) {
            let m = S::LANES.min(cols - c);
            let mut v = S::add(S::load(p.add(c), S::LANES), S::load(bias.add(c), m));
            if let Some(mask) = mask {
                v = S::add(v, S::load(mask.add(c), m));
            }
            f(p.add(c), v);
        }
    }

    /// The largest lane of `v`.
    #[inline(always)]
    unsafe fn hmax<S: F32Simd>(v: S::V) -> f32 {
        let mut lanes = [0.0f32; 16];
        S::store(lanes.as_mut_ptr(), v, S::LANES);
        lanes[..S::LANES].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    /// `row = exp(row - m)` (a whole number of vectors); returns the sum.
    #[inline(always)]
    unsafe fn exp_row<S: F32Simd>(row: &mut [f32], m: f32) -> f32 {
        let mv = S::splat(m);
        let mut sum = S::splat(0.0);
        for c in (0..row.len()).step_by(S::LANES) {
            let p = row.as_mut_ptr().add(c);
            let e = S::exp(S::sub(S::load(p, S::LANES), mv));
            S::store(p, e, S::LANES);
            sum = S::add(sum, e);
        }
        S::sum(sum)
    }

    /// The forward of window `w`, head `h` (module doc): writes its rows of `out` and `lse`.
    ///
    /// # Safety
    /// The CPU has `S`'s instruction set; no other task writes (w, h)'s rows of `out` and `lse`.
    #[inline(always)]
    pub(super) unsafe fn forward_task<S: F32Simd>(
        s: &WindowAttnShape,
        x: &WindowAttnInputs<f32>,
        w: usize,
        h: usize,
        out: SharedOut<f32>,
        lse: SharedOut<f32>,
    ) {
        let (n, d) = (s.tokens, s.head_dim);
        let p = Packed::new(s, x.qkv, w, h, S::LANES, false);
        let mut tile = vec![0.0f32; BLOCK_ROWS * BLOCK_COLS];
        let mut o = vec![0.0f32; BLOCK_ROWS * d];
        let (mut m, mut l) = ([0.0f32; BLOCK_ROWS], [0.0f32; BLOCK_ROWS]);
        for i0 in (0..n).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(n - i0);
            m.fill(f32::NEG_INFINITY);
            l.fill(0.0);
            o.fill(0.0);
            for j0 in (0..n).step_by(BLOCK_COLS) {
                let cols = BLOCK_COLS.min(n - j0);
                let padded = cols.div_ceil(S::LANES) * S::LANES;
                let (q, kt) = (p.q.as_ptr().add(i0 * d), p.kt.as_ptr().add(j0));
                gemm::<S>(rows, cols, d, q, (d, 1), kt, p.np, tile.as_mut_ptr(), BLOCK_COLS, false);
                for r in 0..rows {
                    let row = &mut tile[r * BLOCK_COLS..][..padded];
                    let mut mx = S::splat(f32::NEG_INFINITY);
                    biased_row::<S>(s, x, row, (w, h, i0 + r), (j0, cols), |at, v| {
                        S::store(at, v, S::LANES);
                        mx = S::max(mx, v);
                    });
                    let m_new = m[r].max(hmax::<S>(mx));
                    let alpha = (m[r] - m_new).exp();
                    l[r] = l[r] * alpha + exp_row::<S>(row, m_new);
                    if alpha != 1.0 {
                        o[r * d..][..d].iter_mut().for_each(|o| *o *= alpha);
                    }
                    m[r] = m_new;
                }
                let v = p.v.as_ptr().add(j0 * d);
                gemm::<S>(
                    rows,
                    d,
                    cols,
                    tile.as_ptr(),
                    (BLOCK_COLS, 1),
                    v,
                    d,
                    o.as_mut_ptr(),
                    d,
                    true,
                );
            }
            let mut lse_rows = [0.0f32; BLOCK_ROWS];
            for r in 0..rows {
                let inv = 1.0 / l[r];
                o[r * d..][..d].iter_mut().for_each(|o| *o *= inv);
                out.write(s.out_at(w, i0 + r, h), &o[r * d..][..d]);
                lse_rows[r] = m[r] + l[r].ln();
            }
            lse.write((w * s.heads + h) * n + i0, &lse_rows[..rows]);
        }
    }

    /// The backward of window `w`, head `h` (module doc): writes its rows of `dqkv` and adds its
    /// score gradient `dS` `(N, N)` to `ds_sum`.
    ///
    /// # Safety
    /// The CPU has `S`'s instruction set; no other task writes (w, h)'s rows of `dqkv`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn backward_task<S: F32Simd>(
        s: &WindowAttnShape,
        x: &WindowAttnInputs<f32>,
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        w: usize,
        h: usize,
        dqkv: SharedOut<f32>,
        ds_sum: &mut [f32],
    ) {
        let (n, d) = (s.tokens, s.head_dim);
        let p = Packed::new(s, x.qkv, w, h, S::LANES, true);
        let mut gout = vec![0.0f32; n * d];
        let mut big_d = vec![0.0f32; n];
        for i in 0..n {
            let (g, o) = (&dout[s.out_at(w, i, h)..][..d], &out[s.out_at(w, i, h)..][..d]);
            gout[i * d..][..d].copy_from_slice(g);
            big_d[i] = g.iter().zip(o).map(|(a, b)| a * b).sum();
        }
        let lse = &lse[(w * s.heads + h) * n..][..n];
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; n * d], vec![0.0f32; n * d], vec![0.0f32; n * d]);
        let mut prob = vec![0.0f32; BLOCK_ROWS * BLOCK_COLS];
        let mut ds = vec![0.0f32; BLOCK_ROWS * BLOCK_COLS];
        for i0 in (0..n).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(n - i0);
            let (q, g) = (p.q.as_ptr().add(i0 * d), gout.as_ptr().add(i0 * d));
            for j0 in (0..n).step_by(BLOCK_COLS) {
                let cols = BLOCK_COLS.min(n - j0);
                let padded = cols.div_ceil(S::LANES) * S::LANES;
                gemm::<S>(
                    rows,
                    cols,
                    d,
                    q,
                    (d, 1),
                    p.kt.as_ptr().add(j0),
                    p.np,
                    prob.as_mut_ptr(),
                    BLOCK_COLS,
                    false,
                );
                for r in 0..rows {
                    let row = &mut prob[r * BLOCK_COLS..][..padded];
                    let lse_r = S::splat(lse[i0 + r]);
                    biased_row::<S>(s, x, row, (w, h, i0 + r), (j0, cols), |at, v| {
                        S::store(at, S::exp(S::sub(v, lse_r)), S::LANES);
                    });
                    row[cols..].fill(0.0);
                }
                // dv_j += sum_r P_rj do_r: P read transposed.
                let dv_at = dv.as_mut_ptr().add(j0 * d);
                gemm::<S>(cols, d, rows, prob.as_ptr(), (1, BLOCK_COLS), g, d, dv_at, d, true);
                gemm::<S>(
                    rows,
                    cols,
                    d,
                    g,
                    (d, 1),
                    p.vt.as_ptr().add(j0),
                    p.np,
                    ds.as_mut_ptr(),
                    BLOCK_COLS,
                    false,
                );
                for r in 0..rows {
                    let (pr, dsr) = (&prob[r * BLOCK_COLS..][..cols], &mut ds[r * BLOCK_COLS..][..cols]);
                    let dd = big_d[i0 + r];
                    let sum_row = &mut ds_sum[(i0 + r) * n + j0..][..cols];
                    for ((ds, &pv), acc) in dsr.iter_mut().zip(pr).zip(sum_row) {
                        *ds = pv * (*ds - dd);
                        *acc += *ds;
                    }
                }
                let k = p.k.as_ptr().add(j0 * d);
                gemm::<S>(
                    rows,
                    d,
                    cols,
                    ds.as_ptr(),
                    (BLOCK_COLS, 1),
                    k,
                    d,
                    dq.as_mut_ptr().add(i0 * d),
                    d,
                    true,
                );
                let dk_at = dk.as_mut_ptr().add(j0 * d);
                gemm::<S>(cols, d, rows, ds.as_ptr(), (1, BLOCK_COLS), q, d, dk_at, d, true);
            }
        }
        let scale = s.scale as f32;
        dq.iter_mut().for_each(|v| *v *= scale);
        for i in 0..n {
            dqkv.write(s.qkv_at(w, i, 0, h), &dq[i * d..][..d]);
            dqkv.write(s.qkv_at(w, i, 1, h), &dk[i * d..][..d]);
            dqkv.write(s.qkv_at(w, i, 2, h), &dv[i * d..][..d]);
        }
    }

    macro_rules! instantiate {
        ($forward:ident, $backward:ident, $simd:ty, $feature:literal) => {
            /// [`forward_task`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`forward_task`].
            #[target_feature(enable = $feature)]
            unsafe fn $forward(
                s: &WindowAttnShape,
                x: &WindowAttnInputs<f32>,
                w: usize,
                h: usize,
                out: SharedOut<f32>,
                lse: SharedOut<f32>,
            ) {
                forward_task::<$simd>(s, x, w, h, out, lse)
            }

            /// [`backward_task`] compiled for one instruction set.
            ///
            /// # Safety
            /// As [`backward_task`].
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $backward(
                s: &WindowAttnShape,
                x: &WindowAttnInputs<f32>,
                out: &[f32],
                lse: &[f32],
                dout: &[f32],
                w: usize,
                h: usize,
                dqkv: SharedOut<f32>,
                ds_sum: &mut [f32],
            ) {
                backward_task::<$simd>(s, x, out, lse, dout, w, h, dqkv, ds_sum)
            }
        };
    }
    instantiate!(forward_avx512, backward_avx512, Avx512, "avx512f");
    instantiate!(forward_avx2, backward_avx2, Avx2, "avx2,fma");

    /// [`forward_task`] for one instruction set.
    pub(super) type ForwardFn =
        unsafe fn(&WindowAttnShape, &WindowAttnInputs<f32>, usize, usize, SharedOut<f32>, SharedOut<f32>);
    /// [`backward_task`] for one instruction set.
    pub(super) type BackwardFn = unsafe fn(
        &WindowAttnShape,
        &WindowAttnInputs<f32>,
        &[f32],
        &[f32],
        &[f32],
        usize,
        usize,
        SharedOut<f32>,
        &mut [f32],
    );

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

    /// Inputs of a random case, in f64 (the reference's precision) and f32.
    struct Case {
        qkv: Vec<f64>,
        bias: Vec<f64>,
        mask: Option<Vec<f64>>,
        dout: Vec<f64>,
    }

    impl Case {
        fn new(shape: WindowAttnShape, masked: bool, seed: u64) -> Self {
            let mask = masked.then(|| {
                // MONAI's shift mask: 0 or -100 by region.
                values(shape.mask_len(), seed + 2)
                    .iter()
                    .map(|v| if *v > 0.3 { -100.0 } else { 0.0 })
                    .collect()
            });
            Case {
                qkv: values(shape.qkv_len(), seed).iter().map(|v| 2.0 * v).collect(),
                bias: values(shape.bias_len(), seed + 1),
                mask,
                dout: values(shape.out_len(), seed + 3),
            }
        }

        fn inputs<'a, T>(&self, qkv: &'a [T], bias: &'a [T], mask: Option<&'a [T]>) -> WindowAttnInputs<'a, T> {
            WindowAttnInputs { qkv, bias, mask }
        }
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&v| v as f32).collect()
    }

    fn close(fast: &[f32], slow: &[f64], tol: f64) -> bool {
        fast.len() == slow.len()
            && fast
                .iter()
                .zip(slow)
                .all(|(&a, &b)| (a as f64 - b).abs() <= tol * (1.0 + b.abs()))
    }

    fn check(shape: WindowAttnShape, masked: bool, mask_grad: bool, seed: u64) -> Result<(), TestCaseError> {
        let c = Case::new(shape, masked, seed);
        let x64 = c.inputs(&c.qkv, &c.bias, c.mask.as_deref());
        let (mut out64, mut lse64) = (vec![0.0; shape.out_len()], vec![0.0; shape.lse_len()]);
        window_attention_forward_reference(&shape, &x64, &mut out64, &mut lse64);
        let g64 = window_attention_backward_reference(&shape, &x64, &c.dout, mask_grad);

        let (qkv, bias, mask, dout) = (f32s(&c.qkv), f32s(&c.bias), c.mask.as_deref().map(f32s), f32s(&c.dout));
        let x = c.inputs(&qkv, &bias, mask.as_deref());
        let mut out = vec![0.0f32; shape.out_len()];
        let lse = window_attention_forward(&shape, &x, &mut out);
        prop_assert!(close(&out, &out64, 1e-4), "out");
        prop_assert!(close(&lse, &lse64, 1e-4), "lse");
        let g = window_attention_backward(&shape, &x, &out, &lse, &dout, mask_grad);
        prop_assert!(close(&g.qkv, &g64.qkv, 2e-4), "dqkv");
        prop_assert!(close(&g.bias, &g64.bias, 2e-4), "dbias");
        prop_assert!(close(&g.mask, &g64.mask, 2e-4), "dmask");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn fast_path_matches_reference(
            dims in proptest::collection::vec(1usize..6, 1..4),
            heads in 1usize..4,
            head_dim in 1usize..40,
            images in 1usize..3,
            mask_windows in 1usize..4,
            masked in any::<bool>(),
            mask_grad in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let shape = WindowAttnShape {
                windows: images * mask_windows,
                heads,
                tokens: dims.iter().product(),
                head_dim,
                mask_windows,
                scale: (head_dim as f64).powf(-0.5),
            };
            check(shape, masked, mask_grad, seed)?;
        }
    }

    #[test]
    fn full_7x7x7_window_spans_several_tiles() {
        let shape = WindowAttnShape {
            windows: 2,
            heads: 2,
            tokens: 343,
            head_dim: 16,
            mask_windows: 2,
            scale: 0.25,
        };
        check(shape, true, true, 5).unwrap();
    }

    #[test]
    fn bad_shapes_are_reported() {
        let mut shape = WindowAttnShape {
            windows: 3,
            heads: 1,
            tokens: 4,
            head_dim: 2,
            mask_windows: 2,
            scale: 1.0,
        };
        assert!(shape.validate(true).unwrap_err().contains("multiple"));
        assert!(shape.validate(false).is_ok());
        shape.heads = 0;
        assert!(shape.validate(false).is_err());
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore]
    fn time_stage1() {
        let s = WindowAttnShape {
            windows: 125,
            heads: 3,
            tokens: 343,
            head_dim: 16,
            mask_windows: 125,
            scale: 0.25,
        };
        let qkv: Vec<f32> = (0..s.qkv_len())
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let bias = vec![0.01f32; s.bias_len()];
        let mask = vec![0.0f32; s.mask_len()];
        let x = WindowAttnInputs {
            qkv: &qkv,
            bias: &bias,
            mask: Some(&mask),
        };
        let mut out = vec![0.0f32; s.out_len()];
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let lse = window_attention_forward(&s, &x, &mut out);
            let f = t.elapsed();
            let t = std::time::Instant::now();
            let g = window_attention_backward(&s, &x, &out, &lse, &out, false);
            eprintln!("fwd {:?} bwd {:?} {}", f, t.elapsed(), g.bias[0]);
        }
    }
}
