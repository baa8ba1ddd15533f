// Convolution over 1 to 3 spatial axes (NCDHW, lower ranks as size-1 axes) as implicit GEMM: the
// semantics of seg-kernels/src/cpu/conv.rs. With G groups, Cg = Cin / G, Og = Cout / G, K = kernel
// volume and src(p, k) = p * stride - padding + k * dilation (per axis; outside the input reads 0):
//
//   forward:          y[n, gOg + o, p]    = b[o] + sum_{c, k} w[gOg + o, c, k] x[n, gCg + c, src(p, k)]
//   backward data:    dx[n, gCg + c, i]   = sum_{o, k, p : src(p, k) = i} w[gOg + o, c, k] dy[n, gOg + o, p]
//   backward weight:  dw[gOg + o, c, k]   = sum_{n, p} dy[n, gOg + o, p] x[n, gCg + c, src(p, k)]
//
// Each is one matrix product C (M x N) = A (M x Kr) B (Kr x N) whose operands are gathered on the fly
// (never materialised), a BM x BN tile of C per block, the reduction in steps of BK through shared
// memory, f32 accumulation whatever the storage type T: for f32 on the f32 units (gemm_tile, a 4 x 4
// register block per thread), for f16 and bf16 on the tensor cores (gemm_tile_mma, mma.sync m16n8k16).
//
//   forward:          M = output positions p, N = Og (o), Kr = Cg K (c, k); one z-slice per (n, g)
//   backward data:    M = input positions i,  N = Cg (c), Kr = Og K (o, k); one z-slice per (n, g);
//                     the gather: p = (i + padding - k dilation) / stride where that divides exactly
//   backward weight:  M = Og (o), N = Cg K (c, k), Kr = batch P (n, p); one z-slice per (g, split):
//                     each split sums a range of Kr into its own f32 partial, summed in split order
//                     by conv_sum_splits (deterministic, no atomics)

#define BM 64
#define BN 64
#define BK 16
#define GEMM_THREADS 256

// The geometry, as the launcher passes it (seg-kernels/src/cuda/conv.rs, `Params`).
template <typename T>
struct is_f32 {
    static constexpr bool value = false;
};
template <>
struct is_f32<float> {
    static constexpr bool value = true;
};

struct ConvParams {
    int batch, cin, cout, groups;
    int in[3], out[3], kernel[3], stride[3], padding[3], dilation[3];
    int splits;  // backward weight: the number of reduction splits
};

__device__ __forceinline__ int volume(const int d[3]) { return d[0] * d[1] * d[2]; }

// Coordinates of flat index f in a box of sizes d.
__device__ __forceinline__ void unflatten(int f, const int d[3], int c[3]) {
    c[2] = f % d[2];
    f /= d[2];
    c[1] = f % d[1];
    c[0] = f / d[1];
}

// Per-axis kernel offsets k * dilation of flat kernel offset k.
__device__ __forceinline__ void kernel_offsets(ConvParams g, int k, int off[3]) {
    unflatten(k, g.kernel, off);
    for (int a = 0; a < 3; ++a) off[a] *= g.dilation[a];
}

// The flat input position base + off (per axis), or -1 in the padding.
__device__ __forceinline__ int input_at(ConvParams g, const int base[3], const int off[3]) {
    int flat = 0;
    for (int a = 0; a < 3; ++a) {
        const int i = base[a] + off[a];
        if (i < 0 || i >= g.in[a]) return -1;
        flat = flat * g.in[a] + i;
    }
    return flat;
}

// Per-axis p * stride - padding of flat output position p: the input corner its window starts at.
__device__ __forceinline__ void window_corner(ConvParams g, int p, int base[3]) {
    unflatten(p, g.out, base);
    for (int a = 0; a < 3; ++a) base[a] = base[a] * g.stride[a] - g.padding[a];
}

// C[m0.., n0..] (a BM x BN tile, clipped to M x N) = sum over r in [r_begin, r_end) of A(m, r) B(r, n),
// then P::store(m, n, value), on the f32 units. P describes each row m, column n and reduction index r
// once per tile or step (row(m), col(n), red(r): the index arithmetic, kept in shared memory), and
// gathers a(row, red), b(red, col) (of type P::Elem, zero outside the operand) from them; A_M_FAST /
// B_R_FAST say along which index its A and B are contiguous, so that consecutive threads load
// consecutive addresses. Thread t owns rows m0 + t % 16 + 16 i and columns n0 + t / 16 + 16 j (i, j < 4).
// The index cache of a tile (gemm_tile, gemm_tile_mma): its rows' and columns' descriptions, written
// here (read after the first barrier of the reduction loop), and one reduction step's.
#define TILE_INDEX_CACHE(P)                                                                        \
    __shared__ typename P::Row rows[BM];                                                           \
    __shared__ typename P::Col cols[BN];                                                           \
    __shared__ typename P::Red reds[BK];                                                           \
    for (int i = threadIdx.x; i < BM; i += GEMM_THREADS) rows[i] = prob.row(m0 + i);               \
    for (int i = threadIdx.x; i < BN; i += GEMM_THREADS) cols[i] = prob.col(n0 + i);

template <class P>
__device__ void gemm_tile(const P& prob, int M, int N, int r_begin, int r_end, int m0, int n0) {
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    const int tid = threadIdx.x, tm = tid % 16, tn = tid / 16;
    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    TILE_INDEX_CACHE(P)
    for (int r0 = r_begin; r0 < r_end; r0 += BK) {
        if (tid < BK) reds[tid] = prob.red(r0 + tid);
        __syncthreads();
        for (int e = tid; e < BM * BK; e += GEMM_THREADS) {
            const int mi = P::A_M_FAST ? e % BM : e / BK, ri = P::A_M_FAST ? e / BM : e % BK;
            As[ri][mi] = (m0 + mi < M && r0 + ri < r_end) ? to_f32(prob.a(rows[mi], reds[ri])) : 0.f;
        }
        for (int e = tid; e < BN * BK; e += GEMM_THREADS) {
            const int ni = P::B_R_FAST ? e / BK : e % BN, ri = P::B_R_FAST ? e % BK : e / BN;
            Bs[ri][ni] = (n0 + ni < N && r0 + ri < r_end) ? to_f32(prob.b(reds[ri], cols[ni])) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][tm + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tn + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + tm + 16 * i, n = n0 + tn + 16 * j;
            if (m < M && n < N) prob.store(m, n, acc[i][j]);
        }
}

// The tensor-core mma of one warp: D (16 x 8, f32) = A (16 x 16) B (16 x 8) + D, f16 or bf16 operands in
// the fragment layout of the PTX ISA (mma.m16n8k16, floating point): with g = lane / 4, t = lane % 4,
// a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9];
// b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]; d[0..1] = D[g][2t, 2t+1], d[2..3] = D[g+8][2t, 2t+1]
// (the lower-indexed element in the low 16 bits).
__device__ __forceinline__ void mma_16816(float d[4], const u32 a[4], const u32 b[2], f16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16816(float d[4], const u32 a[4], const u32 b[2], bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// A build may route the mma elsewhere (cuda/emulator does).
#ifndef MMA_16816
#define MMA_16816(d, a, b, T) mma_16816(d, a, b, T{})
#endif

// gemm_tile on the tensor cores, for 16-bit P::Elem (f16, bf16) with f32 accumulation: the operand
// tiles go to shared memory as 16-bit values (A as [m][r], B as [n][r], rows padded by 8 values so that
// the fragment loads of a warp hit distinct banks); the 8 warps form a 4 (m) x 2 (n) grid, warp (wm, wn)
// owning rows 16 wm.. and columns 32 wn.. of the tile: four 16 x 8 products per BK = 16 step.
template <class P>
__device__ void gemm_tile_mma(const P& prob, int M, int N, int r_begin, int r_end, int m0, int n0) {
    using T = typename P::Elem;
    __shared__ __align__(16) unsigned short As[BM][BK + 8];
    __shared__ __align__(16) unsigned short Bs[BN][BK + 8];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp % 4, wn = warp / 4, g = lane / 4, t = lane % 4;
    float acc[4][4];
    for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
    TILE_INDEX_CACHE(P)
    for (int r0 = r_begin; r0 < r_end; r0 += BK) {
        if (tid < BK) reds[tid] = prob.red(r0 + tid);
        __syncthreads();
        for (int e = tid; e < BM * BK; e += GEMM_THREADS) {
            const int mi = P::A_M_FAST ? e % BM : e / BK, ri = P::A_M_FAST ? e / BM : e % BK;
            As[mi][ri] = (m0 + mi < M && r0 + ri < r_end) ? prob.a(rows[mi], reds[ri]).bits : 0;
        }
        for (int e = tid; e < BN * BK; e += GEMM_THREADS) {
            const int ni = P::B_R_FAST ? e / BK : e % BN, ri = P::B_R_FAST ? e % BK : e / BN;
            Bs[ni][ri] = (n0 + ni < N && r0 + ri < r_end) ? prob.b(reds[ri], cols[ni]).bits : 0;
        }
        __syncthreads();
        const int row = wm * 16 + g;
        const u32 a[4] = {*(const u32*)&As[row][2 * t], *(const u32*)&As[row + 8][2 * t],
                          *(const u32*)&As[row][2 * t + 8], *(const u32*)&As[row + 8][2 * t + 8]};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = wn * 32 + j * 8 + g;
            const u32 b[2] = {*(const u32*)&Bs[col][2 * t], *(const u32*)&Bs[col][2 * t + 8]};
            MMA_16816(acc[j], a, b, T);
        }
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int m = m0 + wm * 16 + g + (i >= 2 ? 8 : 0), n = n0 + wn * 32 + j * 8 + 2 * t + (i & 1);
            if (m < M && n < N) prob.store(m, n, acc[j][i]);
        }
}

// The tile for P's element type: the f32 units for f32 (no TF32: results stay comparable with the CPU),
// the tensor cores for f16 and bf16.
template <class P>
__device__ void gemm(const P& prob, int M, int N, int r_begin, int r_end, int m0, int n0) {
    if constexpr (is_f32<typename P::Elem>::value)
        gemm_tile(prob, M, N, r_begin, r_end, m0, n0);
    else
        gemm_tile_mma(prob, M, N, r_begin, r_end, m0, n0);
}

// Forward of sample n, group gi: A(p, (c, k)) = x[n, gCg + c, src(p, k)], B((c, k), o) = w[gOg + o, c, k].
// Row p: its window's corner; reduction step (c, k): channel c's plane and k's offsets; column o.
template <typename T>
struct ForwardProblem {
    using Elem = T;
    static constexpr bool A_M_FAST = true, B_R_FAST = true;
    struct Row {
        int base[3];
    };
    struct Red {
        int r;
        i64 plane;
        int off[3];
    };
    struct Col {
        int o;
    };
    ConvParams g;
    const T* x;  // sample n, channel gCg
    const T* w;  // output channel gOg
    const T* bias;  // output channel gOg, or null
    T* y;  // sample n, channel gOg
    int kvol, in_len, out_len, patch;
    __device__ Row row(int p) const {
        Row v;
        window_corner(g, p, v.base);
        return v;
    }
    __device__ Red red(int r) const {
        Red v;
        v.r = r;
        v.plane = (i64)(r / kvol) * in_len;
        kernel_offsets(g, r % kvol, v.off);
        return v;
    }
    __device__ Col col(int o) const { return Col{o}; }
    __device__ T a(const Row& p, const Red& r) const {
        const int s = input_at(g, p.base, r.off);
        return s < 0 ? T{} : x[r.plane + s];
    }
    __device__ T b(const Red& r, const Col& o) const { return w[(i64)o.o * patch + r.r]; }
    __device__ void store(int p, int o, float v) const {
        y[(i64)o * out_len + p] = from_f32<T>(bias ? v + to_f32(bias[o]) : v);
    }
};

// Backward data of sample n, group gi: A(i, (o, k)) = dy[n, gOg + o, p] where src(p, k) = i, that is
// p = (i + padding - k dilation) / stride per axis where that divides exactly and lands inside the
// output (else 0), B((o, k), c) = w[gOg + o, c, k]. Row i: i + padding; step (o, k): o's plane, the
// offset of w[o, 0, k] and k's offsets; column c.
template <typename T>
struct BackwardDataProblem {
    using Elem = T;
    static constexpr bool A_M_FAST = true, B_R_FAST = true;
    struct Row {
        int shifted[3];
    };
    struct Red {
        i64 plane, weight;
        int off[3];
    };
    struct Col {
        int c;
    };
    ConvParams g;
    const T* dy;  // sample n, channel gOg
    const T* w;  // output channel gOg
    T* dx;  // sample n, channel gCg
    int kvol, in_len, out_len, cg;
    __device__ Row row(int i) const {
        Row v;
        unflatten(i, g.in, v.shifted);
        for (int a = 0; a < 3; ++a) v.shifted[a] += g.padding[a];
        return v;
    }
    __device__ Red red(int r) const {
        Red v;
        const int o = r / kvol, k = r % kvol;
        v.plane = (i64)o * out_len;
        v.weight = (i64)o * cg * kvol + k;
        kernel_offsets(g, k, v.off);
        return v;
    }
    __device__ Col col(int c) const { return Col{c}; }
    __device__ T a(const Row& i, const Red& r) const {
        int flat = 0;
        for (int a = 0; a < 3; ++a) {
            int t = i.shifted[a] - r.off[a];
            if (t < 0 || t % g.stride[a] != 0) return T{};
            t /= g.stride[a];
            if (t >= g.out[a]) return T{};
            flat = flat * g.out[a] + t;
        }
        return dy[r.plane + flat];
    }
    __device__ T b(const Red& r, const Col& c) const { return w[r.weight + (i64)c.c * kvol]; }
    __device__ void store(int i, int c, float v) const { dx[(i64)c * in_len + i] = from_f32<T>(v); }
};

// Backward weight of group gi: A(o, (n, p)) = dy[n, gOg + o, p], B((n, p), (c, k)) = x[n, gCg + c,
// src(p, k)]; the result goes to this split's f32 partial of dw. Row o: its plane; step (n, p): the
// offsets of dy[n, 0, p] and x[n, 0] and p's window corner; column (c, k): c's plane and k's offsets.
template <typename T>
struct BackwardWeightProblem {
    using Elem = T;
    static constexpr bool A_M_FAST = false, B_R_FAST = true;
    struct Row {
        i64 plane;
    };
    struct Red {
        i64 grad, input;
        int base[3];
    };
    struct Col {
        i64 plane;
        int off[3];
    };
    ConvParams g;
    const T* x;  // channel gCg of sample 0
    const T* dy;  // channel gOg of sample 0
    float* part;  // output channel gOg of this split's partial
    int kvol, in_len, out_len, patch;
    __device__ Row row(int o) const { return Row{(i64)o * out_len}; }
    __device__ Red red(int r) const {
        Red v;
        const int n = r / out_len, p = r % out_len;
        v.grad = (i64)n * g.cout * out_len + p;
        v.input = (i64)n * g.cin * in_len;
        window_corner(g, p, v.base);
        return v;
    }
    __device__ Col col(int col) const {
        Col v;
        v.plane = (i64)(col / kvol) * in_len;
        kernel_offsets(g, col % kvol, v.off);
        return v;
    }
    __device__ T a(const Row& o, const Red& r) const { return dy[r.grad + o.plane]; }
    __device__ T b(const Red& r, const Col& c) const {
        const int s = input_at(g, r.base, c.off);
        return s < 0 ? T{} : x[r.input + c.plane + s];
    }
    __device__ void store(int o, int col, float v) const { part[(i64)o * patch + col] = v; }
};

template <typename T>
__device__ void conv_forward(ConvParams g, const T* x, const T* w, const T* bias, T* y) {
    const int n = blockIdx.z / g.groups, gi = blockIdx.z % g.groups;
    const int cg = g.cin / g.groups, og = g.cout / g.groups, kvol = volume(g.kernel);
    const int in_len = volume(g.in), out_len = volume(g.out);
    ForwardProblem<T> prob{g,
                           x + ((i64)n * g.cin + (i64)gi * cg) * in_len,
                           w + (i64)gi * og * cg * kvol,
                           bias ? bias + (i64)gi * og : nullptr,
                           y + ((i64)n * g.cout + (i64)gi * og) * out_len,
                           kvol,
                           in_len,
                           out_len,
                           cg * kvol};
    gemm(prob, out_len, og, 0, cg * kvol, blockIdx.x * BM, blockIdx.y * BN);
}

template <typename T>
__device__ void conv_backward_data(ConvParams g, const T* dy, const T* w, T* dx) {
    const int n = blockIdx.z / g.groups, gi = blockIdx.z % g.groups;
    const int cg = g.cin / g.groups, og = g.cout / g.groups, kvol = volume(g.kernel);
    const int in_len = volume(g.in), out_len = volume(g.out);
    BackwardDataProblem<T> prob{g,
                                dy + ((i64)n * g.cout + (i64)gi * og) * out_len,
                                w + (i64)gi * og * cg * kvol,
                                dx + ((i64)n * g.cin + (i64)gi * cg) * in_len,
                                kvol,
                                in_len,
                                out_len,
                                cg};
    gemm(prob, in_len, cg, 0, og * kvol, blockIdx.x * BM, blockIdx.y * BN);
}

// `part` holds `splits` partials of dw (each Cout Cg K values, f32).
template <typename T>
__device__ void conv_backward_weight(ConvParams g, const T* x, const T* dy, float* part) {
    const int gi = blockIdx.z / g.splits, split = blockIdx.z % g.splits;
    const int cg = g.cin / g.groups, og = g.cout / g.groups, kvol = volume(g.kernel);
    const int in_len = volume(g.in), out_len = volume(g.out);
    const int total = g.batch * out_len;
    // Each split takes a whole number of BK steps.
    const int step = (total + g.splits - 1) / g.splits;
    const int per_split = (step + BK - 1) / BK * BK;
    const int r_begin = min(total, split * per_split), r_end = min(total, r_begin + per_split);
    const i64 w_len = (i64)g.cout * cg * kvol;
    BackwardWeightProblem<T> prob{g,
                                  x + (i64)gi * cg * in_len,
                                  dy + (i64)gi * og * out_len,
                                  part + split * w_len + (i64)gi * og * cg * kvol,
                                  kvol,
                                  in_len,
                                  out_len,
                                  cg * kvol};
    gemm(prob, og, cg * kvol, r_begin, r_end, blockIdx.x * BM, blockIdx.y * BN);
}

// dw[i] = sum_s part[s, i], the splits summed in order.
template <typename T>
__device__ void conv_sum_splits(const float* part, int splits, T* dw, i64 len) {
    GRID_STRIDE_LOOP(i, len) {
        float s = 0.f;
        for (int k = 0; k < splits; ++k) s += part[k * len + i];
        dw[i] = from_f32<T>(s);
    }
}

// y[(n, c), p] += bias[c] over a (N, C, plane) buffer: the bias of a transposed convolution, whose
// forward is the backward data above.
template <typename T>
__device__ void add_channel_bias(T* y, const T* bias, int channels, i64 plane, i64 len) {
    GRID_STRIDE_LOOP(i, len) { y[i] = from_f32<T>(to_f32(y[i]) + to_f32(bias[(i / plane) % channels])); }
}

#define CONV_KERNELS(T, S)                                                                                    \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                                \
        conv_forward_##S(ConvParams g, const T* x, const T* w, const T* bias, T* y) {                         \
        conv_forward<T>(g, x, w, bias, y);                                                                    \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                                \
        conv_backward_data_##S(ConvParams g, const T* dy, const T* w, T* dx) {                                \
        conv_backward_data<T>(g, dy, w, dx);                                                                  \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                                \
        conv_backward_weight_##S(ConvParams g, const T* x, const T* dy, float* part) {                        \
        conv_backward_weight<T>(g, x, dy, part);                                                              \
    }                                                                                                         \
    extern "C" __global__ void conv_sum_splits_##S(const float* part, int splits, T* dw, i64 len) {           \
        conv_sum_splits<T>(part, splits, dw, len);                                                            \
    }                                                                                                         \
    extern "C" __global__ void add_channel_bias_##S(T* y, const T* bias, int channels, i64 plane, i64 len) { \
        add_channel_bias<T>(y, bias, channels, plane, len);                                                   \
    }

FOR_EACH_FLOAT(CONV_KERNELS)
