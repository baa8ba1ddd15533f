"""Writes the kernels of cuda/ as one C++ translation unit for the emulator: common.cuh, then the
sources, with shared memory turned into what the emulator's threads share (static arrays; the dynamic
shared memory is the emulator's `dyn_shared`) and the inline-PTX conversions into the emulator's
functions (the tensor-core mma goes through the MMA_16816 hook that shim.h defines). Usage: gen.py CUDA_DIR OUT_FILE"""
import sys

cuda, out = sys.argv[1], sys.argv[2]
src = open(f'{cuda}/common.cuh').read()
for f in ['conv.cu', 'selective_scan.cu', 'window_attention.cu', 'norm.cu', 'pool.cu', 'interpolate.cu', 'pad.cu']:
    src += f'\n#line 1 "{f}"\n' + open(f'{cuda}/{f}').read()
for name in ['attn_shared', 'scan_shared']:
    src = src.replace(f'extern __shared__ float {name}[];', f'float* {name} = dyn_shared;')
src = src.replace('__shared__', 'static')
# The 16-bit conversions by inline PTX become the emulator's functions.
for asm, call in [
    ('asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));', 'f = emu_f16_to_f32(x.bits);'),
    ('asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));', 'h.bits = emu_f32_to_f16(x);'),
    ('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));', 'h.bits = emu_f32_to_bf16(x);'),
]:
    assert src.count(asm) == 1, asm
    src = src.replace(asm, call)
open(out, 'w').write(src)
