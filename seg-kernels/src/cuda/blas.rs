//! Matrix products through cuBLAS.

use cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::CudaSlice;

use super::{CudaError, CudaFloat, Gpu};

/// `C[i] = A[i] B[i]` for `batch` products of dense row-major matrices, `A[i]` (m x k) at
/// `i * a_stride` and `B[i]` (k x n) at `i * b_stride` (stride 0: one matrix broadcast over the
/// batch); `C` dense (batch, m, n). cuBLAS is column-major, so it computes `C^T = B^T A^T`, which is
/// the same memory. cuBLAS's default math mode: no TF32.
pub fn matmul<T: CudaFloat>(
    gpu: &Gpu,
    (a, a_stride): (&CudaSlice<T>, usize),
    (b, b_stride): (&CudaSlice<T>, usize),
    batch: usize,
    (m, k, n): (usize, usize, usize),
) -> Result<CudaSlice<T>, CudaError>
where
    CudaBlas: Gemm<T>,
{
    if batch * m * n == 0 || k == 0 {
        return gpu.zeros::<T>(batch * m * n);
    }
    let int = |x: usize| {
        i32::try_from(x).map_err(|_| CudaError::Unsupported(format!("matmul: a dimension of {x} (cuBLAS takes i32)")))
    };
    let mut c = gpu.alloc::<T>(batch * m * n)?;
    let cfg = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: CUBLAS_OP_N,
            transb: CUBLAS_OP_N,
            m: int(n)?,
            n: int(m)?,
            k: int(k)?,
            alpha: T::of(1.0),
            lda: int(n)?,
            ldb: int(k)?,
            beta: T::of(0.0),
            ldc: int(n)?,
        },
        batch_size: int(batch)?,
        stride_a: b_stride as i64,
        stride_b: a_stride as i64,
        stride_c: (m * n) as i64,
    };
    // cuBLAS runs on the thread's current context, which a fresh thread does not have yet.
    gpu.context()
        .bind_to_thread()
        .map_err(|e| CudaError::call("cuCtxSetCurrent", e))?;
    // SAFETY: `b` holds (batch - 1) * b_stride + k * n elements and `a` likewise for m * k (the
    // caller's dense buffers), `c` holds batch * m * n.
    unsafe { gpu.blas()?.gemm_strided_batched(cfg, b, a, &mut c) }
        .map_err(|e| CudaError::call("cublasGemmStridedBatched", e))?;
    Ok(c)
}
