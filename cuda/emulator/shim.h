// Runs CUDA kernels on the CPU: one std::thread per CUDA thread, blocks one after another.
#include <barrier>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>
#include <functional>
#include <memory>
using std::min; using std::max;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define asm(...)
struct Warp { std::barrier<> bar{32}; float vals[32]; };
thread_local Warp* my_warp;
std::barrier<>* block_bar;
inline void __syncthreads() { block_bar->arrive_and_wait(); }
inline void __syncwarp() { my_warp->bar.arrive_and_wait(); }
inline float shfl_from(float v, int src) {
    int lane = threadIdx.x % 32;
    my_warp->vals[lane] = v; my_warp->bar.arrive_and_wait();
    float r = my_warp->vals[src]; my_warp->bar.arrive_and_wait(); return r;
}
inline float __shfl_up_sync(unsigned, float v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l >= off ? l - off : l); }
inline float __shfl_down_sync(unsigned, float v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l + off < 32 ? l + off : l); }
inline float __shfl_xor_sync(unsigned, float v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l ^ off); }
inline float __shfl_sync(unsigned, float v, int src) { return shfl_from(v, src); }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
std::mutex atomic_mutex;
inline float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(atomic_mutex); float o = *p; *p = o + v; return o; }
alignas(16) float dyn_shared[1 << 16];
template <class F>
void launch(dim3 grid, dim3 block, F f) {
    gridDim = grid; blockDim = block;
    int n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz) for (unsigned by = 0; by < grid.y; ++by) for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(n); block_bar = &bar;
        std::vector<std::unique_ptr<Warp>> warps; for (int w = 0; w < (n + 31) / 32; ++w) warps.emplace_back(new Warp());
        for (float& v : dyn_shared) v = NAN;  // poison shared memory
        std::vector<std::thread> ts;
        for (int t = 0; t < n; ++t) ts.emplace_back([&, t] { threadIdx = dim3{(unsigned)t, 0, 0}; blockIdx = dim3{bx, by, bz}; my_warp = warps[t / 32].get(); f(); });
        for (auto& t : ts) t.join();
    }
}
