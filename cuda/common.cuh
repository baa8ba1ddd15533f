// Put in front of every source in this folder (see seg-kernels/src/cuda/sources.rs): the types and
// helpers all kernels share. NVRTC has no standard headers, so only built-ins are used here.

typedef unsigned int u32;
typedef long long i64;

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
