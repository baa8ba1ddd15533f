// The norms (instance, group, batch, layer) as fused kernels over a dense input. The formulas are the
// CPU kernels' (seg-kernels/src/cpu/norm.rs): per statistics group, mean `mu`, biased variance `var`,
// `rstd = 1 / sqrt(var + eps)`, `xhat = (x - mu) rstd`, `y = xhat w[a] + b[a]`; backward with
// `g = dy w[a]` and means over the group:
//   dx = rstd (g - mean(g) - xhat mean(g xhat))      (dx = rstd g when the statistics are constants)
//   dw[a] = sum dy xhat,  db[a] = sum dy             (over the elements of affine index a)
// Sums accumulate in f64, the statistics in two passes (mean, then squared deviations), as on the CPU.
//
// Every grouping of the elements (statistics groups, affine indices) is a `Rows`: row r of `rows`
// covers `outer` blocks of `inner` consecutive elements, block o starting at r * inner + o * stride.
// For x (N, C, S): group norm with G groups is {N G, C/G S, 1, 0}, batch norm {C, S, N, C S}, the
// per-channel affine {C, S, N, C S}; for layer norm over x (M, K): statistics {M, K, 1, 0}, affine
// {K, 1, M, K}. Element idx belongs to row (idx / inner) % rows.

struct Rows {
    i64 rows;
    i64 inner;
    i64 outer;
    i64 stride;
};

__device__ __forceinline__ i64 rows_count(const Rows& g) { return g.inner * g.outer; }
// The position of the j-th element of row r.
__device__ __forceinline__ i64 rows_element(const Rows& g, i64 r, i64 j) {
    return r * g.inner + (j / g.inner) * g.stride + j % g.inner;
}
// The row element idx belongs to.
__device__ __forceinline__ i64 rows_of(const Rows& g, i64 idx) { return (idx / g.inner) % g.rows; }

__device__ __forceinline__ double rstd_of(const double* var, i64 r, double eps) { return 1.0 / sqrt(var[r] + eps); }

// mean[r] = sum_j x[r, j] / n, var[r] = sum_j (x[r, j] - mean[r])^2 / n (n the row's count).
template <typename T> __device__ void norm_moments(const T* x, Rows g, double* mean, double* var) {
    const i64 n = rows_count(g);
    for (i64 r = blockIdx.x; r < g.rows; r += gridDim.x) {
        double s = 0.0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) s += to_f64(x[rows_element(g, r, j)]);
        const double mu = block_sum(s) / (double)n;
        double q = 0.0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            double d = to_f64(x[rows_element(g, r, j)]) - mu;
            q += d * d;
        }
        q = block_sum(q);
        if (threadIdx.x == 0) {
            mean[r] = mu;
            var[r] = q / (double)n;
        }
    }
}

// y[idx] = (x[idx] - mean[s]) rstd[s] w[a] + b[a], s = rows_of(stats, idx), a = rows_of(affine, idx);
// w, b may be null (1 and 0).
template <typename T>
__device__ void norm_apply(const T* x, Rows stats, const double* mean, const double* var, double eps, const T* w,
                           const T* b, Rows affine, T* y, i64 n) {
    GRID_STRIDE_LOOP(idx, n) {
        const i64 s = rows_of(stats, idx), a = rows_of(affine, idx);
        double v = (to_f64(x[idx]) - mean[s]) * rstd_of(var, s, eps);
        if (w) v *= to_f64(w[a]);
        if (b) v += to_f64(b[a]);
        y[idx] = from_f64<T>(v);
    }
}

// Per statistics row r: sum_g[r] = sum dy w[a], sum_gx[r] = sum dy w[a] xhat.
template <typename T>
__device__ void norm_backward_sums(const T* x, const T* dy, Rows stats, const double* mean, const double* var,
                                   double eps, const T* w, Rows affine, double* sum_g, double* sum_gx) {
    const i64 n = rows_count(stats);
    for (i64 r = blockIdx.x; r < stats.rows; r += gridDim.x) {
        const double mu = mean[r], rs = rstd_of(var, r, eps);
        double sg = 0.0, sgx = 0.0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const i64 idx = rows_element(stats, r, j);
            double gv = to_f64(dy[idx]);
            if (w) gv *= to_f64(w[rows_of(affine, idx)]);
            sg += gv;
            sgx += gv * (to_f64(x[idx]) - mu) * rs;
        }
        sg = block_sum(sg);
        sgx = block_sum(sgx);
        if (threadIdx.x == 0) {
            sum_g[r] = sg;
            sum_gx[r] = sgx;
        }
    }
}

// Per affine row a: dw[a] = sum dy xhat, db[a] = sum dy (either may be null).
template <typename T>
__device__ void norm_affine_grads(const T* x, const T* dy, Rows stats, const double* mean, const double* var,
                                  double eps, Rows affine, T* dw, T* db) {
    const i64 n = rows_count(affine);
    for (i64 a = blockIdx.x; a < affine.rows; a += gridDim.x) {
        double sw = 0.0, sb = 0.0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
            const i64 idx = rows_element(affine, a, j), s = rows_of(stats, idx);
            const double d = to_f64(dy[idx]);
            sb += d;
            sw += d * (to_f64(x[idx]) - mean[s]) * rstd_of(var, s, eps);
        }
        sw = block_sum(sw);
        sb = block_sum(sb);
        if (threadIdx.x == 0) {
            if (dw) dw[a] = from_f64<T>(sw);
            if (db) db[a] = from_f64<T>(sb);
        }
    }
}

// dx[idx] = rstd (g - sum_g / n - xhat sum_gx / n), or rstd g when `constant` (sum_g, sum_gx unread).
template <typename T>
__device__ void norm_backward_input(const T* x, const T* dy, Rows stats, const double* mean, const double* var,
                                    double eps, const T* w, Rows affine, const double* sum_g, const double* sum_gx,
                                    int constant, T* dx, i64 n) {
    const double count = (double)rows_count(stats);
    GRID_STRIDE_LOOP(idx, n) {
        const i64 s = rows_of(stats, idx);
        const double rs = rstd_of(var, s, eps);
        double gv = to_f64(dy[idx]);
        if (w) gv *= to_f64(w[rows_of(affine, idx)]);
        double v = gv;
        if (!constant) v -= sum_g[s] / count + (to_f64(x[idx]) - mean[s]) * rs * sum_gx[s] / count;
        dx[idx] = from_f64<T>(rs * v);
    }
}

#define NORM_KERNELS(s, T) \
    extern "C" __global__ void norm_moments_##s(const T* x, Rows g, double* mean, double* var) { \
        norm_moments(x, g, mean, var); \
    } \
    extern "C" __global__ void norm_apply_##s(const T* x, Rows stats, const double* mean, const double* var, \
                                              double eps, const T* w, const T* b, Rows affine, T* y, i64 n) { \
        norm_apply(x, stats, mean, var, eps, w, b, affine, y, n); \
    } \
    extern "C" __global__ void norm_backward_sums_##s(const T* x, const T* dy, Rows stats, const double* mean, \
                                                      const double* var, double eps, const T* w, Rows affine, \
                                                      double* sum_g, double* sum_gx) { \
        norm_backward_sums(x, dy, stats, mean, var, eps, w, affine, sum_g, sum_gx); \
    } \
    extern "C" __global__ void norm_affine_grads_##s(const T* x, const T* dy, Rows stats, const double* mean, \
                                                     const double* var, double eps, Rows affine, T* dw, T* db) { \
        norm_affine_grads(x, dy, stats, mean, var, eps, affine, dw, db); \
    } \
    extern "C" __global__ void norm_backward_input_##s(const T* x, const T* dy, Rows stats, const double* mean, \
                                                       const double* var, double eps, const T* w, Rows affine, \
                                                       const double* sum_g, const double* sum_gx, int constant, \
                                                       T* dx, i64 n) { \
        norm_backward_input(x, dy, stats, mean, var, eps, w, affine, sum_g, sum_gx, constant, dx, n); \
    }
NORM_KERNELS(f32, float)
NORM_KERNELS(f64, double)
