// Put in front of every source in this folder (see seg-kernels/src/cuda/sources.rs): the types and
// helpers all kernels share. NVRTC has no standard headers, so only built-ins are used here.

typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef unsigned char u8;

// The global index of this thread in a 1D grid-stride loop.
#define GRID_STRIDE_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)

// Half-precision storage types (NVRTC has no cuda_fp16.h / cuda_bf16.h): the 16 bits, converted to and
// from f32 by the hardware's conversions (round to nearest even). Kernels compute in f32.
struct f16 {
    unsigned short bits;
};
struct bf16 {
    unsigned short bits;
};

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(f16 x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}
__device__ __forceinline__ float to_f32(bf16 x) { return __uint_as_float(((u32)x.bits) << 16); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
    return x;
}
template <>
__device__ __forceinline__ f16 from_f32<f16>(float x) {
    f16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
    return h;
}
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float x) {
    bf16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
    return h;
}

// Instantiates MACRO(T, suffix) for each storage type: extern "C" entry points per type.
#define FOR_EACH_FLOAT(MACRO) MACRO(float, f32) MACRO(f16, f16) MACRO(bf16, bf16)

// A tensor view: element `i` (row-major over `shape`) sits at `offset + sum_d idx_d(i) * strides[d]`.
// Broadcast axes have stride 0. Mirrors `seg_kernels::cuda::Strided` (same field order, 144 bytes).
#define MAX_RANK 8
struct Strided {
    i64 shape[MAX_RANK];
    i64 strides[MAX_RANK];
    i64 offset;
    int rank;
    int pad;
};

// offset(l, i) = l.offset + sum_d ((i / prod_{e>d} shape_e) mod shape_d) * strides_d
__device__ __forceinline__ i64 strided_offset(const Strided& l, i64 i) {
    i64 off = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        i64 s = l.shape[d];
        off += (i % s) * l.strides[d];
        i /= s;
    }
    return off;
}

// Every element type to and from f64, with Rust's `as` semantics for the integers (saturating,
// NaN -> 0, truncation toward zero). f16/bf16 round through f32
// (the conversions above).
__device__ __forceinline__ double to_f64(float x) { return (double)x; }
__device__ __forceinline__ double to_f64(double x) { return x; }
__device__ __forceinline__ double to_f64(i64 x) { return (double)x; }
__device__ __forceinline__ double to_f64(u8 x) { return (double)x; }
__device__ __forceinline__ double to_f64(f16 x) { return (double)to_f32(x); }
__device__ __forceinline__ double to_f64(bf16 x) { return (double)to_f32(x); }

template <typename T> __device__ __forceinline__ T from_f64(double x);
template <> __device__ __forceinline__ float from_f64<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_f64<double>(double x) { return x; }
template <> __device__ __forceinline__ i64 from_f64<i64>(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return 9223372036854775807LL;
    if (x <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
    return (i64)x;
}
template <> __device__ __forceinline__ u8 from_f64<u8>(double x) {
    if (!(x > 0.0)) return 0;
    if (x >= 255.0) return 255;
    return (u8)x;
}
template <> __device__ __forceinline__ f16 from_f64<f16>(double x) { return from_f32<f16>((float)x); }
template <> __device__ __forceinline__ bf16 from_f64<bf16>(double x) { return from_f32<bf16>((float)x); }

// One name per math function for f32 and f64.
#define MATH1(name, f32fn, f64fn) \
    __device__ __forceinline__ float m_##name(float x) { return f32fn(x); } \
    __device__ __forceinline__ double m_##name(double x) { return f64fn(x); }
MATH1(exp, expf, exp)
MATH1(log, logf, log)
MATH1(log1p, log1pf, log1p)
MATH1(sqrt, sqrtf, sqrt)
MATH1(abs, fabsf, fabs)
MATH1(tanh, tanhf, tanh)
MATH1(erf, erff, erf)
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float m_fmax(float x, float y) { return fmaxf(x, y); }
__device__ __forceinline__ double m_fmax(double x, double y) { return fmax(x, y); }
template <typename T> __device__ __forceinline__ bool is_nan(T x) { return x != x; }
template <typename T> __device__ __forceinline__ T infinity();
template <> __device__ __forceinline__ float infinity<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double infinity<double>() { return __longlong_as_double(0x7ff0000000000000LL); }

// Warp shuffles for every reduced type (u8 travels as an int).
__device__ __forceinline__ float shfl_down(float v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl_down(double v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ i64 shfl_down(i64 v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ u8 shfl_down(u8 v, int o) { return (u8)__shfl_down_sync(0xffffffffu, (int)v, o); }

// The block size every row kernel is launched with (a multiple of 32).
#define ROW_BLOCK 256

// Sum of `v` over the block, returned to every thread. Every thread of the block must call it.
template <typename T> __device__ T block_sum(T v) {
    __shared__ T partial[ROW_BLOCK / 32];
    for (int o = 16; o > 0; o >>= 1) v += shfl_down(v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? partial[lane] : (T)0;
        for (int o = 16; o > 0; o >>= 1) v += shfl_down(v, o);
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    return partial[0];
}

// NaN-propagating maximum (a NaN anywhere wins), as the CPU reductions.
template <typename T> __device__ __forceinline__ T nan_max(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a > b ? a : b)); }
template <typename T> __device__ __forceinline__ T nan_min(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a < b ? a : b)); }
// Maximum that skips NaN (Rust's f32::max), used by softmax's shift.
template <typename T> __device__ __forceinline__ T skip_nan_max(T a, T b) { return m_fmax(a, b); }

// `op` (nan_max, nan_min or skip_nan_max) of `v` over the block, returned to every thread.
#define BLOCK_FOLD(name, op) \
    template <typename T> __device__ T name(T v) { \
        __shared__ T partial[ROW_BLOCK / 32]; \
        for (int o = 16; o > 0; o >>= 1) v = op(v, shfl_down(v, o)); \
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5; \
        __syncthreads(); \
        if (lane == 0) partial[warp] = v; \
        __syncthreads(); \
        if (warp == 0) { \
            v = lane < (int)(blockDim.x >> 5) ? partial[lane] : partial[0]; \
            for (int o = 16; o > 0; o >>= 1) v = op(v, shfl_down(v, o)); \
            if (lane == 0) partial[0] = v; \
        } \
        __syncthreads(); \
        return partial[0]; \
    }
BLOCK_FOLD(block_nan_max, nan_max)
BLOCK_FOLD(block_nan_min, nan_min)
BLOCK_FOLD(block_skip_nan_max, skip_nan_max)
