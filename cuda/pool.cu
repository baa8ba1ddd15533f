// Pooling over `planes = N * C` planes of (depth, height, width); 1-D and 2-D poolings are 3-D ones with
// leading axes of size 1 (kernel 1, stride 1, padding 0, dilation 1). The semantics are those of
// seg_kernels::cpu::pool (PyTorch's): per axis, output o of a window pooling reads the input positions
// start + j * dilation, start = o * stride - padding, j < kernel, that lie in [0, in). Every kernel runs
// a grid-stride loop over its outputs (forward) or its inputs (backward: gathers, no atomics, adding in
// output order as the CPU kernels do, so f32 results match them bit for bit).

// Mirrors seg_kernels::cuda::pool::PoolParams (21 i64).
struct PoolParams {
    i64 planes;
    i64 in[3];
    i64 out[3];
    i64 kernel[3];
    i64 stride[3];
    i64 pad[3];
    i64 dil[3];
    i64 divisor;   // > 0: divisor_override; 0: count_include_pad; -1: the clipped window's size
    i64 adaptive;  // 1: adaptive windows [floor(o in / out), ceil((o + 1) in / out)) (stride etc. unused)
};

__device__ __forceinline__ i64 floor_div(i64 a, i64 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

template <typename T>
__device__ __forceinline__ T neg_infinity();
template <>
__device__ __forceinline__ float neg_infinity<float>() {
    return -__int_as_float(0x7f800000);
}
template <>
__device__ __forceinline__ double neg_infinity<double>() {
    return -__longlong_as_double(0x7ff0000000000000LL);
}

// The flat index i of a plane of `dims` split into (plane, z[0], z[1], z[2]).
__device__ __forceinline__ i64 split_index(i64 i, const i64 dims[3], i64 z[3]) {
    for (int a = 2; a >= 0; --a) {
        z[a] = i % dims[a];
        i /= dims[a];
    }
    return i;
}

// max_pool forward: y[o] = max over window(o) of x (the padding is -inf), argmax[o] its flat index in the
// plane. The scan (depth, height, width) takes x[i] when x[i] > best || isnan(x[i]): the first maximum or
// the last NaN; the index starts at the window's first in-range position.
#define MAX_POOL_FORWARD(s, T) \
    extern "C" __global__ void max_pool_forward_##s(PoolParams p, const T* x, T* y, i64* argmax) { \
        const i64 out_len = p.out[0] * p.out[1] * p.out[2], in_len = p.in[0] * p.in[1] * p.in[2]; \
        GRID_STRIDE_LOOP(i, p.planes * out_len) { \
            i64 o[3], first[3], j0[3], j1[3]; \
            const T* plane = x + split_index(i, p.out, o) * in_len; \
            for (int a = 0; a < 3; ++a) { \
                const i64 start = o[a] * p.stride[a] - p.pad[a], d = p.dil[a]; \
                j0[a] = start < 0 ? (-start + d - 1) / d : 0; \
                j1[a] = start >= p.in[a] ? 0 : min(p.kernel[a], (p.in[a] - start + d - 1) / d); \
                first[a] = start + j0[a] * d; \
            } \
            i64 at = (first[0] * p.in[1] + first[1]) * p.in[2] + first[2]; \
            T best = neg_infinity<T>(); \
            for (i64 a = j0[0]; a < j1[0]; ++a) { \
                const i64 zd = first[0] + (a - j0[0]) * p.dil[0]; \
                for (i64 b = j0[1]; b < j1[1]; ++b) { \
                    const i64 row = (zd * p.in[1] + first[1] + (b - j0[1]) * p.dil[1]) * p.in[2]; \
                    for (i64 c = j0[2]; c < j1[2]; ++c) { \
                        const i64 at_c = row + first[2] + (c - j0[2]) * p.dil[2]; \
                        const T v = plane[at_c]; \
                        if (v > best || v != v) { \
                            best = v; \
                            at = at_c; \
                        } \
                    } \
                } \
            } \
            y[i] = best; \
            argmax[i] = at; \
        } \
    }
MAX_POOL_FORWARD(f32, float)
MAX_POOL_FORWARD(f64, double)

// max_pool backward: dx[i] = sum of dy[o] over the outputs o whose argmax is i. Per axis the outputs
// whose window holds position z are o = (z + pad - j dil) / stride for the j < kernel that divide
// exactly; j runs downwards so that o, and the sum, go in output order.
#define MAX_POOL_BACKWARD(s, T) \
    extern "C" __global__ void max_pool_backward_##s(PoolParams p, const T* dy, const i64* argmax, T* dx) { \
        const i64 out_len = p.out[0] * p.out[1] * p.out[2], in_len = p.in[0] * p.in[1] * p.in[2]; \
        GRID_STRIDE_LOOP(i, p.planes * in_len) { \
            i64 z[3]; \
            const i64 n = split_index(i, p.in, z), flat = i - n * in_len; \
            T acc = T(0); \
            i64 o[3]; \
            for (i64 a = p.kernel[0] - 1; a >= 0; --a) { \
                const i64 nd = z[0] + p.pad[0] - a * p.dil[0]; \
                o[0] = nd / p.stride[0]; \
                if (nd < 0 || nd % p.stride[0] != 0 || o[0] >= p.out[0]) continue; \
                for (i64 b = p.kernel[1] - 1; b >= 0; --b) { \
                    const i64 nh = z[1] + p.pad[1] - b * p.dil[1]; \
                    o[1] = nh / p.stride[1]; \
                    if (nh < 0 || nh % p.stride[1] != 0 || o[1] >= p.out[1]) continue; \
                    for (i64 c = p.kernel[2] - 1; c >= 0; --c) { \
                        const i64 nw = z[2] + p.pad[2] - c * p.dil[2]; \
                        o[2] = nw / p.stride[2]; \
                        if (nw < 0 || nw % p.stride[2] != 0 || o[2] >= p.out[2]) continue; \
                        const i64 at = n * out_len + (o[0] * p.out[1] + o[1]) * p.out[2] + o[2]; \
                        if (argmax[at] == flat) acc = acc + dy[at]; \
                    } \
                } \
            } \
            dx[i] = acc; \
        } \
    }
MAX_POOL_BACKWARD(f32, float)
MAX_POOL_BACKWARD(f64, double)

// The window [lo, hi) of output o on axis a of an average pooling (dilation 1), and `padded`: its size
// clipped to the padded input only. Windowed: start = o stride - pad, end = min(start + kernel, in +
// pad), padded = end - start, [lo, hi) = [start, end) clipped to [0, in). Adaptive: [floor(o in / out),
// ceil((o + 1) in / out)), padded its size.
__device__ __forceinline__ void avg_window(const PoolParams& p, int a, i64 o, i64& lo, i64& hi, i64& padded) {
    if (p.adaptive) {
        lo = o * p.in[a] / p.out[a];
        hi = ((o + 1) * p.in[a] + p.out[a] - 1) / p.out[a];
        padded = hi - lo;
    } else {
        const i64 start = o * p.stride[a] - p.pad[a];
        const i64 end = min(start + p.kernel[a], p.in[a] + p.pad[a]);
        padded = end - start;
        lo = max(start, (i64)0);
        hi = min(end, p.in[a]);
    }
}

// The divisor of a window: divisor_override, the product of the padded sizes (count_include_pad) or of
// the clipped sizes.
__device__ __forceinline__ i64 avg_divisor(const PoolParams& p, const i64 lo[3], const i64 hi[3], const i64 padded[3]) {
    if (p.divisor > 0) return p.divisor;
    if (p.divisor == 0) return padded[0] * padded[1] * padded[2];
    return (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
}

// avg_pool / adaptive_avg_pool forward: y[o] = (sum over window(o) of x, in T, depth then height then
// width) / divisor(o); a window without input positions gives 0.
#define AVG_POOL_FORWARD(s, T) \
    extern "C" __global__ void avg_pool_forward_##s(PoolParams p, const T* x, T* y) { \
        const i64 out_len = p.out[0] * p.out[1] * p.out[2], in_len = p.in[0] * p.in[1] * p.in[2]; \
        GRID_STRIDE_LOOP(i, p.planes * out_len) { \
            i64 o[3], lo[3], hi[3], padded[3]; \
            const T* plane = x + split_index(i, p.out, o) * in_len; \
            bool empty = false; \
            for (int a = 0; a < 3; ++a) { \
                avg_window(p, a, o[a], lo[a], hi[a], padded[a]); \
                empty = empty || lo[a] >= hi[a]; \
            } \
            if (empty) { \
                y[i] = T(0); \
                continue; \
            } \
            T sum = T(0); \
            for (i64 zd = lo[0]; zd < hi[0]; ++zd) \
                for (i64 zh = lo[1]; zh < hi[1]; ++zh) { \
                    const T* row = plane + (zd * p.in[1] + zh) * p.in[2]; \
                    for (i64 zw = lo[2]; zw < hi[2]; ++zw) sum = sum + row[zw]; \
                } \
            y[i] = sum / T(avg_divisor(p, lo, hi, padded)); \
        } \
    }
AVG_POOL_FORWARD(f32, float)
AVG_POOL_FORWARD(f64, double)

// The outputs [first, last) of axis a whose windows may hold input position z (a superset for the
// adaptive windows; the caller tests each).
__device__ __forceinline__ void avg_readers(const PoolParams& p, int a, i64 z, i64& first, i64& last) {
    if (p.adaptive) {
        first = z * p.out[a] / p.in[a];
        last = min(p.out[a], ((z + 1) * p.out[a] + p.in[a] - 1) / p.in[a]);
    } else {
        first = max((i64)0, floor_div(z + p.pad[a] - p.kernel[a], p.stride[a]) + 1);
        last = min(p.out[a], floor_div(z + p.pad[a], p.stride[a]) + 1);
    }
}

// avg_pool / adaptive_avg_pool backward: dx[i] = sum over the outputs o whose window holds i, in output
// order, of dy[o] / divisor(o).
#define AVG_POOL_BACKWARD(s, T) \
    extern "C" __global__ void avg_pool_backward_##s(PoolParams p, const T* dy, T* dx) { \
        const i64 out_len = p.out[0] * p.out[1] * p.out[2], in_len = p.in[0] * p.in[1] * p.in[2]; \
        GRID_STRIDE_LOOP(i, p.planes * in_len) { \
            i64 z[3], first[3], last[3], lo[3], hi[3], padded[3]; \
            const T* g = dy + split_index(i, p.in, z) * out_len; \
            for (int a = 0; a < 3; ++a) avg_readers(p, a, z[a], first[a], last[a]); \
            T acc = T(0); \
            for (i64 od = first[0]; od < last[0]; ++od) { \
                avg_window(p, 0, od, lo[0], hi[0], padded[0]); \
                if (z[0] < lo[0] || z[0] >= hi[0]) continue; \
                for (i64 oh = first[1]; oh < last[1]; ++oh) { \
                    avg_window(p, 1, oh, lo[1], hi[1], padded[1]); \
                    if (z[1] < lo[1] || z[1] >= hi[1]) continue; \
                    for (i64 ow = first[2]; ow < last[2]; ++ow) { \
                        avg_window(p, 2, ow, lo[2], hi[2], padded[2]); \
                        if (z[2] < lo[2] || z[2] >= hi[2]) continue; \
                        acc = acc + g[(od * p.out[1] + oh) * p.out[2] + ow] / T(avg_divisor(p, lo, hi, padded)); \
                    } \
                } \
            } \
            dx[i] = acc; \
        } \
    }
AVG_POOL_BACKWARD(f32, float)
AVG_POOL_BACKWARD(f64, double)
