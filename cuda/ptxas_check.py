"""Assembles every kernel source of this folder for sm_80 and sm_90 without a GPU: NVRTC (from PyPI's
nvidia-cuda-nvrtc-cu12) makes the PTX, as seg does at run time, then ptxas (the one Triton ships)
assembles it and reports registers, spills and stack per kernel. NVRTC alone never runs ptxas, so this
catches what only the driver's JIT would otherwise see on a GPU.

    python3 cuda/ptxas_check.py            # prints one line per kernel with spills or stack, then a summary
"""
import ctypes, glob, os, pathlib, re, subprocess, sys, tempfile

import nvidia.cuda_nvrtc as nvrtc_pkg
import triton

HERE = pathlib.Path(__file__).parent
lib = ctypes.CDLL(os.path.join(list(nvrtc_pkg.__path__)[0], "lib", "libnvrtc.so.12"))
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def ptx(name, text, arch):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), name.encode(), 0, None, None) == 0
    opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"-default-device"]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc != 0 or log.value.strip():
        sys.exit(f"{name} {arch}: NVRTC:\n{log.value.decode()}")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    out = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, out)
    return out.value.decode()


common = (HERE / "common.cuh").read_text()
kernels = 0
for path in sorted(glob.glob(str(HERE / "*.cu"))):
    name = os.path.basename(path)
    text = f'{common}\n#line 1 "{name}"\n{pathlib.Path(path).read_text()}'
    for arch in ["sm_80", "sm_90"]:
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(ptx(name, text, arch))
        res = subprocess.run([PTXAS, f"-arch={arch}", "-v", f.name, "-o", os.devnull], capture_output=True, text=True)
        os.unlink(f.name)
        if res.returncode != 0:
            sys.exit(f"{name} {arch}: ptxas failed:\n{res.stderr}")
        current = None
        for line in res.stderr.splitlines():
            m = re.search(r"Compiling entry function '(\w+)'", line)
            if m:
                current = m.group(1)
                kernels += 1
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m and any(int(v) for v in m.groups()):
                print(f"{name} {arch} {current}: {line.strip()}")
print(f"ptxas assembled {kernels} kernel builds (sm_80 + sm_90) cleanly")
