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
// one sample; the sequence goes in chunks of SCAN_CHUNK positions, SCAN_ITEMS consecutive ones per
// lane: per state n each lane composes its positions' steps, a warp-shuffle scan of those gives the
// state before each lane's first position, the lane runs its positions from there, and the state at
// the chunk's end (lane 31's last) is carried to the next chunk (in shared memory, one value per n).
//
// Backward, from gy (the gradient reaching out) and g_last (reaching h_{L-1}): with gyl = gy silu(z),
// the state gradient G_l = a_{l+1} G_{l+1} + gyl C_l (G of the last position adds g_last) runs in
// reverse, the same scheme mirrored (lanes composed from lane 31 down), its carry a_first G_first
// passed to the chunk before. Then dA_n += G_l h_{l-1} a_l dt_l, dB_l += G_l dt_l u_l, dC_l += gyl h_l,
// ddt_l = sum_n G_l (h_{l-1} a_l A_n + B_l u_l), du_l = sum_n G_l dt_l B_l + D gyl, dD += gyl u_l,
// dz_l = gy (y_l + D u_l) silu'(z_l), ddelta = ddt dt/ddelta, dbias += ddelta. The backward first
// re-runs the forward to store each chunk's start state (recomputation: the forward keeps nothing),
// then walks the chunks in reverse, recomputing h inside each. Gradients shared between channels or
// samples (dA, dB, dC, dD, dbias) are f32, accumulated with atomics (dB and dC per position, the
// others warp-reduced first).

#define SCAN_WARPS 4
#define SCAN_ITEMS 4
#define SCAN_CHUNK (32 * SCAN_ITEMS)
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

// Lane's positions of the chunk from l0: l0 + ITEMS lane + i, i < ITEMS.
template <typename T>
__device__ __forceinline__ void scan_positions(ScanParams s, const T* u, const T* delta, const T* z, float bias,
                                               i64 row, int l, ScanPosition (&p)[SCAN_ITEMS]) {
#pragma unroll
    for (int i = 0; i < SCAN_ITEMS; ++i) p[i] = scan_position(s, u, delta, z, bias, row, l + i);
}

// The state before the lane's first position, from the state h0 before the chunk and the lane's own
// composed step (a, b): an inclusive scan over the lanes, shifted by one lane.
__device__ __forceinline__ float lane_start(float a, float b, float h0) {
    scan_lanes_up(a, b);
    const float pa = __shfl_up_sync(FULL_MASK, a, 1), pb = __shfl_up_sync(FULL_MASK, b, 1);
    return threadIdx.x % 32 == 0 ? h0 : fmaf(pa, h0, pb);
}

// Runs the chunk whose lane positions start at l forward from carry (updated to the chunk's end
// state); out[i] = sum_n C h + D u at the lane's positions (0 past the end). With starts, first
// stores the chunk's start state there.
template <typename T>
__device__ void scan_chunk_forward(ScanParams s, ScanChannel ch, const ScanPosition (&p)[SCAN_ITEMS], int l,
                                   const float* A, const T* B, const T* C, const float* D, float* carry,
                                   float* starts, float (&out)[SCAN_ITEMS]) {
    const int lane = threadIdx.x % 32;
    if (starts)
        for (int n = lane; n < s.state; n += 32) starts[n] = carry[n];
#pragma unroll
    for (int i = 0; i < SCAN_ITEMS; ++i) out[i] = 0.f;
    for (int n = 0; n < s.state; ++n) {
        const float a_n = A[(i64)ch.d * s.state + n];
        const i64 at = ch.grow + (i64)n * s.len + l;
        float a[SCAN_ITEMS], b[SCAN_ITEMS], ca = 1.f, cb = 0.f;
#pragma unroll
        for (int i = 0; i < SCAN_ITEMS; ++i) {
            a[i] = expf(p[i].dt * a_n);
            b[i] = p[i].valid ? p[i].dt * to_f32(B[at + i]) * p[i].u : 0.f;
            cb = fmaf(a[i], cb, b[i]);
            ca *= a[i];
        }
        float h = lane_start(ca, cb, carry[n]);
#pragma unroll
        for (int i = 0; i < SCAN_ITEMS; ++i) {
            h = fmaf(a[i], h, b[i]);
            if (p[i].valid) out[i] = fmaf(to_f32(C[at + i]), h, out[i]);
        }
        const float end = __shfl_sync(FULL_MASK, h, 31);
        __syncwarp();
        if (lane == 0) carry[n] = end;
        __syncwarp();
    }
#pragma unroll
    for (int i = 0; i < SCAN_ITEMS; ++i)
        if (p[i].valid && D) out[i] = fmaf(D[ch.d], p[i].u, out[i]);
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
    for (int l0 = 0; l0 < s.len; l0 += SCAN_CHUNK) {
        const int l = l0 + lane * SCAN_ITEMS;
        ScanPosition p[SCAN_ITEMS];
        float out[SCAN_ITEMS];
        scan_positions(s, u, delta, z, bias, ch.row, l, p);
        scan_chunk_forward(s, ch, p, l, A, B, C, D, carry, nullptr, out);
#pragma unroll
        for (int i = 0; i < SCAN_ITEMS; ++i)
            if (p[i].valid) y[ch.row + l + i] = from_f32<T>(out[i] * p[i].gate);
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
    const int chunks = (s.len + SCAN_CHUNK - 1) / SCAN_CHUNK;
    float* my_starts = starts + chan * chunks * s.state;
    for (int n = lane; n < s.state; n += 32) {
        carry[n] = 0.f;
        gcarry[n] = g_last ? g_last[chan * s.state + n] : 0.f;
    }
    __syncwarp();
    const float bias = delta_bias ? delta_bias[ch.d] : 0.f;
    // Pass 1: the state at the start of every chunk.
    for (int k = 0; k < chunks; ++k) {
        const int l = k * SCAN_CHUNK + lane * SCAN_ITEMS;
        ScanPosition p[SCAN_ITEMS];
        float out[SCAN_ITEMS];
        scan_positions(s, u, delta, z, bias, ch.row, l, p);
        scan_chunk_forward(s, ch, p, l, A, B, C, D, carry, my_starts + (i64)k * s.state, out);
    }
    __syncwarp();
    // Pass 2: the chunks in reverse. Per state n: h forward from the chunk's start (h_prev the state
    // before each position), then the state gradient G backward: G_i = alpha_i G_{i+1} + gyl_i C_i with
    // alpha_i the decay of the next position (1 after the chunk's last, where gcarry enters).
    float d_skip = 0.f, d_bias = 0.f;
    for (int k = chunks - 1; k >= 0; --k) {
        const int l = k * SCAN_CHUNK + lane * SCAN_ITEMS;
        ScanPosition p[SCAN_ITEMS];
        scan_positions(s, u, delta, z, bias, ch.row, l, p);
        float g_out[SCAN_ITEMS], gyl[SCAN_ITEMS], y[SCAN_ITEMS], gdt[SCAN_ITEMS], gu[SCAN_ITEMS];
#pragma unroll
        for (int i = 0; i < SCAN_ITEMS; ++i) {
            g_out[i] = p[i].valid ? to_f32(gy[ch.row + l + i]) : 0.f;
            gyl[i] = g_out[i] * p[i].gate;
            y[i] = gdt[i] = gu[i] = 0.f;
        }
        const float* h_start = my_starts + (i64)k * s.state;
        for (int n = 0; n < s.state; ++n) {
            const float a_n = A[(i64)ch.d * s.state + n];
            const i64 at = ch.grow + (i64)n * s.len + l;
            float decay[SCAN_ITEMS], bn[SCAN_ITEMS], cn[SCAN_ITEMS], hb[SCAN_ITEMS], ca = 1.f, cb = 0.f;
#pragma unroll
            for (int i = 0; i < SCAN_ITEMS; ++i) {
                bn[i] = p[i].valid ? to_f32(B[at + i]) : 0.f;
                cn[i] = p[i].valid ? to_f32(C[at + i]) : 0.f;
                decay[i] = expf(p[i].dt * a_n);
                hb[i] = p[i].dt * bn[i] * p[i].u;
                cb = fmaf(decay[i], cb, hb[i]);
                ca *= decay[i];
            }
            float h_prev[SCAN_ITEMS], h[SCAN_ITEMS];
            float hh = lane_start(ca, cb, h_start[n]);
#pragma unroll
            for (int i = 0; i < SCAN_ITEMS; ++i) {
                h_prev[i] = hh;
                hh = fmaf(decay[i], hh, hb[i]);
                h[i] = hh;
                y[i] = fmaf(cn[i], h[i], y[i]);
            }
            // alpha of the lane's last position: the next lane's first decay (1 for lane 31).
            float alpha_last = __shfl_down_sync(FULL_MASK, decay[0], 1);
            if (lane == 31) alpha_last = 1.f;
            float ra = 1.f, rb = 0.f;  // the lane's steps composed: G_first = ra X + rb
#pragma unroll
            for (int i = SCAN_ITEMS - 1; i >= 0; --i) {
                const float alpha = i == SCAN_ITEMS - 1 ? alpha_last : decay[i + 1];
                rb = fmaf(alpha, rb, gyl[i] * cn[i]);
                ra *= alpha;
            }
            scan_lanes_down(ra, rb);
            const float g_first = fmaf(ra, gcarry[n], rb);  // G at the lane's first position
            float x = __shfl_down_sync(FULL_MASK, g_first, 1);  // G at the next lane's first position
            if (lane == 31) x = gcarry[n];
            float da = 0.f, G = x;
#pragma unroll
            for (int i = SCAN_ITEMS - 1; i >= 0; --i) {
                const float alpha = i == SCAN_ITEMS - 1 ? alpha_last : decay[i + 1];
                G = fmaf(alpha, G, gyl[i] * cn[i]);
                gdt[i] = fmaf(G, h_prev[i] * decay[i] * a_n + bn[i] * p[i].u, gdt[i]);
                gu[i] = fmaf(G, p[i].dt * bn[i], gu[i]);
                da = fmaf(G * h_prev[i], decay[i] * p[i].dt, da);
                if (p[i].valid) {
                    atomicAdd(dB + at + i, G * p[i].dt * p[i].u);
                    atomicAdd(dC + at + i, gyl[i] * h[i]);
                }
            }
            // G now holds the lane's first position's: the chunk's carry is lane 0's decay[0] G.
            da = warp_sum(da);
            const float next = __shfl_sync(FULL_MASK, decay[0] * G, 0);
            __syncwarp();
            if (lane == 0) {
                atomicAdd(dA + (i64)ch.d * s.state + n, da);
                gcarry[n] = next;
            }
            __syncwarp();
        }
#pragma unroll
        for (int i = 0; i < SCAN_ITEMS; ++i) {
            if (!p[i].valid) continue;
            const float dd = D ? D[ch.d] : 0.f;
            if (z) dz[ch.row + l + i] = from_f32<T>(g_out[i] * (y[i] + dd * p[i].u) * p[i].dgate);
            du[ch.row + l + i] = from_f32<T>(fmaf(dd, gyl[i], gu[i]));
            ddelta[ch.row + l + i] = from_f32<T>(gdt[i] * p[i].ddt);
            d_skip = fmaf(gyl[i], p[i].u, d_skip);
            d_bias = fmaf(gdt[i], p[i].ddt, d_bias);
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
