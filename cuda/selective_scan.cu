// Mamba's selective scan (S6), forward and backward, with the semantics of
// seg-kernels/src/cpu/selective_scan.rs (mamba_ssm's selective_scan_fn). For sample b, channel d (group
// g = d / (dim / groups) of the shared B, C), positions l, state n < N, h_{-1} = 0:
//
//   dt_l  = softplus(delta_l + bias_d)   (softplus(x) = x for x > 20; without softplus: delta + bias)
//   h_l   = a_l h_{l-1} + dt_l B_{g,n,l} u_l,   a_l = exp(dt_l A_{d,n})
//   out_l = (sum_n C_{g,n,l} h_l + D_d u_l) silu(z_l)          (silu(z) only with z)
//
// The recurrence h_l = a_l h_{l-1} + b_l composes associatively: (a1, b1) then (a2, b2) is
// (a1 a2, a2 b1 + b2). One warp runs one channel (b, d), a block SCAN_WARPS consecutive channels of
// one sample; the sequence goes in chunks of 32 positions, one per lane: per state n a warp-shuffle
// inclusive scan of the chunk's (a_l, b_l) gives h_l = A_l h_start + B_l, and the state at the
// chunk's end (lane 31) is carried to the next chunk (in shared memory, one value per n).
//
// Backward, from gy (the gradient reaching out) and g_last (reaching h_{L-1}): with gyl = gy silu(z),
// the state gradient G_l = a_{l+1} G_{l+1} + gyl C_l (G of the last position adds g_last) runs in
// reverse, the same associative scan from lane 31 down, its carry a_first G_first passed to the
// chunk before. Then dA_n += G_l h_{l-1} a_l dt_l, dB_l += G_l dt_l u_l, dC_l += gyl h_l,
// ddt_l = sum_n G_l (h_{l-1} a_l A_n + B_l u_l), du_l = sum_n G_l dt_l B_l + D gyl, dD += gyl u_l,
// dz_l = gy (y_l + D u_l) silu'(z_l), ddelta = ddt dt/ddelta, dbias += ddelta. The backward first
// re-runs the forward to store each chunk's start state (recomputation: the forward keeps nothing),
// then walks the chunks in reverse, recomputing h inside each. Gradients shared between channels or
// samples (dA, dB, dC, dD, dbias) are f32, accumulated with atomics (dB and dC per position, the
// others warp-reduced first).

#define SCAN_WARPS 4
#define FULL_MASK 0xffffffffu

struct ScanParams {
    int batch, dim, len, state, groups, softplus;
};

// Per-position terms of lane's position l (dt = 0 and gates 1 / 0 past the end, so that the step is
// the identity (a = 1, b = 0) there).
struct ScanPosition {
    bool valid;
    float dt, ddt, u, gate, dgate;
};

template <typename T>
__device__ __forceinline__ ScanPosition scan_position(ScanParams s, const T* u, const T* delta, const T* z,
                                                      float bias, i64 row, int l) {
    ScanPosition p{l < s.len, 0.f, 0.f, 0.f, 1.f, 0.f};
    if (!p.valid) return p;
    const float x = to_f32(delta[row + l]) + bias;
    if (s.softplus) {
        p.dt = x > 20.f ? x : log1pf(expf(x));
        p.ddt = x > 20.f ? 1.f : 1.f / (1.f + expf(-x));
    } else {
        p.dt = x;
        p.ddt = 1.f;
    }
    p.u = to_f32(u[row + l]);
    if (z) {
        const float zz = to_f32(z[row + l]), sg = 1.f / (1.f + expf(-zz));
        p.gate = zz * sg;
        p.dgate = sg * (1.f + zz * (1.f - sg));
    }
    return p;
}

// Inclusive scan over lanes 0..31 of h -> a h + b: lane i ends with the composition of lanes 0..i.
__device__ __forceinline__ void scan_lanes_up(float& a, float& b) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const float pa = __shfl_up_sync(FULL_MASK, a, off), pb = __shfl_up_sync(FULL_MASK, b, off);
        if (lane >= off) {
            b = fmaf(a, pb, b);
            a *= pa;
        }
    }
}

// Inclusive scan over lanes 31..0 of G -> a G + b: lane i ends with the composition of lanes i..31.
__device__ __forceinline__ void scan_lanes_down(float& a, float& b) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const float na = __shfl_down_sync(FULL_MASK, a, off), nb = __shfl_down_sync(FULL_MASK, b, off);
        if (lane + off < 32) {
            b = fmaf(a, nb, b);
            a *= na;
        }
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

// The channel a warp runs and its offsets: row of (b, d, :), row of B/C's (b, g, 0, :).
struct ScanChannel {
    int b, d;
    i64 row, grow;
};

__device__ __forceinline__ ScanChannel scan_channel(ScanParams s) {
    ScanChannel c;
    c.b = blockIdx.y;
    c.d = blockIdx.x * SCAN_WARPS + threadIdx.x / 32;
    c.row = ((i64)c.b * s.dim + c.d) * s.len;
    c.grow = ((i64)c.b * s.groups + c.d / (s.dim / s.groups)) * s.state * s.len;
    return c;
}

// Runs the chunk starting at l0 forward from carry (updated to the chunk's end state); returns
// sum_n C h_l + D u_l for the lane's position (0 past the end). With starts, first stores the
// chunk's start state there.
template <typename T>
__device__ float scan_chunk_forward(ScanParams s, ScanChannel ch, ScanPosition p, int l, const float* A,
                                    const T* B, const T* C, const float* D, float* carry, float* starts) {
    const int lane = threadIdx.x % 32;
    if (starts)
        for (int n = lane; n < s.state; n += 32) starts[n] = carry[n];
    float acc = 0.f;
    for (int n = 0; n < s.state; ++n) {
        float a = expf(p.dt * A[(i64)ch.d * s.state + n]);
        float b = p.valid ? p.dt * to_f32(B[ch.grow + (i64)n * s.len + l]) * p.u : 0.f;
        scan_lanes_up(a, b);
        const float h = fmaf(a, carry[n], b);
        if (p.valid) acc = fmaf(to_f32(C[ch.grow + (i64)n * s.len + l]), h, acc);
        __syncwarp();
        if (lane == 31) carry[n] = h;
        __syncwarp();
    }
    return p.valid && D ? fmaf(D[ch.d], p.u, acc) : acc;
}

template <typename T>
__device__ void scan_forward(ScanParams s, const T* u, const T* delta, const float* A, const T* B, const T* C,
                             const float* D, const T* z, const float* delta_bias, T* y, float* last_state) {
    extern __shared__ float scan_shared[];
    const ScanChannel ch = scan_channel(s);
    if (ch.d >= s.dim) return;  // the whole warp: no block-wide barrier follows
    const int lane = threadIdx.x % 32;
    float* carry = scan_shared + (threadIdx.x / 32) * s.state;
    for (int n = lane; n < s.state; n += 32) carry[n] = 0.f;
    __syncwarp();
    const float bias = delta_bias ? delta_bias[ch.d] : 0.f;
    for (int l0 = 0; l0 < s.len; l0 += 32) {
        const int l = l0 + lane;
        const ScanPosition p = scan_position(s, u, delta, z, bias, ch.row, l);
        const float out = scan_chunk_forward(s, ch, p, l, A, B, C, D, carry, nullptr);
        if (p.valid) y[ch.row + l] = from_f32<T>(out * p.gate);
    }
    for (int n = lane; n < s.state; n += 32) last_state[((i64)ch.b * s.dim + ch.d) * s.state + n] = carry[n];
}

// `starts`: (batch, dim, chunks, state) f32 scratch. Gradients: du, ddelta, dz (T, overwritten);
// dA (dim, state), dB, dC (batch, groups, state, len), dD, dbias (dim): f32, added to (zeroed by the
// launcher).
template <typename T>
__device__ void scan_backward(ScanParams s, const T* u, const T* delta, const float* A, const T* B, const T* C,
                              const float* D, const T* z, const float* delta_bias, const T* gy,
                              const float* g_last, float* starts, T* du, T* ddelta, T* dz, float* dA, float* dB,
                              float* dC, float* dD, float* dbias) {
    extern __shared__ float scan_shared[];
    const ScanChannel ch = scan_channel(s);
    if (ch.d >= s.dim) return;  // the whole warp: no block-wide barrier follows
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float* carry = scan_shared + warp * s.state;
    float* gcarry = scan_shared + (SCAN_WARPS + warp) * s.state;
    const i64 chan = (i64)ch.b * s.dim + ch.d;
    const int chunks = (s.len + 31) / 32;
    float* my_starts = starts + chan * chunks * s.state;
    for (int n = lane; n < s.state; n += 32) {
        carry[n] = 0.f;
        gcarry[n] = g_last ? g_last[chan * s.state + n] : 0.f;
    }
    __syncwarp();
    const float bias = delta_bias ? delta_bias[ch.d] : 0.f;
    // Pass 1: the state at the start of every chunk.
    for (int k = 0; k < chunks; ++k) {
        const int l = k * 32 + lane;
        const ScanPosition p = scan_position(s, u, delta, z, bias, ch.row, l);
        scan_chunk_forward(s, ch, p, l, A, B, C, D, carry, my_starts + (i64)k * s.state);
    }
    __syncwarp();
    // Pass 2: the chunks in reverse.
    float d_skip = 0.f, d_bias = 0.f;
    for (int k = chunks - 1; k >= 0; --k) {
        const int l = k * 32 + lane;
        const ScanPosition p = scan_position(s, u, delta, z, bias, ch.row, l);
        const float g_out = p.valid ? to_f32(gy[ch.row + l]) : 0.f, gyl = g_out * p.gate;
        const float* h_start = my_starts + (i64)k * s.state;
        float y = 0.f, gdt = 0.f, gu = 0.f;
        for (int n = 0; n < s.state; ++n) {
            const float a_n = A[(i64)ch.d * s.state + n];
            const i64 at = ch.grow + (i64)n * s.len + l;
            const float bn = p.valid ? to_f32(B[at]) : 0.f, cn = p.valid ? to_f32(C[at]) : 0.f;
            const float decay = expf(p.dt * a_n);
            float ha = decay, hb = p.dt * bn * p.u;
            scan_lanes_up(ha, hb);
            const float h = fmaf(ha, h_start[n], hb);
            float h_prev = __shfl_up_sync(FULL_MASK, h, 1);
            if (lane == 0) h_prev = h_start[n];
            y = fmaf(cn, h, y);
            float ga = __shfl_down_sync(FULL_MASK, decay, 1), gb = gyl * cn;
            if (lane == 31) ga = 1.f;
            scan_lanes_down(ga, gb);
            const float G = fmaf(ga, gcarry[n], gb);
            gdt = fmaf(G, h_prev * decay * a_n + bn * p.u, gdt);
            gu = fmaf(G, p.dt * bn, gu);
            const float da = warp_sum(G * h_prev * decay * p.dt);
            if (p.valid) {
                atomicAdd(dB + at, G * p.dt * p.u);
                atomicAdd(dC + at, gyl * h);
            }
            const float next = __shfl_sync(FULL_MASK, decay * G, 0);
            __syncwarp();
            if (lane == 0) {
                atomicAdd(dA + (i64)ch.d * s.state + n, da);
                gcarry[n] = next;
            }
            __syncwarp();
        }
        if (p.valid) {
            const float dd = D ? D[ch.d] : 0.f;
            if (z) dz[ch.row + l] = from_f32<T>(g_out * (y + dd * p.u) * p.dgate);
            du[ch.row + l] = from_f32<T>(fmaf(dd, gyl, gu));
            ddelta[ch.row + l] = from_f32<T>(gdt * p.ddt);
            d_skip = fmaf(gyl, p.u, d_skip);
            d_bias = fmaf(gdt, p.ddt, d_bias);
        }
    }
    d_skip = warp_sum(d_skip);
    d_bias = warp_sum(d_bias);
    if (lane == 0) {
        if (dD) atomicAdd(dD + ch.d, d_skip);
        if (dbias) atomicAdd(dbias + ch.d, d_bias);
    }
}

#define SCAN_KERNELS(T, S)                                                                                          \
    extern "C" __global__ void __launch_bounds__(SCAN_WARPS * 32)                                                   \
        selective_scan_forward_##S(ScanParams s, const T* u, const T* delta, const float* A, const T* B,            \
                                   const T* C, const float* D, const T* z, const float* delta_bias, T* y,           \
                                   float* last_state) {                                                             \
        scan_forward<T>(s, u, delta, A, B, C, D, z, delta_bias, y, last_state);                                     \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(SCAN_WARPS * 32) selective_scan_backward_##S(                      \
        ScanParams s, const T* u, const T* delta, const float* A, const T* B, const T* C, const float* D,            \
        const T* z, const float* delta_bias, const T* gy, const float* g_last, float* starts, T* du, T* ddelta,      \
        T* dz, float* dA, float* dB, float* dC, float* dD, float* dbias) {                                          \
        scan_backward<T>(s, u, delta, A, B, C, D, z, delta_bias, gy, g_last, starts, du, ddelta, dz, dA, dB, dC, dD, \
                         dbias);                                                                                    \
    }

FOR_EACH_FLOAT(SCAN_KERNELS)
