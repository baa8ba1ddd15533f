// Reductions over rows: the input view `l` is arranged (kept axes..., reduced axes...) so that row r
// is the `cols` elements with linear indices r * cols + j. One block of ROW_BLOCK threads per row
// (grid-stride over rows); sums accumulate in f64, as on the CPU.

// The codes of the row reductions (seg-kernels/src/cuda/reduce.rs `ReduceCode`).
enum { SUM, MAX, MIN, LOGSUMEXP, VAR };

// SUM:       out[r] = T(T(sum_j x[r, j]) * scale)                      (mean: scale = 1 / cols)
// MAX / MIN: out[r] = max_j / min_j x[r, j], NaN if any is NaN
// LOGSUMEXP: out[r] = m + ln sum_j exp(x[r, j] - m), m = max_j x[r, j] (m itself when not finite)
// VAR:       out[r] = sum_j (x[r, j] - mean_r)^2 * scale                (scale = 1 / (cols - correction))
template <typename T> __device__ void reduce_rows(const T* x, Strided l, T* out, i64 rows, i64 cols, int op, double scale) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 base = r * cols;
        if (op == SUM || op == VAR) {
            double s = 0.0;
            for (i64 j = threadIdx.x; j < cols; j += blockDim.x) s += to_f64(x[strided_offset(l, base + j)]);
            s = block_sum(s);
            if (op == VAR) {
                double mean = s / (double)cols, q = 0.0;
                for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
                    double d = to_f64(x[strided_offset(l, base + j)]) - mean;
                    q += d * d;
                }
                q = block_sum(q);
                if (threadIdx.x == 0) out[r] = (T)(q * scale);
            } else if (threadIdx.x == 0) {
                out[r] = (T)((double)(T)s * scale);
            }
        } else if (op == MIN) {
            T m = infinity<T>();
            for (i64 j = threadIdx.x; j < cols; j += blockDim.x) m = nan_min(m, x[strided_offset(l, base + j)]);
            m = block_nan_min(m);
            if (threadIdx.x == 0) out[r] = m;
        } else {
            T m = -infinity<T>();
            for (i64 j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, x[strided_offset(l, base + j)]);
            m = block_nan_max(m);
            if (op == LOGSUMEXP && !is_nan(m) && m != infinity<T>() && m != -infinity<T>()) {
                double s = 0.0;
                for (i64 j = threadIdx.x; j < cols; j += blockDim.x) s += exp(to_f64(x[strided_offset(l, base + j)] - m));
                s = block_sum(s);
                m = m + (T)log(s);
            }
            if (threadIdx.x == 0) out[r] = m;
        }
    }
}

// Whether (v, i) is a better pick than (w, k): NaN first, then the larger (largest) or smaller value,
// then the smaller index (the CPU's first extreme). k < 0 marks "nothing yet".
template <typename T> __device__ __forceinline__ bool better(T v, i64 i, T w, i64 k, bool largest) {
    if (i < 0) return false;
    if (k < 0) return true;
    if (is_nan(w)) return is_nan(v) && i < k;
    if (is_nan(v)) return true;
    if (v == w) return i < k;
    return largest ? v > w : v < w;
}

// values[r], indices[r] = the first extreme of row r (NaN counts as the extreme, as in PyTorch).
template <typename T> __device__ void arg_rows(const T* x, Strided l, T* values, i64* indices, i64 rows, i64 cols, bool largest) {
    __shared__ T best_v[ROW_BLOCK / 32];
    __shared__ i64 best_i[ROW_BLOCK / 32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        T v = x[strided_offset(l, r * cols)];  // cols >= 1: checked by the launcher
        i64 idx = -1;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            T w = x[strided_offset(l, r * cols + j)];
            if (better(w, j, v, idx, largest)) {
                v = w;
                idx = j;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            T w = shfl_down(v, o);
            i64 k = shfl_down(idx, o);
            if (better(w, k, v, idx, largest)) {
                v = w;
                idx = k;
            }
        }
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        __syncthreads();
        if (lane == 0) {
            best_v[warp] = v;
            best_i[warp] = idx;
        }
        __syncthreads();
        if (warp == 0) {
            bool live = lane < (int)(blockDim.x >> 5);
            v = live ? best_v[lane] : best_v[0];
            idx = live ? best_i[lane] : (i64)-1;
            for (int o = 16; o > 0; o >>= 1) {
                T w = shfl_down(v, o);
                i64 k = shfl_down(idx, o);
                if (better(w, k, v, idx, largest)) {
                    v = w;
                    idx = k;
                }
            }
            if (lane == 0) {
                values[r] = v;
                indices[r] = idx;
            }
        }
    }
}

#define REDUCE_KERNELS(s, T) \
    extern "C" __global__ void reduce_rows_##s(const T* x, Strided l, T* out, i64 rows, i64 cols, int op, double scale) { \
        reduce_rows(x, l, out, rows, cols, op, scale); \
    }
REDUCE_KERNELS(f32, float)
REDUCE_KERNELS(f64, double)

#define ARG_KERNELS(s, T) \
    extern "C" __global__ void arg_rows_##s(const T* x, Strided l, T* values, i64* indices, i64 rows, i64 cols, int largest) { \
        arg_rows(x, l, values, indices, rows, cols, largest != 0); \
    }
ARG_KERNELS(f32, float)
ARG_KERNELS(f64, double)
ARG_KERNELS(i64, i64)
ARG_KERNELS(u8, u8)
