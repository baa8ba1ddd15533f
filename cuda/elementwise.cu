// Elementwise kernels. Inputs are read through `Strided` views (so permuted, narrowed and broadcast
// views need no copy first); outputs are dense, except for copy's destination view.

// dst[offset(ld, i)] = src[offset(ls, i)] for i < n: gathers a view into a dense buffer, or scatters
// a dense buffer into a view (concat, pad); one kernel per element size.
#define COPY(bits, T) \
    extern "C" __global__ void copy_b##bits(const T* src, Strided ls, T* dst, Strided ld, i64 n) { \
        GRID_STRIDE_LOOP(i, n) { dst[strided_offset(ld, i)] = src[strided_offset(ls, i)]; } \
    }
COPY(8, u8)
COPY(16, u16)
COPY(32, u32)
COPY(64, u64)

// out[i] = value for i < n (the value's bits, prepared on the host).
#define FILL(bits, T) \
    extern "C" __global__ void fill_b##bits(T* out, T value, i64 n) { GRID_STRIDE_LOOP(i, n) { out[i] = value; } }
FILL(8, u8)
FILL(16, u16)
FILL(32, u32)
FILL(64, u64)

// out[i] = B(A(x[offset(l, i)]) as f64): the CPU's `U::from_f64(x.as_f64())` conversion.
#define CAST(a, TA, b, TB) \
    extern "C" __global__ void cast_##a##_##b(const TA* x, Strided l, TB* out, i64 n) { \
        GRID_STRIDE_LOOP(i, n) { out[i] = from_f64<TB>(to_f64(x[strided_offset(l, i)])); } \
    }
#define CAST_FROM(a, TA) \
    CAST(a, TA, f16, f16) CAST(a, TA, bf16, bf16) CAST(a, TA, f32, float) \
    CAST(a, TA, f64, double) CAST(a, TA, i64, i64) CAST(a, TA, u8, u8)
CAST_FROM(f16, f16)
CAST_FROM(bf16, bf16)
CAST_FROM(f32, float)
CAST_FROM(f64, double)
CAST_FROM(i64, i64)
CAST_FROM(u8, u8)

// The codes of seg_tensor's `Unary` (seg-kernels/src/cuda/elementwise.rs `UnaryCode`); p, q are
// its parameters.
enum { NEG, EXP, LOG, SQRT, ABS, RELU, LEAKY_RELU, GELU, GELU_TANH, SILU, SIGMOID, SOFTPLUS, TANH, CLAMP, POWF, AFFINE };

#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_TANH_C 0.044715
#define FRAC_1_SQRT_2 0.7071067811865476
#define FRAC_1_SQRT_2PI 0.3989422804014327

// f(x), PyTorch's formulas (NaN passes through relu and clamp).
template <typename T> __device__ T unary_apply(int op, T x, T p, T q) {
    const T one = (T)1, zero = (T)0;
    switch (op) {
    case NEG: return -x;
    case EXP: return m_exp(x);
    case LOG: return m_log(x);
    case SQRT: return m_sqrt(x);
    case ABS: return m_abs(x);
    case RELU: return (is_nan(x) || x > zero) ? x : zero;
    case LEAKY_RELU: return x > zero ? x : x * p;
    case GELU: return (T)0.5 * x * (one + m_erf(x * (T)FRAC_1_SQRT_2));
    case GELU_TANH: return (T)0.5 * x * (one + m_tanh((T)SQRT_2_OVER_PI * (x + (T)GELU_TANH_C * x * x * x)));
    case SILU: return x / (one + m_exp(-x));
    case SIGMOID: return one / (one + m_exp(-x));
    case SOFTPLUS: {
        T bx = x * p;
        return bx > q ? x : m_log1p(m_exp(bx)) / p;
    }
    case TANH: return m_tanh(x);
    case CLAMP: return is_nan(x) ? x : (x < p ? p : (x > q ? q : x));
    case POWF: return m_pow(x, p);
    default: return x * p + q;  // AFFINE
    }
}

// f'(x), as `Unary::derivative` on the CPU.
template <typename T> __device__ T unary_derivative(int op, T x, T p, T q) {
    const T one = (T)1, zero = (T)0;
    switch (op) {
    case NEG: return -one;
    case EXP: return m_exp(x);
    case LOG: return one / x;
    case SQRT: return (T)0.5 / m_sqrt(x);
    case ABS: return x > zero ? one : (x < zero ? -one : (x == zero ? zero : x));
    case RELU: return x > zero ? one : zero;
    case LEAKY_RELU: return x > zero ? one : p;
    case GELU: {
        T cdf = (T)0.5 * (one + m_erf(x * (T)FRAC_1_SQRT_2));
        T pdf = m_exp((T)-0.5 * x * x) * (T)FRAC_1_SQRT_2PI;
        return cdf + x * pdf;
    }
    case GELU_TANH: {
        T t = m_tanh((T)SQRT_2_OVER_PI * (x + (T)GELU_TANH_C * x * x * x));
        T d_inner = (T)SQRT_2_OVER_PI * (one + (T)(3.0 * GELU_TANH_C) * x * x);
        return (T)0.5 * (one + t) + (T)0.5 * x * (one - t * t) * d_inner;
    }
    case SILU: {
        T s = one / (one + m_exp(-x));
        return s * (one + x * (one - s));
    }
    case SIGMOID: {
        T s = one / (one + m_exp(-x));
        return s * (one - s);
    }
    case SOFTPLUS: return x * p > q ? one : one / (one + m_exp(-(x * p)));
    case TANH: {
        T t = m_tanh(x);
        return one - t * t;
    }
    case CLAMP: return (x >= p && x <= q) ? one : zero;
    case POWF: return p == zero ? zero : p * m_pow(x, p - one);
    default: return p;  // AFFINE
    }
}

// out[i] = f(x[offset(l, i)])
template <typename T> __device__ void unary(const T* x, Strided l, T* out, i64 n, int op, T p, T q) {
    GRID_STRIDE_LOOP(i, n) { out[i] = unary_apply(op, x[strided_offset(l, i)], p, q); }
}
// dx[i] = g[offset(lg, i)] * f'(x[offset(lx, i)])
template <typename T>
__device__ void unary_backward(const T* g, Strided lg, const T* x, Strided lx, T* dx, i64 n, int op, T p, T q) {
    GRID_STRIDE_LOOP(i, n) { dx[i] = g[strided_offset(lg, i)] * unary_derivative(op, x[strided_offset(lx, i)], p, q); }
}

// The codes of `Binary` (seg-kernels/src/cuda/elementwise.rs `BinaryCode`).
enum { ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, POW };

// f(a, b), NaN-propagating maximum/minimum.
template <typename T> __device__ T binary_apply(int op, T a, T b) {
    switch (op) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return a / b;
    case MAXIMUM: return nan_max(a, b);
    case MINIMUM: return nan_min(a, b);
    default: return m_pow(a, b);  // POW
    }
}

// df/da (side 0) or df/db (side 1) at (a, b); ties of maximum/minimum split the gradient in halves,
// pow's conventions at a = 0 and b = 0 as on the CPU.
template <typename T> __device__ T binary_partial(int op, int side, T a, T b) {
    const T one = (T)1, zero = (T)0, half = (T)0.5;
    switch (op) {
    case ADD: return one;
    case SUB: return side == 0 ? one : -one;
    case MUL: return side == 0 ? b : a;
    case DIV: return side == 0 ? one / b : -a / (b * b);
    case MAXIMUM: return a == b ? half : ((side == 0) == (a > b) ? one : zero);
    case MINIMUM: return a == b ? half : ((side == 0) == (a < b) ? one : zero);
    default:  // POW
        if (side == 0) return b == zero ? zero : b * m_pow(a, b - one);
        return (a == zero && b >= zero) ? zero : m_pow(a, b) * m_log(a);
    }
}

// out[i] = f(a[offset(la, i)], b[offset(lb, i)]) (la, lb broadcast to the output's shape)
template <typename T> __device__ void binary(const T* a, Strided la, const T* b, Strided lb, T* out, i64 n, int op) {
    GRID_STRIDE_LOOP(i, n) { out[i] = binary_apply(op, a[strided_offset(la, i)], b[strided_offset(lb, i)]); }
}
// d[i] = g[offset(lg, i)] * df/d(side)(a[offset(la, i)], b[offset(lb, i)])
template <typename T>
__device__ void binary_backward(const T* g, Strided lg, const T* a, Strided la, const T* b, Strided lb, T* d, i64 n,
                                int op, int side) {
    GRID_STRIDE_LOOP(i, n) {
        d[i] = g[strided_offset(lg, i)] * binary_partial(op, side, a[strided_offset(la, i)], b[strided_offset(lb, i)]);
    }
}

// out[i] = where(mask[offset(lm, i)] != 0, a[offset(la, i)], b[offset(lb, i)])
template <typename T>
__device__ void select(const u8* mask, Strided lm, const T* a, Strided la, const T* b, Strided lb, T* out, i64 n) {
    GRID_STRIDE_LOOP(i, n) {
        out[i] = mask[strided_offset(lm, i)] != 0 ? a[strided_offset(la, i)] : b[strided_offset(lb, i)];
    }
}

#define FLOAT_KERNELS(s, T) \
    extern "C" __global__ void unary_##s(const T* x, Strided l, T* out, i64 n, int op, T p, T q) { \
        unary(x, l, out, n, op, p, q); \
    } \
    extern "C" __global__ void unary_backward_##s(const T* g, Strided lg, const T* x, Strided lx, T* dx, i64 n, \
                                                  int op, T p, T q) { \
        unary_backward(g, lg, x, lx, dx, n, op, p, q); \
    } \
    extern "C" __global__ void binary_##s(const T* a, Strided la, const T* b, Strided lb, T* out, i64 n, int op) { \
        binary(a, la, b, lb, out, n, op); \
    } \
    extern "C" __global__ void binary_backward_##s(const T* g, Strided lg, const T* a, Strided la, const T* b, \
                                                   Strided lb, T* d, i64 n, int op, int side) { \
        binary_backward(g, lg, a, la, b, lb, d, n, op, side); \
    } \
    extern "C" __global__ void select_##s(const u8* mask, Strided lm, const T* a, Strided la, const T* b, \
                                          Strided lb, T* out, i64 n) { \
        select(mask, lm, a, la, b, lb, out, n); \
    }
FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)

// The codes of the comparisons (seg-kernels/src/cuda/elementwise.rs `CompareCode`).
enum { EQ, NE, LT, LE, GT, GE };

// out[i] = 1 if a[offset(la, i)] (cmp) b[offset(lb, i)] else 0
#define COMPARE(s, T) \
    extern "C" __global__ void compare_##s(const T* a, Strided la, const T* b, Strided lb, u8* out, i64 n, int cmp) { \
        GRID_STRIDE_LOOP(i, n) { \
            T x = a[strided_offset(la, i)], y = b[strided_offset(lb, i)]; \
            bool r = cmp == EQ ? x == y : cmp == NE ? x != y : cmp == LT ? x < y : cmp == LE ? x <= y : cmp == GT ? x > y : x >= y; \
            out[i] = r ? 1 : 0; \
        } \
    }
COMPARE(f32, float)
COMPARE(f64, double)
COMPARE(i64, i64)
COMPARE(u8, u8)
