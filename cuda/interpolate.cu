// Resampling (PyTorch's interpolate, modes nearest and linear/bilinear/trilinear) of `planes = N * C`
// planes of (depth, height, width); 1-D and 2-D resamplings have leading axes of size 1 in and out.
// The source positions are seg_kernels::cpu::interpolate's, computed in the same precision with
// correctly rounded operations (no FMA contraction), so they match the CPU's exactly:
//
// - nearest: src(o) = min(floor(f32(o) * r), in - 1) in f32;
// - linear, an axis with in == out: the identity; else real = r o (align_corners) or
//   max(r (o + 0.5) - 0.5, 0), i0 = min(floor(real), in - 1), i1 = i0 + (i0 < in - 1),
//   l1 = clamp(real - i0, 0, 1), l0 = 1 - l1, in the element type.
//
// `r` per axis comes from the launcher (the CPU's ratio in its precision). Forward: the blends go width,
// then height, then depth (the CPU's pass order): y = l0 a + l1 b at each step. Backward:
// dx[corner] += (product of the corner's weights) dy[o], by atomic adds into a zeroed dx.

// Mirrors seg_kernels::cuda::interpolate::InterpParams.
struct InterpParams {
    i64 planes;
    i64 in[3];
    i64 out[3];
    double ratio[3];
    i64 nearest;        // 1: nearest, 0: linear
    i64 align_corners;  // linear only
};

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// The source taps of output o on one axis: positions i0, i1 with weights l0, l1; `blend` is false
// when the output reads i0 alone (nearest, identity).
template <typename T>
struct Tap {
    i64 i0, i1;
    T l0, l1;
    bool blend;
};

template <typename T>
__device__ __forceinline__ Tap<T> source_tap(const InterpParams& p, int a, i64 o) {
    const i64 in = p.in[a];
    Tap<T> t;
    t.l0 = T(1);
    t.l1 = T(0);
    t.blend = false;
    if (p.nearest) {
        const i64 s = (i64)floorf(__fmul_rn((float)o, (float)p.ratio[a]));
        t.i0 = t.i1 = min(s, in - 1);
        return t;
    }
    if (in == p.out[a]) {
        t.i0 = t.i1 = o;
        return t;
    }
    const T r = (T)p.ratio[a], oo = (T)o;
    T real;
    if (p.align_corners) {
        real = mul_rn(r, oo);
    } else {
        real = add_rn(mul_rn(r, add_rn(oo, T(0.5))), T(-0.5));
        if (real < T(0)) real = T(0);
    }
    t.i0 = min((i64)floor((double)real), in - 1);
    T l1 = real - (T)t.i0;
    l1 = l1 < T(0) ? T(0) : (l1 > T(1) ? T(1) : l1);
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    t.l0 = T(1) - l1;
    t.l1 = l1;
    t.blend = true;
    return t;
}

// Along the width: l0 row[i0] + l1 row[i1] for a blending tap, else row[i0].
template <typename T>
__device__ __forceinline__ T along_width(const T* row, const Tap<T>& tw) {
    return tw.blend ? add_rn(mul_rn(tw.l0, row[tw.i0]), mul_rn(tw.l1, row[tw.i1])) : row[tw.i0];
}

// Along the height (of rows resampled along the width) of a depth slice `width` wide.
template <typename T>
__device__ __forceinline__ T along_height(const T* slice, i64 width, const Tap<T>& th, const Tap<T>& tw) {
    const T a = along_width(slice + th.i0 * width, tw);
    return th.blend ? add_rn(mul_rn(th.l0, a), mul_rn(th.l1, along_width(slice + th.i1 * width, tw))) : a;
}

#define INTERPOLATE_FORWARD(s, T) \
    extern "C" __global__ void interpolate_forward_##s(InterpParams p, const T* x, T* y) { \
        const i64 in_len = p.in[0] * p.in[1] * p.in[2], out_len = p.out[0] * p.out[1] * p.out[2]; \
        const i64 slice = p.in[1] * p.in[2]; \
        GRID_STRIDE_LOOP(i, p.planes * out_len) { \
            i64 r = i; \
            const i64 ow = r % p.out[2]; \
            r /= p.out[2]; \
            const i64 oh = r % p.out[1]; \
            r /= p.out[1]; \
            const i64 od = r % p.out[0]; \
            const T* plane = x + r / p.out[0] * in_len; \
            const Tap<T> td = source_tap<T>(p, 0, od), th = source_tap<T>(p, 1, oh), tw = source_tap<T>(p, 2, ow); \
            const T a = along_height(plane + td.i0 * slice, p.in[2], th, tw); \
            y[i] = td.blend ? add_rn(mul_rn(td.l0, a), mul_rn(td.l1, along_height(plane + td.i1 * slice, p.in[2], th, tw))) \
                            : a; \
        } \
    }
INTERPOLATE_FORWARD(f32, float)
INTERPOLATE_FORWARD(f64, double)

#define INTERPOLATE_BACKWARD(s, T) \
    extern "C" __global__ void interpolate_backward_##s(InterpParams p, const T* dy, T* dx) { \
        const i64 in_len = p.in[0] * p.in[1] * p.in[2], out_len = p.out[0] * p.out[1] * p.out[2]; \
        GRID_STRIDE_LOOP(i, p.planes * out_len) { \
            i64 r = i; \
            const i64 ow = r % p.out[2]; \
            r /= p.out[2]; \
            const i64 oh = r % p.out[1]; \
            r /= p.out[1]; \
            const i64 od = r % p.out[0]; \
            T* plane = dx + r / p.out[0] * in_len; \
            const Tap<T> td = source_tap<T>(p, 0, od), th = source_tap<T>(p, 1, oh), tw = source_tap<T>(p, 2, ow); \
            const T g = dy[i]; \
            for (int a = 0; a < (td.blend ? 2 : 1); ++a) { \
                const T gd = td.blend ? (a ? td.l1 : td.l0) * g : g; \
                T* slice = plane + (a ? td.i1 : td.i0) * p.in[1] * p.in[2]; \
                for (int b = 0; b < (th.blend ? 2 : 1); ++b) { \
                    const T gh = th.blend ? (b ? th.l1 : th.l0) * gd : gd; \
                    T* row = slice + (b ? th.i1 : th.i0) * p.in[2]; \
                    for (int c = 0; c < (tw.blend ? 2 : 1); ++c) \
                        atomicAdd(row + (c ? tw.i1 : tw.i0), tw.blend ? (c ? tw.l1 : tw.l0) * gh : gh); \
                } \
            } \
        } \
    }
INTERPOLATE_BACKWARD(f32, float)
INTERPOLATE_BACKWARD(f64, double)
