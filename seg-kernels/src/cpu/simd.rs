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
