//! A small SIMD vocabulary for f32 kernels, implemented for AVX-512 and AVX2+FMA, so that a kernel
//! is written once (generic over [`F32Simd`], `#[inline(always)]`) and instantiated inside a
//! `#[target_feature]` function per instruction set, chosen at run time by [`Isa::detect`].

/// The instruction sets the f32 kernels are written for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
}

impl Isa {
    /// The best instruction set this CPU supports, or `None` (callers then use scalar code).
    pub fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2Fma);
            }
        }
        None
    }
}

/// Vectors of `LANES` f32 values. Every method is `unsafe`: the caller guarantees that the CPU has
/// the instruction set and that `p..p + n` is valid memory (`n <= LANES` lanes are read or written,
/// the others are untouched on store and zero on load).
#[cfg(target_arch = "x86_64")]
pub trait F32Simd {
    const LANES: usize;
    type V: Copy;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn splat(x: f32) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn load(p: *const f32, n: usize) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn store(p: *mut f32, v: Self::V, n: usize);
    /// `a * b + c`, fused.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Rounds to the nearest integer (ties to even).
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^k` for integer-valued `k` in `[-126, 127]`, built in the exponent bits.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn pow2i(k: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `t` where `a > b`, else `f`, lane by lane.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn select_gt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// `(m, e)` with `x = m 2^e`, `m` in `[1, 2)`, for positive normal `x`.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn split_exponent(x: Self::V) -> (Self::V, Self::V);
    /// The sum of all lanes.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    unsafe fn sum(a: Self::V) -> f32;

    /// `e^x` lane by lane, to about 2 ulp: `x = k ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its
    /// degree-6 Taylor polynomial (remainder below 2e-7 relative), times `2^k`. Inputs are clamped to
    /// `[-87.3, 88.7]`, so the result never underflows to 0 nor overflows (e^-87.3 is about 1e-38).
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        let x = Self::min(Self::max(x, Self::splat(-87.3)), Self::splat(88.7));
        let k = Self::round(Self::mul(x, Self::splat(std::f32::consts::LOG2_E)));
        let r = Self::fma(k, Self::splat(-LN2_HI), x);
        let r = Self::fma(k, Self::splat(-LN2_LO), r);
        let mut p = Self::splat(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = Self::fma(p, r, Self::splat(c));
        }
        Self::mul(p, Self::pow2i(k))
    }

    /// `ln x` for positive normal `x`, to a few ulp: `x = m 2^e` with `m` in `[sqrt(1/2), sqrt 2)`,
    /// `ln m = 2 atanh(t)`, `t = (m - 1) / (m + 1)`, by its odd series to `t^9`.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    #[inline(always)]
    unsafe fn ln(x: Self::V) -> Self::V {
        let (m, e) = Self::split_exponent(x);
        let big = std::f32::consts::SQRT_2;
        let (m, e) = (
            Self::select_gt(m, Self::splat(big), Self::mul(m, Self::splat(0.5)), m),
            Self::select_gt(m, Self::splat(big), Self::add(e, Self::splat(1.0)), e),
        );
        let one = Self::splat(1.0);
        let t = Self::div(Self::sub(m, one), Self::add(m, one));
        let t2 = Self::mul(t, t);
        let mut p = Self::splat(1.0 / 9.0);
        for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
            p = Self::fma(p, t2, Self::splat(c));
        }
        Self::fma(
            Self::mul(Self::splat(2.0), t),
            p,
            Self::mul(e, Self::splat(std::f32::consts::LN_2)),
        )
    }

    /// `ln(1 + y)` for `y > -1`, accurate also for tiny `y` (Goldberg's correction:
    /// `ln(u) y / (u - 1)` with `u = 1 + y` rounded, or `y` where `u` rounds to 1).
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    #[inline(always)]
    unsafe fn ln_1p(y: Self::V) -> Self::V {
        let u = Self::add(Self::splat(1.0), y);
        let du = Self::sub(u, Self::splat(1.0));
        let corrected = Self::div(Self::mul(Self::ln(u), y), Self::max(du, Self::splat(f32::MIN_POSITIVE)));
        // du > 0 or du < 0 means u moved off 1; du == 0 leaves y itself.
        Self::select_gt(Self::mul(du, du), Self::splat(0.0), corrected, y)
    }

    /// `1 / (1 + e^-x)`.
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    #[inline(always)]
    unsafe fn sigmoid(x: Self::V) -> Self::V {
        let one = Self::splat(1.0);
        Self::div(one, Self::add(one, Self::exp(Self::sub(Self::splat(0.0), x))))
    }

    /// `ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)`, which equals PyTorch's thresholded softplus to
    /// f32 precision (above 20 the second term is below half an ulp of x).
    ///
    /// # Safety
    /// As for every method of this trait (see its doc).
    #[inline(always)]
    unsafe fn softplus(x: Self::V) -> Self::V {
        let zero = Self::splat(0.0);
        let neg_abs = Self::min(x, Self::sub(zero, x));
        Self::add(Self::max(x, zero), Self::ln_1p(Self::exp(neg_abs)))
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::F32Simd;

    /// 16 lanes in a zmm register.
    pub struct Avx512;

    impl F32Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> __m512 {
            if n >= 16 {
                _mm512_loadu_ps(p)
            } else {
                _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p)
            }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512, n: usize) {
            if n >= 16 {
                _mm512_storeu_ps(p, v)
            } else {
                _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v)
            }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            _mm512_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: __m512, b: __m512) -> __m512 {
            _mm512_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn round(a: __m512) -> __m512 {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(k: __m512) -> __m512 {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                _mm512_cvtps_epi32(k),
                _mm512_set1_epi32(127),
            )))
        }
        #[inline(always)]
        unsafe fn sum(a: __m512) -> f32 {
            _mm512_reduce_add_ps(a)
        }
        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            _mm512_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: __m512, b: __m512) -> __m512 {
            _mm512_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn select_gt(a: __m512, b: __m512, t: __m512, f: __m512) -> __m512 {
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b), f, t)
        }
        #[inline(always)]
        unsafe fn split_exponent(x: __m512) -> (__m512, __m512) {
            (
                _mm512_getmant_ps::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(x),
                _mm512_getexp_ps(x),
            )
        }
    }

    /// Runs 12 independent FMA chains for `iterations` steps; returns the flops done.
    #[inline(always)]
    unsafe fn fma_chains<S: F32Simd>(iterations: u64) -> f64 {
        let (a, b) = (S::splat(0.999_999), S::splat(1e-7));
        let mut acc = [S::splat(1.0); 12];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = S::fma(*v, a, b);
            }
        }
        let mut sink = [0.0f32; 16];
        for v in acc {
            S::store(sink.as_mut_ptr(), v, S::LANES);
            std::hint::black_box(sink);
        }
        (iterations * 12 * 2 * S::LANES as u64) as f64
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_chains_avx512(iterations: u64) -> f64 {
        fma_chains::<Avx512>(iterations)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_chains_avx2(iterations: u64) -> f64 {
        fma_chains::<Avx2>(iterations)
    }

    /// 8 lanes in a ymm register.
    pub struct Avx2;

    #[inline(always)]
    unsafe fn lane_mask(n: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
    }

    impl F32Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32, n: usize) -> __m256 {
            if n >= 8 {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, lane_mask(n))
            }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256, n: usize) {
            if n >= 8 {
                _mm256_storeu_ps(p, v)
            } else {
                _mm256_maskstore_ps(p, lane_mask(n), v)
            }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            _mm256_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: __m256, b: __m256) -> __m256 {
            _mm256_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn round(a: __m256) -> __m256 {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(k: __m256) -> __m256 {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(k),
                _mm256_set1_epi32(127),
            )))
        }
        #[inline(always)]
        unsafe fn sum(a: __m256) -> f32 {
            let halves = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
        }
        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            _mm256_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: __m256, b: __m256) -> __m256 {
            _mm256_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn select_gt(a: __m256, b: __m256, t: __m256, f: __m256) -> __m256 {
            _mm256_blendv_ps(f, t, _mm256_cmp_ps::<_CMP_GT_OQ>(a, b))
        }
        #[inline(always)]
        unsafe fn split_exponent(x: __m256) -> (__m256, __m256) {
            let bits = _mm256_castps_si256(x);
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f80_0000),
            );
            (_mm256_castsi256_ps(m), _mm256_cvtepi32_ps(e))
        }
    }
}

/// Measures this CPU's f32 fused-multiply-add peak in GFLOP/s on `threads` threads: independent
/// chains of vector FMAs (enough to hide the latency), `2 * LANES` flops each. The reference that
/// kernel efficiencies are quoted against.
pub fn measure_fma_peak(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let isa = Isa::detect()?;
        let iterations = 20_000_000u64;
        let start = std::time::Instant::now();
        let flops: f64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || match isa {
                        // SAFETY: the instruction set was detected on this CPU.
                        Isa::Avx512 => unsafe { x86::fma_chains_avx512(iterations) },
                        Isa::Avx2Fma => unsafe { x86::fma_chains_avx2(iterations) },
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("FMA thread")).sum()
        });
        Some(flops / start.elapsed().as_secs_f64() / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Runs `check` for every instruction set this CPU has.
    fn for_each_isa(check: impl Fn(Isa)) {
        if std::arch::is_x86_feature_detected!("avx512f") {
            check(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            check(Isa::Avx2Fma);
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp_and_sum_avx512(xs: &[f32; 16]) -> ([f32; 16], f32) {
        exp_and_sum::<Avx512>(xs)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_and_sum_avx2(xs: &[f32; 16]) -> ([f32; 16], f32) {
        exp_and_sum::<Avx2>(xs)
    }

    /// Applies `f` to 16 values with `S`.
    #[inline(always)]
    unsafe fn map16<S: F32Simd>(xs: &[f32; 16], f: impl Fn(S::V) -> S::V) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        for i in (0..16).step_by(S::LANES) {
            S::store(
                out.as_mut_ptr().add(i),
                f(S::load(xs.as_ptr().add(i), S::LANES)),
                S::LANES,
            );
        }
        out
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn functions_avx512(xs: &[f32; 16]) -> [[f32; 16]; 4] {
        functions::<Avx512>(xs)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn functions_avx2(xs: &[f32; 16]) -> [[f32; 16]; 4] {
        functions::<Avx2>(xs)
    }

    /// `ln |x|`, `ln(1 + |x|)`, `softplus(x)`, `sigmoid(x)`.
    #[inline(always)]
    unsafe fn functions<S: F32Simd>(xs: &[f32; 16]) -> [[f32; 16]; 4] {
        let abs = |v| S::max(v, S::sub(S::splat(0.0), v));
        [
            map16::<S>(xs, |v| S::ln(abs(v))),
            map16::<S>(xs, |v| S::ln_1p(abs(v))),
            map16::<S>(xs, |v| S::softplus(v)),
            map16::<S>(xs, |v| S::sigmoid(v)),
        ]
    }

    #[test]
    fn ln_ln_1p_softplus_and_sigmoid_are_accurate() {
        for_each_isa(|isa| {
            let mut worst = [0.0f64; 4];
            for step in 0..4000 {
                // Magnitudes from 1e-12 to 1e6 and both signs.
                let xs: [f32; 16] = std::array::from_fn(|i| {
                    let k = (step * 16 + i) as f64;
                    let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                    (sign * 10f64.powf(-12.0 + 18.0 * k / 64000.0)) as f32
                });
                // SAFETY: the ISA was detected.
                let got = unsafe {
                    match isa {
                        Isa::Avx512 => functions_avx512(&xs),
                        Isa::Avx2Fma => functions_avx2(&xs),
                    }
                };
                for (i, &x) in xs.iter().enumerate() {
                    let x = x as f64;
                    let exact = [
                        x.abs().ln(),
                        x.abs().ln_1p(),
                        if x > 20.0 { x } else { x.exp().ln_1p() },
                        1.0 / (1.0 + (-x).exp()),
                    ];
                    for f in 0..4 {
                        if exact[f].abs() < 1e-37 {
                            // Below f32's normal range: exp's clamp returns about 1e-38 instead.
                            assert!(got[f][i].abs() < 1e-37, "{isa:?} f{f}({x}) = {} not tiny", got[f][i]);
                            continue;
                        }
                        let scale = if f == 0 {
                            exact[0].abs().max(1.0)
                        } else {
                            exact[f].abs()
                        };
                        worst[f] = worst[f].max((got[f][i] as f64 - exact[f]).abs() / scale);
                    }
                }
            }
            assert!(
                worst.iter().all(|&w| w < 2e-6),
                "{isa:?}: worst relative errors {worst:?}"
            );
        });
    }

    #[inline(always)]
    unsafe fn exp_and_sum<S: F32Simd>(xs: &[f32; 16]) -> ([f32; 16], f32) {
        let mut out = [0.0f32; 16];
        let mut total = 0.0;
        for i in (0..16).step_by(S::LANES) {
            let v = S::load(xs.as_ptr().add(i), S::LANES);
            S::store(out.as_mut_ptr().add(i), S::exp(v), S::LANES);
            total += S::sum(v);
        }
        (out, total)
    }

    #[test]
    fn exp_is_within_a_few_ulp_and_sum_adds_all_lanes() {
        for_each_isa(|isa| {
            let mut worst: f64 = 0.0;
            for step in 0..2000 {
                let xs: [f32; 16] = std::array::from_fn(|i| -87.0 + 0.0054 * (step * 16 + i) as f32);
                // SAFETY: the ISA was detected.
                let (ys, total) = unsafe {
                    match isa {
                        Isa::Avx512 => exp_and_sum_avx512(&xs),
                        Isa::Avx2Fma => exp_and_sum_avx2(&xs),
                    }
                };
                for (x, y) in xs.iter().zip(ys) {
                    let exact = (*x as f64).exp();
                    worst = worst.max((y as f64 - exact).abs() / exact);
                }
                let expected: f32 = xs.iter().sum();
                assert!(
                    (total - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                    "{isa:?} sum"
                );
            }
            assert!(worst < 5e-7, "{isa:?}: relative error {worst}");
        });
    }
}
