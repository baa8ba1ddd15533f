#include "shim.h"
#include "kernels.inc"
template <class P> P from(const int* raw) { P p; memcpy(&p, raw, sizeof(P)); return p; }
extern "C" {
void conv_fwd(const int* g, const float* x, const float* w, const float* b, float* y, unsigned gx, unsigned gy, unsigned gz) {
    ConvParams p = from<ConvParams>(g); launch({gx, gy, gz}, {256}, [&] { conv_forward_f32(p, x, w, b, y); });
}
void conv_bwd_data(const int* g, const float* dy, const float* w, float* dx, unsigned gx, unsigned gy, unsigned gz) {
    ConvParams p = from<ConvParams>(g); launch({gx, gy, gz}, {256}, [&] { conv_backward_data_f32(p, dy, w, dx); });
}
void conv_bwd_weight(const int* g, const float* x, const float* dy, float* part, float* dw, long long len, unsigned gx, unsigned gy, unsigned gz) {
    ConvParams p = from<ConvParams>(g); launch({gx, gy, gz}, {256}, [&] { conv_backward_weight_f32(p, x, dy, part); });
    launch({4}, {256}, [&] { conv_sum_splits_f32(part, p.splits, dw, len); });
}
#define CONV_HALF(T, S)                                                                                          \
    void conv_all_##S(const int* g, const T* x, const T* w, const T* b, T* y, T* dy, T* dx, float* part, T* dw,     \
                      long long len, const unsigned* grids) {                                                    \
        ConvParams p = from<ConvParams>(g);                                                                     \
        launch({grids[0], grids[1], grids[2]}, {256}, [&] { conv_forward_##S(p, x, w, b, y); });                 \
        launch({grids[3], grids[4], grids[5]}, {256}, [&] { conv_backward_data_##S(p, dy, w, dx); });            \
        launch({grids[6], grids[7], grids[8]}, {256}, [&] { conv_backward_weight_##S(p, x, dy, part); });        \
        launch({4}, {256}, [&] { conv_sum_splits_##S(part, p.splits, dw, len); });                               \
    }
CONV_HALF(f16, f16)
CONV_HALF(bf16, bf16)
#define ATTN_SCAN_HALF(T, S)                                                                                     \
    void attn_all_##S(const int* a_f, const int* a_dq, const int* a_dkv, const T* qkv, const T* bias, const T* mask, \
                      T* out, float* lse, const T* dout, float* dvec, T* dqkv, float* dbias, float* dmask,         \
                      const unsigned* grids) {                                                                  \
        AttnParams f = from<AttnParams>(a_f), p = from<AttnParams>(a_dq), q = from<AttnParams>(a_dkv);             \
        launch({grids[0], grids[3]}, {128}, [&] { window_attention_forward_##S(f, qkv, bias, mask, out, lse); });   \
        launch({5}, {256}, [&] { window_attention_row_dot_##S(p, out, dout, dvec); });                            \
        launch({grids[1], grids[3]}, {128},                                                                     \
               [&] { window_attention_backward_dq_##S(p, qkv, bias, mask, lse, dout, dvec, dqkv, dbias, dmask); }); \
        launch({grids[2], grids[3]}, {128},                                                                     \
               [&] { window_attention_backward_dkv_##S(q, qkv, bias, mask, lse, dout, dvec, dqkv); });             \
    }                                                                                                           \
    void scan_all_##S(const int* s, const T* u, const T* delta, const float* A, const T* B, const T* C,          \
                      const float* D, const T* z, const float* db, T* y, float* last, const T* gy, const float* gl, \
                      float* starts, T* du, T* ddelta, T* dz, float* dA, float* dB, float* dC, float* dD, float* ddb, \
                      unsigned gx, unsigned gyy) {                                                              \
        ScanParams p = from<ScanParams>(s);                                                                     \
        launch({gx, gyy}, {128}, [&] { selective_scan_forward_##S(p, u, delta, A, B, C, D, z, db, y, last); });    \
        launch({gx, gyy}, {128}, [&] {                                                                          \
            selective_scan_backward_##S(p, u, delta, A, B, C, D, z, db, gy, gl, starts, du, ddelta, dz, dA, dB, dC, dD, ddb); \
        });                                                                                                     \
    }
ATTN_SCAN_HALF(f16, f16)
ATTN_SCAN_HALF(bf16, bf16)
void bias_add(float* y, const float* b, int c, long long plane, long long len) {
    launch({3}, {256}, [&] { add_channel_bias_f32(y, b, c, plane, len); });
}
void scan_fwd(const int* s, const float* u, const float* delta, const float* A, const float* B, const float* C, const float* D, const float* z, const float* db, float* y, float* last, unsigned gx, unsigned gy) {
    ScanParams p = from<ScanParams>(s); launch({gx, gy}, {128}, [&] { selective_scan_forward_f32(p, u, delta, A, B, C, D, z, db, y, last); });
}
void scan_bwd(const int* s, const float* u, const float* delta, const float* A, const float* B, const float* C, const float* D, const float* z, const float* db,
              const float* gy, const float* gl, float* starts, float* du, float* ddelta, float* dz, float* dA, float* dB, float* dC, float* dD, float* ddb, unsigned gx, unsigned gyy) {
    ScanParams p = from<ScanParams>(s); launch({gx, gyy}, {128}, [&] { selective_scan_backward_f32(p, u, delta, A, B, C, D, z, db, gy, gl, starts, du, ddelta, dz, dA, dB, dC, dD, ddb); });
}
void attn_fwd(const int* a, const float* qkv, const float* bias, const float* mask, float* out, float* lse, unsigned gx, unsigned gy) {
    AttnParams p = from<AttnParams>(a); launch({gx, gy}, {128}, [&] { window_attention_forward_f32(p, qkv, bias, mask, out, lse); });
}
void attn_bwd(const int* a_dq, const int* a_dkv, const float* qkv, const float* bias, const float* mask, const float* lse, const float* out, const float* dout, float* dvec,
              float* dqkv, float* dbias, float* dmask, unsigned gx_dq, unsigned gx_dkv, unsigned gy) {
    AttnParams p = from<AttnParams>(a_dq), q = from<AttnParams>(a_dkv);
    launch({5}, {256}, [&] { window_attention_row_dot_f32(p, out, dout, dvec); });
    launch({gx_dq, gy}, {128}, [&] { window_attention_backward_dq_f32(p, qkv, bias, mask, lse, dout, dvec, dqkv, dbias, dmask); });
    launch({gx_dkv, gy}, {128}, [&] { window_attention_backward_dkv_f32(q, qkv, bias, mask, lse, dout, dvec, dqkv); });
}
}
extern "C" {
// The norm kernels in the launchers' order: moments (unless `given`), apply, then the backward.
void norm_all(const long long* stats_raw, const long long* affine_raw, const float* x, const float* w, const float* b,
              const float* dy, double eps, int given, double* mean, double* var, float* y, double* sg, double* sgx,
              float* dx, float* dw, float* db, long long n) {
    Rows stats, affine;
    memcpy(&stats, stats_raw, sizeof(Rows));
    memcpy(&affine, affine_raw, sizeof(Rows));
    unsigned srows = (unsigned)std::min<long long>(stats.rows, 3), arows = (unsigned)std::min<long long>(affine.rows, 3);
    if (!given) launch({srows}, {256}, [&] { norm_moments_f32(x, stats, mean, var); });
    launch({2}, {256}, [&] { norm_apply_f32(x, stats, mean, var, eps, w, b, affine, y, n); });
    if (!given) launch({srows}, {256}, [&] { norm_backward_sums_f32(x, dy, stats, mean, var, eps, w, affine, sg, sgx); });
    launch({2}, {256}, [&] { norm_backward_input_f32(x, dy, stats, mean, var, eps, w, affine, sg, sgx, given, dx, n); });
    launch({arows}, {256}, [&] { norm_affine_grads_f32(x, dy, stats, mean, var, eps, affine, dw, db); });
}
}
// Pooling, resampling and remaps (f32 and f64): forward then backward, a small grid so that the
// grid-stride loops take several turns.
template <class P> P from_raw(const void* raw) { P p; memcpy(&p, raw, sizeof(P)); return p; }
extern "C" {
#define RESAMPLE_API(S, T, B)                                                                                     \
    void max_pool_##S(const void* raw, const T* x, T* y, long long* am, const T* dy, T* dx) {                    \
        PoolParams p = from_raw<PoolParams>(raw);                                                               \
        launch({3}, {64}, [&] { max_pool_forward_##S(p, x, y, am); });                                          \
        launch({3}, {64}, [&] { max_pool_backward_##S(p, dy, am, dx); });                                       \
    }                                                                                                           \
    void avg_pool_##S(const void* raw, const T* x, T* y, const T* dy, T* dx) {                                   \
        PoolParams p = from_raw<PoolParams>(raw);                                                               \
        launch({3}, {64}, [&] { avg_pool_forward_##S(p, x, y); });                                              \
        launch({3}, {64}, [&] { avg_pool_backward_##S(p, dy, dx); });                                           \
    }                                                                                                           \
    void interpolate_##S(const void* raw, const T* x, T* y, const T* dy, T* dx) {                                \
        InterpParams p = from_raw<InterpParams>(raw);                                                           \
        launch({3}, {64}, [&] { interpolate_forward_##S(p, x, y); });                                           \
        launch({3}, {64}, [&] { interpolate_backward_##S(p, dy, dx); });                                        \
    }                                                                                                           \
    void remap_##S(const T* x, const void* lx, const void* lo, const long long* maps, const T* dy, T* y, T* dx,  \
                   const void* ldx, long long n) {                                                              \
        Strided sx = from_raw<Strided>(lx), so = from_raw<Strided>(lo), sdx = from_raw<Strided>(ldx);            \
        launch({3}, {64}, [&] { remap_b##B((const u##B*)x, sx, so, maps, 0, (u##B*)y, n); });                 \
        launch({3}, {64}, [&] { remap_backward_##S(dy, so, maps, dx, sdx, n); });                               \
    }
RESAMPLE_API(f32, float, 32)
RESAMPLE_API(f64, double, 64)
}
