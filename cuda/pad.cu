// Axis remaps (pad in every mode, roll, flip): output position o_d on axis d reads input position
// maps[base_d + o_d] (base_d = out shape_0 + ... + out shape_{d-1}), or, where any axis's entry is -1,
// the fill value. `lx` is the input view (shape: the input's), `lo` the dense output's shape.

// out[i] = all d: m_d(o_d(i)) >= 0 ? x[lx.offset + sum_d m_d(o_d(i)) lx.strides[d]] : fill
#define REMAP(bits, T) \
    extern "C" __global__ void remap_b##bits(const T* x, Strided lx, Strided lo, const i64* maps, T fill, T* out, \
                                             i64 n) { \
        i64 total = 0; \
        for (int d = 0; d < lo.rank; ++d) total += lo.shape[d]; \
        GRID_STRIDE_LOOP(i, n) { \
            i64 rest = i, base = total, at = lx.offset; \
            bool inside = true; \
            for (int d = lo.rank - 1; d >= 0; --d) { \
                base -= lo.shape[d]; \
                const i64 src = maps[base + rest % lo.shape[d]]; \
                rest /= lo.shape[d]; \
                inside = inside && src >= 0; \
                at += src * lx.strides[d]; \
            } \
            out[i] = inside ? x[at] : fill; \
        } \
    }
REMAP(8, u8)
REMAP(16, u16)
REMAP(32, u32)
REMAP(64, u64)

// The adjoint: dx[sum_d m_d(o_d(i)) dx_strides[d]] += dy[i] where every entry is >= 0 (atomic adds: a
// reflect or replicate border reads an input position several times); dx zeroed and dense, `lx` its
// dense view.
#define REMAP_BACKWARD(s, T) \
    extern "C" __global__ void remap_backward_##s(const T* dy, Strided lo, const i64* maps, T* dx, Strided lx, \
                                                  i64 n) { \
        i64 total = 0; \
        for (int d = 0; d < lo.rank; ++d) total += lo.shape[d]; \
        GRID_STRIDE_LOOP(i, n) { \
            i64 rest = i, base = total, at = 0; \
            bool inside = true; \
            for (int d = lo.rank - 1; d >= 0; --d) { \
                base -= lo.shape[d]; \
                const i64 src = maps[base + rest % lo.shape[d]]; \
                rest /= lo.shape[d]; \
                inside = inside && src >= 0; \
                at += src * lx.strides[d]; \
            } \
            if (inside) atomicAdd(dx + at, dy[i]); \
        } \
    }
REMAP_BACKWARD(f32, float)
REMAP_BACKWARD(f64, double)
