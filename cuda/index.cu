// Indexing along one axis by an i64 index tensor (torch.gather / scatter_add). `lx` views the data
// tensor over the index's shape with the stride of axis `dim` set to 0, so that
// offset(lx, i) + j * stride_dim is element i's position with its coordinate on `dim` replaced by j.
// An index outside 0..size sets *bad (the launcher reads it back and reports the error) and is
// skipped (gather writes a zero there).

// out[i] = x[offset(lx, i) + index[offset(li, i)] * stride_dim]
#define GATHER(s, T) \
    extern "C" __global__ void gather_##s(const T* x, Strided lx, i64 stride_dim, i64 size, const i64* index, \
                                          Strided li, T* out, u8* bad, i64 n) { \
        GRID_STRIDE_LOOP(i, n) { \
            i64 j = index[strided_offset(li, i)]; \
            if (j < 0 || j >= size) { \
                *bad = 1; \
                out[i] = T(); \
            } else { \
                out[i] = x[strided_offset(lx, i) + j * stride_dim]; \
            } \
        } \
    }
GATHER(f16, f16)
GATHER(bf16, bf16)
GATHER(f32, float)
GATHER(f64, double)
GATHER(i64, i64)
GATHER(u8, u8)

// out[offset(lo, i) + index[offset(li, i)] * stride_dim] += src[offset(ls, i)] (atomic: several i may
// meet one position); `out` is a dense copy of the target made before.
#define SCATTER_ADD(s, T) \
    extern "C" __global__ void scatter_add_##s(T* out, Strided lo, i64 stride_dim, i64 size, const i64* index, \
                                               Strided li, const T* src, Strided ls, u8* bad, i64 n) { \
        GRID_STRIDE_LOOP(i, n) { \
            i64 j = index[strided_offset(li, i)]; \
            if (j < 0 || j >= size) { \
                *bad = 1; \
            } else { \
                atomicAdd(out + strided_offset(lo, i) + j * stride_dim, src[strided_offset(ls, i)]); \
            } \
        } \
    }
SCATTER_ADD(f32, float)
SCATTER_ADD(f64, double)
