# The fused norm kernels (cuda/norm.cu) against PyTorch in float64: instance, group, batch (training
# and with given running statistics) and layer norm, with and without affine, forward and backward.
import ctypes, os, sys, numpy as np, torch
import torch.nn.functional as F
lib = ctypes.CDLL(os.environ['SEG_EMULATOR_LIB'])
def P(a): return None if a is None else a.ctypes.data_as(ctypes.c_void_p)
def rel(a, b): return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)

def case(name, shape, affine_shape, stats, affine, torch_norm, affine_on, running=None):
    rng = np.random.default_rng(len(name) + sum(shape))
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(affine_shape).astype(np.float32) if affine_on else None
    b = rng.standard_normal(affine_shape).astype(np.float32) if affine_on else None
    T = lambda a: None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True)
    xt, wt, bt = T(x), T(w), T(b)
    yt = torch_norm(xt, wt, bt)
    (yt * torch.tensor(dy, dtype=torch.float64)).sum().backward()
    groups = stats[0]
    mean, var = np.zeros(groups), np.zeros(groups)
    if running is not None:
        mean[:], var[:] = running
    n = x.size
    y, dx = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    dw = np.zeros(affine_shape, np.float32) if affine_on else None
    db = np.zeros(affine_shape, np.float32) if affine_on else None
    sg, sgx = np.zeros(groups), np.zeros(groups)
    R = lambda r: np.array(r, np.int64)
    lib.norm_all(P(R(stats)), P(R(affine)), P(x), P(w), P(b), P(dy), ctypes.c_double(1e-5), int(running is not None),
                 P(mean), P(var), P(y), P(sg), P(sgx), P(dx), P(dw), P(db), ctypes.c_longlong(n))
    errs = {'y': rel(y, yt.detach().numpy()), 'dx': rel(dx, xt.grad.numpy())}
    if affine_on:
        errs['dw'], errs['db'] = rel(dw, wt.grad.numpy()), rel(db, bt.grad.numpy())
    ok = all(e < 1e-5 for e in errs.values())
    print('OK ' if ok else 'BAD', name, shape, {k: '%.1e' % v for k, v in errs.items()})
    sys.stdout.flush()
    return ok

ok = True
N, C, S = 2, 6, 35
shape = (N, C, 5, 7)
ch = [C, S, N, C * S]
for affine_on in (True, False):
    ok &= case('instance_norm', shape, (C,), [N * C, S, 1, 0], ch, lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5), affine_on)
    ok &= case('group_norm', shape, (C,), [N * 3, 2 * S, 1, 0], ch, lambda x, w, b: F.group_norm(x, 3, w, b, eps=1e-5), affine_on)
    ok &= case('batch_norm', shape, (C,), ch, ch, lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-5), affine_on)
    ok &= case('layer_norm', (3, 4, 10), (4, 10), [3, 40, 1, 0], [40, 1, 3, 40], lambda x, w, b: F.layer_norm(x, (4, 10), w, b, eps=1e-5), affine_on)
rm, rv = np.linspace(-1, 1, C), np.linspace(0.5, 2, C)
ok &= case('batch_norm eval', shape, (C,), ch, ch,
           lambda x, w, b: F.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b, training=False, eps=1e-5), True, (rm, rv))
# A plane larger than one pass of the block, so the grid-stride loops wrap.
ok &= case('instance_norm large', (1, 2, 600), (2,), [2, 600, 1, 0], [2, 600, 1, 1200], lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5), True)
sys.exit(0 if ok else 1)
