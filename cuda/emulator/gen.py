"""Writes the kernels of cuda/ as one C++ translation unit for the emulator: common.cuh, then the
sources, with shared memory turned into what the emulator's threads share (static arrays; the dynamic
shared memory is the emulator's `dyn_shared`). Usage: gen.py CUDA_DIR OUT_FILE"""
import sys

cuda, out = sys.argv[1], sys.argv[2]
src = open(f'{cuda}/common.cuh').read()
for f in ['conv.cu', 'selective_scan.cu', 'window_attention.cu']:
    src += f'\n#line 1 "{f}"\n' + open(f'{cuda}/{f}').read()
for name in ['attn_shared', 'scan_shared']:
    src = src.replace(f'extern __shared__ float {name}[];', f'float* {name} = dyn_shared;')
src = src.replace('__shared__', 'static')
open(out, 'w').write(src)
