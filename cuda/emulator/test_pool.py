"""pool.cu, interpolate.cu and pad.cu (f32 and f64) on the emulator against PyTorch in float64: max
pooling (values, indices, gradient), average pooling (every divisor rule, ceil mode), adaptive
average pooling, nearest / (bi, tri)linear resampling by size and by scale factor with and without
align_corners, and the reflect / replicate / circular pads, each forward and backward."""
import ctypes, os, struct, sys, math
import numpy as np, torch
import torch.nn.functional as F

lib = ctypes.CDLL(os.environ['SEG_EMULATOR_LIB'])
P = lambda a: a.ctypes.data_as(ctypes.c_void_p)
TYPES = [('f32', np.float32, 1e-5), ('f64', np.float64, 1e-12)]


def rel(a, b):
    return np.linalg.norm(np.nan_to_num(a) - np.nan_to_num(b)) / max(np.linalg.norm(np.nan_to_num(b)), 1e-30)


def three(v, fill):
    return [fill] * (3 - len(v)) + list(v)


def report(ok, what, errs):
    print('OK ' if ok else 'BAD', what, ['%.1e' % e for e in errs])
    sys.stdout.flush()
    return ok


def run_pool(kind, x, out_shape, params, dy):
    """The emulator's (y, argmax, dx) for pool params `params` (21 i64)."""
    name, dt = {np.float32: 'f32', np.float64: 'f64'}[x.dtype.type], x.dtype
    raw = np.array(params, np.int64)
    y = np.full(out_shape, np.nan, dt)
    dx = np.full(x.shape, np.nan, dt)
    am = np.full(out_shape, -7, np.int64)
    if kind == 'max':
        getattr(lib, 'max_pool_' + name)(P(raw), P(x), P(y), P(am), P(dy), P(dx))
    else:
        getattr(lib, 'avg_pool_' + name)(P(raw), P(x), P(y), P(dy), P(dx))
    return y, am, dx


def output_size(inp, k, s, p, d, ceil):
    num = inp + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = num // s + 1
    if ceil and (out - 1) * s >= inp + p:
        out -= 1
    return out


def pool_case(kind, shape, k, s, p, d=(1,), ceil=False, include=True, div=None, ties=False, seed=0):
    rank = len(shape) - 2
    k, s, p, d = [list(v) * (rank if len(v) == 1 else 1) for v in (k, s, p, d)]
    inp = three(shape[2:], 1)
    k3, s3, p3, d3 = three(k, 1), three(s, 1), three(p, 0), three(d, 1)
    out = [output_size(inp[a], k3[a], s3[a], p3[a], d3[a], ceil) for a in range(3)]
    planes = shape[0] * shape[1]
    divisor = div if div else (0 if include else -1)
    params = [planes, *inp, *out, *k3, *s3, *p3, *d3, divisor, 0]
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape)
    if ties:
        x0 = np.round(2 * x0)
    out_shape = (*shape[:2], *out[3 - rank:])
    dy0 = rng.standard_normal(out_shape)
    ok = True
    for name, dt, tol in TYPES:
        x, dy = x0.astype(dt), dy0.astype(dt)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        if kind == 'max':
            f = [F.max_pool1d, F.max_pool2d, F.max_pool3d][rank - 1]
            yt, it = f(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
        else:
            f = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][rank - 1]
            extra = {} if rank == 1 else {'divisor_override': div}
            yt = f(xt, k, s, p, ceil_mode=ceil, count_include_pad=include, **extra)
        yt.backward(torch.tensor(dy.astype(np.float64)))
        y, am, dx = run_pool(kind, x, out_shape, params, dy)
        errs = [rel(y, yt.detach().numpy()), rel(dx, xt.grad.numpy())]
        good = all(e < tol for e in errs)
        if kind == 'max':
            good = good and np.array_equal(am.reshape(-1), it.numpy().reshape(-1))
        ok = report(good, f'{kind}_pool {name} {shape} k{k} s{s} p{p} d{d} ceil={ceil} include={include} div={div} ties={ties}', errs) and ok
    return ok


def adaptive_case(shape, size, seed=0):
    rank = len(shape) - 2
    inp, out = three(shape[2:], 1), three(size, 1)
    params = [shape[0] * shape[1], *inp, *out, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, -1, 1]
    rng = np.random.default_rng(seed)
    x0, dy0 = rng.standard_normal(shape), rng.standard_normal((*shape[:2], *size))
    ok = True
    for name, dt, tol in TYPES:
        x, dy = x0.astype(dt), dy0.astype(dt)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        yt = [F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d][rank - 1](xt, size)
        yt.backward(torch.tensor(dy.astype(np.float64)))
        y, _, dx = run_pool('avg', x, dy.shape, params, dy)
        errs = [rel(y, yt.detach().numpy()), rel(dx, xt.grad.numpy())]
        ok = report(all(e < tol for e in errs), f'adaptive_avg_pool {name} {shape} -> {size}', errs) and ok
    return ok


def interp_case(shape, mode, size=None, scale=None, align=None, recompute=None, seed=0):
    rank = len(shape) - 2
    if scale is not None:
        scale = list(scale) * (rank if len(scale) == 1 else 1)
        out = [math.floor(n * s) for n, s in zip(shape[2:], scale)]
        used = None if recompute else scale
    else:
        out = list(size) * (rank if len(size) == 1 else 1)
        used = None
    rng = np.random.default_rng(seed)
    x0, dy0 = rng.standard_normal(shape), rng.standard_normal((*shape[:2], *out))
    ok = True
    for name, dt, tol in TYPES:
        T = np.float32 if name == 'f32' else np.float64

        def ratio(a):
            i, o = shape[2 + a], out[a]
            sc = used[a] if used else None
            if mode == 'nearest':
                return float(np.float32(1.0 / sc)) if sc else float(np.float32(i) / np.float32(o))
            if align:
                return float(T(i - 1) / T(o - 1)) if o > 1 else 0.0
            return float(T(1.0 / sc)) if sc else float(T(i) / T(o))

        ratios = three([ratio(a) for a in range(rank)], 1.0)
        raw = struct.pack('<7q3d2q', shape[0] * shape[1], *three(shape[2:], 1), *three(out, 1), *ratios,
                          int(mode == 'nearest'), int(bool(align)))
        raw = np.frombuffer(raw, np.uint8).copy()
        x, dy = x0.astype(dt), dy0.astype(dt)
        y = np.full(dy.shape, np.nan, dt)
        dx = np.zeros(x.shape, dt)
        getattr(lib, 'interpolate_' + name)(P(raw), P(x), P(y), P(dy), P(dx))
        # PyTorch on the same rounded values, in the kernel's precision for the source positions.
        xt = torch.tensor(x, requires_grad=True)
        kw = {'align_corners': align} if mode != 'nearest' else {}
        if scale is not None:
            kw.update(scale_factor=scale, recompute_scale_factor=recompute)
        else:
            kw.update(size=out)
        yt = F.interpolate(xt, mode=mode, **kw)
        yt.backward(torch.tensor(dy))
        errs = [rel(y, yt.detach().numpy()), rel(dx, xt.grad.numpy())]
        ok = report(all(e < tol * 10 for e in errs), f'interpolate {name} {shape} {mode} size={size} scale={scale} align={align} recompute={recompute}', errs) and ok
    return ok


def strided(shape, strides, offset=0):
    r = len(shape)
    return np.frombuffer(struct.pack('<8q8qqii', *(list(shape) + [1] * (8 - r)), *(list(strides) + [0] * (8 - r)),
                                     offset, r, 0), np.uint8).copy()


def pad_case(shape, pads, mode, seed=0):
    n = len(shape)
    maps = [list(range(s)) for s in shape]
    for j in range(len(pads) // 2):
        d = n - 1 - j
        size, before, after = shape[d], pads[2 * j], pads[2 * j + 1]
        m = []
        for o in range(size + before + after):
            i = o - before
            m.append({'reflect': (size - 1) - abs((size - 1) - abs(i)), 'replicate': min(max(i, 0), size - 1),
                      'circular': i % size}[mode])
        maps[d] = m
    out = [len(m) for m in maps]
    flat = np.array([v for m in maps for v in m], np.int64)
    rng = np.random.default_rng(seed)
    x0, dy0 = rng.standard_normal(shape), rng.standard_normal(out)
    ok = True
    for name, dt, tol in TYPES:
        x, dy = x0.astype(dt), dy0.astype(dt)
        y, dx = np.full(out, np.nan, dt), np.zeros(shape, dt)
        dense = lambda s: [int(np.prod(s[a + 1:])) for a in range(len(s))]
        getattr(lib, 'remap_' + name)(P(x), P(strided(shape, dense(shape))), P(strided(out, dense(out))), P(flat),
                                      P(dy), P(y), P(dx), P(strided(shape, dense(shape))), ctypes.c_longlong(int(np.prod(out))))
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        yt = F.pad(xt, pads, mode=mode)
        yt.backward(torch.tensor(dy.astype(np.float64)))
        errs = [rel(y, yt.detach().numpy()), rel(dx, xt.grad.numpy())]
        ok = report(all(e < tol for e in errs), f'pad {name} {shape} {pads} {mode}', errs) and ok
    return ok


res = [
    pool_case('max', [2, 3, 6, 7, 5], [2], [2], [0]),
    pool_case('max', [1, 2, 7, 6, 9], [3, 2, 3], [2, 1, 2], [1], ceil=True, ties=True, seed=1),
    pool_case('max', [1, 2, 9, 8, 7], [3, 2, 2], [2, 1, 3], [1], [2, 1, 3], ceil=True, seed=2),
    pool_case('max', [2, 3, 9, 7], [3], [1], [1], ties=True, seed=3),
    pool_case('max', [1, 4, 10, 11], [3, 2], [2, 3], [1, 0], [2, 3], ceil=True, seed=4),
    pool_case('max', [2, 2, 13], [4], [3], [2], [2], ceil=True, seed=5),
    pool_case('avg', [2, 3, 6, 7, 5], [2], [2], [0], seed=6),
    pool_case('avg', [1, 2, 7, 6, 9], [3, 2, 3], [2, 1, 2], [1], ceil=True, seed=7),
    pool_case('avg', [1, 2, 7, 6, 9], [3, 2, 3], [2, 1, 2], [1], ceil=True, include=False, seed=8),
    pool_case('avg', [2, 3, 9, 7], [3], [2], [1], div=5, seed=9),
    pool_case('avg', [1, 4, 10, 11], [3, 2], [2, 3], [1, 0], ceil=True, include=False, seed=10),
    pool_case('avg', [2, 2, 6], [3], [2], [1], ceil=True, seed=11),
    adaptive_case([2, 3, 7, 6, 9], [3, 2, 4], seed=12),
    adaptive_case([1, 2, 3, 4, 2], [5, 6, 3], seed=13),
    adaptive_case([2, 3, 9, 7], [1, 1], seed=14),
    adaptive_case([1, 4, 10, 11], [4, 3], seed=15),
    interp_case([2, 3, 4, 5, 3], 'nearest', scale=[2.0], seed=16),
    interp_case([1, 2, 5, 4, 6], 'nearest', size=[7, 3, 6], seed=17),
    interp_case([2, 2, 6, 9], 'nearest', scale=[1.5, 0.7], seed=18),
    interp_case([2, 3, 7], 'linear', scale=[1.7], seed=19),
    interp_case([2, 2, 5, 4], 'bilinear', size=[8, 9], align=False, seed=20),
    interp_case([1, 3, 4, 6], 'bilinear', scale=[2.0], align=True, seed=21),
    interp_case([1, 2, 3, 4, 5], 'trilinear', scale=[2.0], align=False, seed=22),
    interp_case([2, 2, 5, 4, 6], 'trilinear', scale=[2.0, 1.5, 0.6], align=False, seed=23),
    interp_case([1, 2, 4, 5, 3], 'trilinear', size=[7, 5, 1], align=True, seed=24),
    interp_case([1, 2, 3, 5, 4], 'trilinear', scale=[1.7], align=False, recompute=True, seed=25),
    pad_case([2, 3, 5, 4, 6], [1, 2, 3, 0, 2, 4], 'reflect', seed=26),
    pad_case([2, 3, 5, 4, 6], [1, 2, 3, 0, 2, 4], 'replicate', seed=27),
    pad_case([2, 3, 5, 4, 6], [1, 2, 3, 0, 2, 4], 'circular', seed=28),
    pad_case([2, 3, 7], [3, 2], 'reflect', seed=29),
]
print(sum(res), 'of', len(res), 'pool / interpolate / pad cases pass')
sys.exit(0 if all(res) else 1)
