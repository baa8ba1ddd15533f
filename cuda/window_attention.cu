// Fused window attention (Swin), forward and backward, with the semantics of
// seg-kernels/src/cpu/window_attention.rs. Window w of N tokens, head h of d channels, q k v that head's
// rows of the packed qkv (windows, N, 3, heads, d), bias (heads, N, N), optional mask (nW, N, N) (window
// w uses mask[w % nW]):
//
//   S_ij = scale q_i . k_j + bias_h,ij + mask_w,ij,   lse_i = ln sum_j exp(S_ij),   P_ij = exp(S_ij - lse_i)
//   o_i  = sum_j P_ij v_j                              (o: (windows, N, heads, d); lse: (windows, heads, N))
//
// Backward from do, with D_i = do_i . o_i:
//
//   dP_ij = do_i . v_j,   dS_ij = P_ij (dP_ij - D_i)
//   dq_i = scale sum_j dS_ij k_j,   dk_j = scale sum_i dS_ij q_i,   dv_j = sum_i P_ij do_i
//   dbias_h += dS (over windows),   dmask_{w % nW} += dS (over heads)
//
// FlashAttention-2's structure with a runtime tile of `tile` rows (chosen by the launcher so that the
// shared memory fits in 48 KiB): the forward runs one block per (window, head, query tile), key and
// value tiles through shared memory, an online softmax (running max m and sum l, the accumulator
// rescaled by exp(m_old - m_new)), and keeps only lse. The backward recomputes P from lse: one kernel
// per (window, head, query tile) for dq (and the bias and mask gradients, f32 atomics), one per
// (window, head, key tile) for dk and dv, after a pass for D. All arithmetic is f32; storage is T.

#define ATTN_THREADS 128
#define NEG_INF __int_as_float(0xff800000)

struct AttnParams {
    int windows, heads, tokens, dim, mask_windows;
    float scale;
    int tile;
};

// Offsets of a head's rows: row i of q, k, v is qkv_base, k_base, v_base + i * qkv_stride; of o / do
// out_base + i * out_stride; its lse / D values start at lse_base.
struct AttnRows {
    i64 qkv_base, k_base, v_base, qkv_stride, out_base, out_stride, lse_base;
};

__device__ __forceinline__ AttnRows attn_rows(AttnParams p, int w, int h) {
    AttnRows r;
    r.qkv_stride = 3LL * p.heads * p.dim;
    r.qkv_base = ((i64)w * p.tokens * 3 * p.heads + h) * p.dim;
    r.k_base = r.qkv_base + (i64)p.heads * p.dim;
    r.v_base = r.qkv_base + 2LL * p.heads * p.dim;
    r.out_stride = (i64)p.heads * p.dim;
    r.out_base = ((i64)w * p.tokens * p.heads + h) * p.dim;
    r.lse_base = ((i64)w * p.heads + h) * p.tokens;
    return r;
}

// dst[r][c] (row stride d + 1) = src[(r0 + r) * stride + c] for r < tile, 0 past the last token.
template <typename T>
__device__ void attn_load_rows(AttnParams p, float* dst, const T* src, i64 stride, int r0) {
    const int ds = p.dim + 1;
    for (int e = threadIdx.x; e < p.tile * p.dim; e += blockDim.x) {
        const int r = e / p.dim, c = e % p.dim;
        dst[r * ds + c] = r0 + r < p.tokens ? to_f32(src[(i64)(r0 + r) * stride + c]) : 0.f;
    }
}

// dst[(r0 + r) * stride + c] = scale src[r][c] for the rows that are tokens.
template <typename T>
__device__ void attn_store_rows(AttnParams p, T* dst, i64 stride, int r0, const float* src, float scale) {
    const int ds = p.dim + 1;
    for (int e = threadIdx.x; e < p.tile * p.dim; e += blockDim.x) {
        const int r = e / p.dim, c = e % p.dim;
        if (r0 + r < p.tokens) dst[(i64)(r0 + r) * stride + c] = from_f32<T>(scale * src[r * ds + c]);
    }
}

__device__ __forceinline__ float attn_dot(const float* a, const float* b, int n) {
    float s = 0.f;
    for (int c = 0; c < n; ++c) s = fmaf(a[c], b[c], s);
    return s;
}

// S_ij of query i, key j (token indices) from their rows in shared memory.
template <typename T>
__device__ __forceinline__ float attn_score(AttnParams p, const float* q, const float* k, const T* bias,
                                            const T* mask, int w, int h, int i, int j) {
    float s = fmaf(p.scale, attn_dot(q, k, p.dim), to_f32(bias[((i64)h * p.tokens + i) * p.tokens + j]));
    if (mask) s += to_f32(mask[((i64)(w % p.mask_windows) * p.tokens + i) * p.tokens + j]);
    return s;
}

// Shared memory of the forward: Q, K, V, O (tile x (d + 1)), S (tile x (tile + 1)), m, l, alpha (tile).
template <typename T>
__device__ void attn_forward(AttnParams p, const T* qkv, const T* bias, const T* mask, T* out, float* lse) {
    extern __shared__ float attn_shared[];
    const int t = p.tile, ds = p.dim + 1, ss = t + 1;
    const int tiles = (p.tokens + t - 1) / t;
    const int w = blockIdx.x / tiles, i0 = (blockIdx.x % tiles) * t, h = blockIdx.y;
    float *Q = attn_shared, *K = Q + t * ds, *V = K + t * ds, *O = V + t * ds, *S = O + t * ds;
    float *m = S + t * ss, *l = m + t, *alpha = l + t;
    const AttnRows rows = attn_rows(p, w, h);
    attn_load_rows(p, Q, qkv + rows.qkv_base, rows.qkv_stride, i0);
    for (int e = threadIdx.x; e < t * ds; e += blockDim.x) O[e] = 0.f;
    for (int i = threadIdx.x; i < t; i += blockDim.x) {
        m[i] = NEG_INF;
        l[i] = 0.f;
    }
    for (int j0 = 0; j0 < p.tokens; j0 += t) {
        __syncthreads();  // the previous tile's K, V, S are no longer read
        attn_load_rows(p, K, qkv + rows.k_base, rows.qkv_stride, j0);
        attn_load_rows(p, V, qkv + rows.v_base, rows.qkv_stride, j0);
        __syncthreads();
        for (int e = threadIdx.x; e < t * t; e += blockDim.x) {
            const int i = e / t, j = e % t;
            S[i * ss + j] = i0 + i < p.tokens && j0 + j < p.tokens
                                ? attn_score(p, Q + i * ds, K + j * ds, bias, mask, w, h, i0 + i, j0 + j)
                                : NEG_INF;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < t; i += blockDim.x) {
            float mx = m[i];
            for (int j = 0; j < t; ++j) mx = fmaxf(mx, S[i * ss + j]);
            const float ref = mx == NEG_INF ? 0.f : mx;  // a row past the last token: all -inf
            float sum = 0.f;
            for (int j = 0; j < t; ++j) {
                const float e = expf(S[i * ss + j] - ref);
                S[i * ss + j] = e;
                sum += e;
            }
            alpha[i] = expf(m[i] - ref);
            l[i] = fmaf(l[i], alpha[i], sum);
            m[i] = mx;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < t * p.dim; e += blockDim.x) {
            const int i = e / p.dim, c = e % p.dim;
            float acc = O[i * ds + c] * alpha[i];
            for (int j = 0; j < t; ++j) acc = fmaf(S[i * ss + j], V[j * ds + c], acc);
            O[i * ds + c] = acc;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < t * p.dim; e += blockDim.x) {
        const int i = e / p.dim, c = e % p.dim;
        if (i0 + i < p.tokens) out[rows.out_base + (i64)(i0 + i) * rows.out_stride + c] = from_f32<T>(O[i * ds + c] / l[i]);
    }
    for (int i = threadIdx.x; i < t; i += blockDim.x)
        if (i0 + i < p.tokens) lse[rows.lse_base + i0 + i] = m[i] + logf(l[i]);
}

// D[w, h, i] = do_i . o_i, one thread per row.
template <typename T>
__device__ void attn_row_dot(AttnParams p, const T* out, const T* dout, float* dvec) {
    GRID_STRIDE_LOOP(r, (i64)p.windows * p.heads * p.tokens) {
        const int i = r % p.tokens, h = (r / p.tokens) % p.heads;
        const i64 w = r / ((i64)p.tokens * p.heads);
        const i64 at = ((w * p.tokens + i) * p.heads + h) * p.dim;
        float s = 0.f;
        for (int c = 0; c < p.dim; ++c) s = fmaf(to_f32(dout[at + c]), to_f32(out[at + c]), s);
        dvec[r] = s;
    }
}

// dq of one query tile, and dS into the bias (and mask) gradients. Shared memory: Q, dO, dQ, K, V
// (tile x (d + 1)), dS (tile x (tile + 1)), lse, D (tile).
template <typename T>
__device__ void attn_backward_dq(AttnParams p, const T* qkv, const T* bias, const T* mask, const float* lse,
                                 const T* dout, const float* dvec, T* dqkv, float* dbias, float* dmask) {
    extern __shared__ float attn_shared[];
    const int t = p.tile, ds = p.dim + 1, ss = t + 1;
    const int tiles = (p.tokens + t - 1) / t;
    const int w = blockIdx.x / tiles, i0 = (blockIdx.x % tiles) * t, h = blockIdx.y;
    float *Q = attn_shared, *dO = Q + t * ds, *dQ = dO + t * ds, *K = dQ + t * ds, *V = K + t * ds;
    float *dS = V + t * ds, *L = dS + t * ss, *Dv = L + t;
    const AttnRows rows = attn_rows(p, w, h);
    attn_load_rows(p, Q, qkv + rows.qkv_base, rows.qkv_stride, i0);
    attn_load_rows(p, dO, dout + rows.out_base, rows.out_stride, i0);
    for (int e = threadIdx.x; e < t * ds; e += blockDim.x) dQ[e] = 0.f;
    for (int i = threadIdx.x; i < t; i += blockDim.x) {
        L[i] = i0 + i < p.tokens ? lse[rows.lse_base + i0 + i] : 0.f;
        Dv[i] = i0 + i < p.tokens ? dvec[rows.lse_base + i0 + i] : 0.f;
    }
    for (int j0 = 0; j0 < p.tokens; j0 += t) {
        __syncthreads();
        attn_load_rows(p, K, qkv + rows.k_base, rows.qkv_stride, j0);
        attn_load_rows(p, V, qkv + rows.v_base, rows.qkv_stride, j0);
        __syncthreads();
        for (int e = threadIdx.x; e < t * t; e += blockDim.x) {
            const int i = e / t, j = e % t, ti = i0 + i, tj = j0 + j;
            float g = 0.f;
            if (ti < p.tokens && tj < p.tokens) {
                const float pr = expf(attn_score(p, Q + i * ds, K + j * ds, bias, mask, w, h, ti, tj) - L[i]);
                g = pr * (attn_dot(dO + i * ds, V + j * ds, p.dim) - Dv[i]);
                atomicAdd(dbias + ((i64)h * p.tokens + ti) * p.tokens + tj, g);
                if (dmask) atomicAdd(dmask + ((i64)(w % p.mask_windows) * p.tokens + ti) * p.tokens + tj, g);
            }
            dS[i * ss + j] = g;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < t * p.dim; e += blockDim.x) {
            const int i = e / p.dim, c = e % p.dim;
            float acc = dQ[i * ds + c];
            for (int j = 0; j < t; ++j) acc = fmaf(dS[i * ss + j], K[j * ds + c], acc);
            dQ[i * ds + c] = acc;
        }
    }
    __syncthreads();
    attn_store_rows(p, dqkv + rows.qkv_base, rows.qkv_stride, i0, dQ, p.scale);
}

// dk and dv of one key tile. Shared memory: K, V, dK, dV, Q, dO (tile x (d + 1)), P, dS (tile x
// (tile + 1)), lse, D (tile).
template <typename T>
__device__ void attn_backward_dkv(AttnParams p, const T* qkv, const T* bias, const T* mask, const float* lse,
                                  const T* dout, const float* dvec, T* dqkv) {
    extern __shared__ float attn_shared[];
    const int t = p.tile, ds = p.dim + 1, ss = t + 1;
    const int tiles = (p.tokens + t - 1) / t;
    const int w = blockIdx.x / tiles, j0 = (blockIdx.x % tiles) * t, h = blockIdx.y;
    float *K = attn_shared, *V = K + t * ds, *dK = V + t * ds, *dV = dK + t * ds, *Q = dV + t * ds;
    float *dO = Q + t * ds, *P = dO + t * ds, *dS = P + t * ss, *L = dS + t * ss, *Dv = L + t;
    const AttnRows rows = attn_rows(p, w, h);
    attn_load_rows(p, K, qkv + rows.k_base, rows.qkv_stride, j0);
    attn_load_rows(p, V, qkv + rows.v_base, rows.qkv_stride, j0);
    for (int e = threadIdx.x; e < t * ds; e += blockDim.x) {
        dK[e] = 0.f;
        dV[e] = 0.f;
    }
    for (int i0 = 0; i0 < p.tokens; i0 += t) {
        __syncthreads();
        attn_load_rows(p, Q, qkv + rows.qkv_base, rows.qkv_stride, i0);
        attn_load_rows(p, dO, dout + rows.out_base, rows.out_stride, i0);
        for (int i = threadIdx.x; i < t; i += blockDim.x) {
            L[i] = i0 + i < p.tokens ? lse[rows.lse_base + i0 + i] : 0.f;
            Dv[i] = i0 + i < p.tokens ? dvec[rows.lse_base + i0 + i] : 0.f;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < t * t; e += blockDim.x) {
            const int i = e / t, j = e % t, ti = i0 + i, tj = j0 + j;
            float pr = 0.f, g = 0.f;
            if (ti < p.tokens && tj < p.tokens) {
                pr = expf(attn_score(p, Q + i * ds, K + j * ds, bias, mask, w, h, ti, tj) - L[i]);
                g = pr * (attn_dot(dO + i * ds, V + j * ds, p.dim) - Dv[i]);
            }
            P[i * ss + j] = pr;
            dS[i * ss + j] = g;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < t * p.dim; e += blockDim.x) {
            const int j = e / p.dim, c = e % p.dim;
            float ak = dK[j * ds + c], av = dV[j * ds + c];
            for (int i = 0; i < t; ++i) {
                ak = fmaf(dS[i * ss + j], Q[i * ds + c], ak);
                av = fmaf(P[i * ss + j], dO[i * ds + c], av);
            }
            dK[j * ds + c] = ak;
            dV[j * ds + c] = av;
        }
    }
    __syncthreads();
    attn_store_rows(p, dqkv + rows.k_base, rows.qkv_stride, j0, dK, p.scale);
    attn_store_rows(p, dqkv + rows.v_base, rows.qkv_stride, j0, dV, 1.f);
}

#define ATTN_KERNELS(T, S)                                                                                          \
    extern "C" __global__ void __launch_bounds__(ATTN_THREADS) window_attention_forward_##S(                        \
        AttnParams p, const T* qkv, const T* bias, const T* mask, T* out, float* lse) {                             \
        attn_forward<T>(p, qkv, bias, mask, out, lse);                                                              \
    }                                                                                                               \
    extern "C" __global__ void window_attention_row_dot_##S(AttnParams p, const T* out, const T* dout,             \
                                                            float* dvec) {                                          \
        attn_row_dot<T>(p, out, dout, dvec);                                                                        \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(ATTN_THREADS) window_attention_backward_dq_##S(                    \
        AttnParams p, const T* qkv, const T* bias, const T* mask, const float* lse, const T* dout,                  \
        const float* dvec, T* dqkv, float* dbias, float* dmask) {                                                   \
        attn_backward_dq<T>(p, qkv, bias, mask, lse, dout, dvec, dqkv, dbias, dmask);                               \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(ATTN_THREADS) window_attention_backward_dkv_##S(                   \
        AttnParams p, const T* qkv, const T* bias, const T* mask, const float* lse, const T* dout,                  \
        const float* dvec, T* dqkv) {                                                                               \
        attn_backward_dkv<T>(p, qkv, bias, mask, lse, dout, dvec, dqkv);                                            \
    }

FOR_EACH_FLOAT(ATTN_KERNELS)
