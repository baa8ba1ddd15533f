#!/bin/sh
# Runs the kernels of cuda/ on the CPU, one thread per CUDA thread, against
# PyTorch in float64 (see README.md). Needs g++ (C++20), python3 with numpy and torch.
set -e
here=$(cd "$(dirname "$0")" && pwd)
build=${TMPDIR:-/tmp}/seg-cuda-emulator
mkdir -p "$build"
python3 "$here/gen.py" "$here/.." "$build/kernels.inc"
g++ -std=c++20 -O1 -shared -fPIC -I"$build" -I"$here" -o "$build/libemu.so" "$here/driver.cpp" -lpthread
for t in ${SEG_EMULATOR_TESTS:-norm conv scan attn pool}; do
    SEG_EMULATOR_LIB="$build/libemu.so" python3 "$here/test_$t.py"
done
