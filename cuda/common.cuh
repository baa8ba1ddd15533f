// Put in front of every source in this folder (see seg-kernels/src/cuda/sources.rs): the types and
// helpers all kernels share. NVRTC has no standard headers, so only built-ins are used here.

typedef unsigned int u32;
typedef long long i64;

// The global index of this thread in a 1D grid-stride loop.
#define GRID_STRIDE_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)
