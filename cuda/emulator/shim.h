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
#define __align__(n) __attribute__((aligned(n)))
#define asm(...)
struct Warp {
    std::barrier<> bar{32};
    unsigned long long vals[32];
    unsigned mma_a[32][4], mma_b[32][2];
};
thread_local Warp* my_warp;
std::barrier<>* block_bar;
inline void __syncthreads() { block_bar->arrive_and_wait(); }
inline void __syncwarp() { my_warp->bar.arrive_and_wait(); }
template <class T> T shfl_from(T v, int src) {
    static_assert(sizeof(T) <= 8);
    int lane = threadIdx.x % 32;
    memcpy(&my_warp->vals[lane], &v, sizeof(T)); my_warp->bar.arrive_and_wait();
    T r; memcpy(&r, &my_warp->vals[src], sizeof(T)); my_warp->bar.arrive_and_wait(); return r;
}
template <class T> T __shfl_up_sync(unsigned, T v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l >= off ? l - off : l); }
template <class T> T __shfl_down_sync(unsigned, T v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l + off < 32 ? l + off : l); }
template <class T> T __shfl_xor_sync(unsigned, T v, int off) { int l = threadIdx.x % 32; return shfl_from(v, l ^ off); }
template <class T> T __shfl_sync(unsigned, T v, int src) { return shfl_from(v, src); }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
std::mutex atomic_mutex;
inline float atomicAdd(float* p, float v) { std::lock_guard<std::mutex> g(atomic_mutex); float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { std::lock_guard<std::mutex> g(atomic_mutex); double o = *p; *p = o + v; return o; }
inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
// Correctly rounded arithmetic (g++ for x86-64 without -mfma contracts nothing).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
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

// The 16-bit conversions that the kernels do by inline PTX (gen.py substitutes these calls).
inline float emu_f16_to_f32(unsigned short b) { _Float16 h; memcpy(&h, &b, 2); return (float)h; }
inline unsigned short emu_f32_to_f16(float f) { _Float16 h = (_Float16)f; unsigned short b; memcpy(&b, &h, 2); return b; }
inline unsigned short emu_f32_to_bf16(float f) {
    unsigned u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: the warp's fragments gathered into A (16 x 16) and
// B (16 x 8) by the PTX ISA's layout, each lane computing its four elements of D.
template <class T>
void emu_mma(float d[4], const unsigned a[4], const unsigned b[2]) {
    const int lane = threadIdx.x % 32;
    for (int i = 0; i < 4; ++i) my_warp->mma_a[lane][i] = a[i];
    for (int i = 0; i < 2; ++i) my_warp->mma_b[lane][i] = b[i];
    my_warp->bar.arrive_and_wait();
    float A[16][16], B[16][8];
    auto half = [](unsigned reg, int i) { T v; v.bits = (unsigned short)((i & 1) ? reg >> 16 : reg & 0xffffu); return to_f32(v); };
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 8; ++i) {
            const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8, col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = half(my_warp->mma_a[l][i / 2], i);
        }
        for (int i = 0; i < 4; ++i) B[t * 2 + (i & 1) + (i >= 2 ? 8 : 0)][g] = half(my_warp->mma_b[l][i / 2], i);
    }
    my_warp->bar.arrive_and_wait();
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
        const int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
        float s = d[i];
        for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
        d[i] = s;
    }
}
#define MMA_16816(d, a, b, T) emu_mma<T>(d, a, b)
