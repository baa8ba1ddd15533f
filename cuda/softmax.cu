// Softmax and log-softmax along one axis. The views `lx`, `lg`, `ly` are arranged (other axes...,
// softmax axis) so that row r is the `cols` elements r * cols + j; the output `lo` likewise (a dense
// buffer seen through the same permutation). One block of ROW_BLOCK threads per row.

// m = max_j x_j (NaN skipped; 0 when not finite), s = sum_j exp(x_j - m);
// softmax: y_j = exp(x_j - m) / s;   log_softmax: y_j = (x_j - m) - ln s
template <typename T> __device__ void softmax_rows(const T* x, Strided lx, T* y, Strided ly, i64 rows, i64 cols, bool log) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 base = r * cols;
        T m = -infinity<T>();
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) m = skip_nan_max(m, x[strided_offset(lx, base + j)]);
        m = block_skip_nan_max(m);
        if (is_nan(m) || m == infinity<T>() || m == -infinity<T>()) m = (T)0;
        T s = (T)0;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) s += m_exp(x[strided_offset(lx, base + j)] - m);
        s = block_sum(s);
        T log_s = m_log(s);
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            T v = x[strided_offset(lx, base + j)] - m;
            y[strided_offset(ly, base + j)] = log ? v - log_s : m_exp(v) / s;
        }
    }
}

// softmax:     dx_j = y_j (g_j - sum_k g_k y_k)
// log_softmax: dx_j = g_j - exp(y_j) sum_k g_k
template <typename T>
__device__ void softmax_backward_rows(const T* g, Strided lg, const T* y, Strided ly, T* dx, Strided lo, i64 rows, i64 cols, bool log) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const i64 base = r * cols;
        T s = (T)0;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            T gj = g[strided_offset(lg, base + j)];
            s += log ? gj : gj * y[strided_offset(ly, base + j)];
        }
        s = block_sum(s);
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            T gj = g[strided_offset(lg, base + j)], yj = y[strided_offset(ly, base + j)];
            dx[strided_offset(lo, base + j)] = log ? gj - m_exp(yj) * s : yj * (gj - s);
        }
    }
}

#define SOFTMAX_KERNELS(s, T) \
    extern "C" __global__ void softmax_##s(const T* x, Strided lx, T* y, Strided ly, i64 rows, i64 cols, int log) { \
        softmax_rows(x, lx, y, ly, rows, cols, log != 0); \
    } \
    extern "C" __global__ void softmax_backward_##s(const T* g, Strided lg, const T* y, Strided ly, T* dx, Strided lo, \
                                                    i64 rows, i64 cols, int log) { \
        softmax_backward_rows(g, lg, y, ly, dx, lo, rows, cols, log != 0); \
    }
SOFTMAX_KERNELS(f32, float)
SOFTMAX_KERNELS(f64, double)
