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
