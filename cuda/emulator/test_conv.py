import ctypes, os, numpy as np, torch, math, sys
lib = ctypes.CDLL(os.environ['SEG_EMULATOR_LIB'])
P = lambda a: a.ctypes.data_as(ctypes.c_void_p)
def cdiv(a, b): return -(-a // b)
def rel(a, b): return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
def case(batch, cin, cout, groups, inp, k, st, pad, dil, seed):
    rng = np.random.default_rng(seed)
    out = [(inp[a] + 2*pad[a] - dil[a]*(k[a]-1) - 1)//st[a] + 1 for a in range(3)]
    cg, og, kvol = cin//groups, cout//groups, math.prod(k)
    x = rng.uniform(-1, 1, (batch, cin, *inp)).astype(np.float32)
    w = rng.uniform(-1, 1, (cout, cg, *k)).astype(np.float32)
    b = rng.uniform(-1, 1, cout).astype(np.float32)
    dy = rng.uniform(-1, 1, (batch, cout, *out)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True); wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv3d(xt, wt, torch.tensor(b, dtype=torch.float64), st, pad, dil, groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    in_len, out_len = math.prod(inp), math.prod(out)
    reduction = batch * out_len; cols = cg * kvol
    tiles = cdiv(og, 64) * cdiv(cols, 64) * groups
    splits = max(1, min(cdiv(512, tiles), cdiv(reduction, 256), 65535 // groups))
    g = np.array([batch, cin, cout, groups, *inp, *out, *k, *st, *pad, *dil, splits], dtype=np.int32)
    y = np.full(dy.shape, np.nan, np.float32)
    lib.conv_fwd(P(g), P(x), P(w), P(b), P(y), cdiv(out_len, 64), cdiv(og, 64), batch * groups)
    dx = np.full(x.shape, np.nan, np.float32)
    lib.conv_bwd_data(P(g), P(dy), P(w), P(dx), cdiv(in_len, 64), cdiv(cg, 64), batch * groups)
    part = np.full(splits * w.size, np.nan, np.float32); dw = np.full(w.shape, np.nan, np.float32)
    lib.conv_bwd_weight(P(g), P(x), P(dy), P(part), P(dw), ctypes.c_longlong(w.size), cdiv(og, 64), cdiv(cols, 64), groups * splits)
    errs = (rel(y, yt.detach().numpy()), rel(dx, xt.grad.numpy()), rel(dw, wt.grad.numpy()))
    ok = all(e < 1e-5 for e in errs)
    print('OK ' if ok else 'BAD', (batch, cin, cout, groups, inp, k, st, pad, dil), 'splits', splits, ['%.1e' % e for e in errs]); sys.stdout.flush()
    grids = np.array([cdiv(out_len, 64), cdiv(og, 64), batch * groups, cdiv(in_len, 64), cdiv(cg, 64), batch * groups,
                      cdiv(og, 64), cdiv(cols, 64), groups * splits], np.uint32)
    for name, dtype, tol in [('f16', torch.float16, 2e-3), ('bf16', torch.bfloat16, 1e-2)]:
        to16 = lambda a: torch.tensor(a).to(dtype).view(torch.int16).numpy().view(np.uint16).copy()
        back = lambda h: torch.from_numpy(h.view(np.int16).copy()).view(dtype).to(torch.float64)
        xh, wh, bh, dyh = map(to16, (x, w, b, dy))
        xt = back(xh).requires_grad_(); wt = back(wh).requires_grad_()
        yt = torch.nn.functional.conv3d(xt, wt, back(bh), st, pad, dil, groups)
        yt.backward(back(dyh))
        yh, dxh, dwh = (np.full_like(a, 0x7fff) for a in (dyh, xh, wh))  # NaN in f16 and bf16
        part = np.full(splits * w.size, np.nan, np.float32)
        getattr(lib, 'conv_all_' + name)(P(g), P(xh), P(wh), P(bh), P(yh), P(dyh), P(dxh), P(part), P(dwh), ctypes.c_longlong(w.size), P(grids))
        errs = [rel(back(yh).numpy(), yt.detach().numpy()), rel(back(dxh).numpy(), xt.grad.numpy()), rel(back(dwh).numpy(), wt.grad.numpy())]
        good = all(e < tol for e in errs)
        ok = ok and good
        print('  OK ' if good else '  BAD', name, 'tensor cores', ['%.1e' % e for e in errs]); sys.stdout.flush()
    return ok
cases = [
    (2, 3, 5, 1, [5, 6, 7], [3]*3, [1]*3, [1]*3, [1]*3),
    (1, 6, 4, 2, [5, 8, 9], [3, 2, 3], [2, 2, 1], [1, 0, 2], [1, 2, 1]),
    (2, 8, 8, 8, [6, 7, 6], [3]*3, [2]*3, [1]*3, [1]*3),
    (1, 4, 70, 1, [1, 9, 13], [1, 3, 3], [1, 2, 2], [0, 1, 1], [1]*3),
    (2, 5, 3, 1, [1, 1, 100], [1, 1, 5], [1]*3, [0, 0, 4], [1, 1, 3]),
    (1, 10, 66, 1, [3, 4, 5], [3]*3, [1]*3, [1]*3, [1]*3),
    (2, 2, 3, 1, [8, 8, 8], [3]*3, [1]*3, [1]*3, [1]*3),
    (1, 4, 6, 2, [8, 8, 8], [2]*3, [2]*3, [0]*3, [1]*3),
    (1, 3, 2, 1, [5, 5, 5], [1]*3, [3, 2, 1], [2, 0, 1], [1]*3),
    (1, 70, 2, 1, [2, 3, 3], [1, 2, 2], [1]*3, [0]*3, [1]*3),
]
# Random geometries (seeded): 1-D, 2-D and 3-D, groups, strides, paddings, dilations.
rng = np.random.default_rng(2026)
for _ in range(12):
    groups = int(rng.integers(1, 4))
    k = [int(v) for v in rng.integers(1, 4, 3)]
    st, pad, dil = ([int(v) for v in rng.integers(lo, hi, 3)] for lo, hi in [(1, 4), (0, 3), (1, 3)])
    inp = [dil[a] * (k[a] - 1) + 1 + int(rng.integers(0, 9)) for a in range(3)]
    for a in range(int(rng.integers(0, 3))):  # flatten leading axes: 2-D and 1-D convolutions
        inp[a], k[a], st[a], pad[a], dil[a] = 1, 1, 1, 0, 1
    cases.append((int(rng.integers(1, 3)), groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5)), groups, inp, k, st, pad, dil))
res = [case(*c, seed=i) for i, c in enumerate(cases)]
print(sum(res), 'of', len(res), 'conv cases pass')
# channel bias
y = np.random.default_rng(0).uniform(-1, 1, (3, 5, 37)).astype(np.float32); b = np.arange(5, dtype=np.float32)
ref = y + b[None, :, None]
lib.bias_add(P(y), P(b), 5, ctypes.c_longlong(37), ctypes.c_longlong(y.size))
print('channel bias', rel(y, ref))
res.append(rel(y, ref) < 1e-7)
sys.exit(0 if all(res) else 1)
