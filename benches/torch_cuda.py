#!/usr/bin/env python3
"""PyTorch/MONAI timings on a GPU for the suite cases `seg-bench --device cuda` prints: the cases of
../shared/bench/torch_baseline.py and torch_extra.py (the host-only metric left out), named with a
`_cuda` suffix, float32 with TF32 off (cuDNN and cuBLAS in full f32, as seg computes; cuDNN may pick its
fastest algorithm, `cudnn.benchmark`), each run timed
from a synchronised device to a synchronised device (median of 5 after 2 warm-ups, 3 over a second).

Also, as seg-bench does, `unet_train_step_64_uncached_cuda` and `swin_unetr_train_step_64_uncached_cuda`:
the steps with PyTorch's caching allocator emptied after each (`torch.cuda.empty_cache()`, every freed
block handed back to the driver), and each case's peak allocated memory on stderr.

    python3 benches/torch_cuda.py [--only SUBSTRING] [--device cuda|cuda:N]
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def measure(body, device):
    times = []
    for i in range(7):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        body()
        torch.cuda.synchronize(device)
        ms = (time.perf_counter() - start) * 1e3
        if i >= 2:
            times.append(ms)
        if i == 2 and ms > 1000:
            break
    times.sort()
    return times[len(times) // 2]


def conv3d_cases(dev):
    for c, s in [(32, 64), (64, 32), (128, 16), (16, 96)]:
        x = torch.randn(1, c, s, s, s, device=dev)
        w = torch.randn(c, c, 3, 3, 3, device=dev) * 0.05
        b = torch.randn(c, device=dev)
        fl = 2 * c * c * 27 * s**3 / 1e9
        yield f"conv3d_fwd_c{c}_s{s}", fl, (lambda x=x, w=w, b=b: F.conv3d(x, w, b, padding=1))
        xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
        gy = torch.randn(1, c, s, s, s, device=dev)

        def fb(xr=xr, wr=wr, br=br, gy=gy):
            torch.autograd.grad(F.conv3d(xr, wr, br, padding=1), (xr, wr, br), gy)

        yield f"conv3d_fwdbwd_c{c}_s{s}", 3 * fl, fb


def conv_transpose_case(dev):
    x = torch.randn(1, 64, 16, 16, 16, device=dev, requires_grad=True)
    w = (torch.randn(64, 32, 2, 2, 2, device=dev) * 0.05).requires_grad_()
    gy = torch.randn(1, 32, 32, 32, 32, device=dev)

    def body():
        torch.autograd.grad(F.conv_transpose3d(x, w, stride=2), (x, w), gy)

    return "conv_transpose3d_fwdbwd_c64_s16", 3 * 2 * 64 * 32 * 8 * 16**3 / 1e9, body


def matmul_case(n, dev):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    return f"matmul_f32_{n}", 2 * n**3 / 1e9, lambda: torch.matmul(a, b)


def instance_norm_cases(c, s, dev):
    x = torch.randn(1, c, s, s, s, device=dev)
    w, b = torch.randn(c, device=dev), torch.randn(c, device=dev)
    yield f"instance_norm_fwd_c{c}_s{s}", None, lambda: F.instance_norm(x, weight=w, bias=b)
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    gy = torch.randn(1, c, s, s, s, device=dev)

    def body():
        torch.autograd.grad(F.instance_norm(xr, weight=wr, bias=br), (xr, wr, br), gy)

    yield f"instance_norm_fwdbwd_c{c}_s{s}", None, body


def swin_cases(dev):
    from monai.networks.nets.swin_unetr import SwinTransformerBlock, WindowAttention, compute_mask

    c, heads, ws = 48, 3, (7, 7, 7)
    mask = compute_mask([35, 35, 35], ws, (3, 3, 3), dev)
    att = WindowAttention(c, heads, ws, qkv_bias=True).to(dev)
    xw = torch.randn(125, 343, c, device=dev, requires_grad=True)
    gw = torch.randn(125, 343, c, device=dev)
    n_tok = 125 * 343
    fl = (2 * n_tok * c * 3 * c + 2 * 2 * n_tok * 343 * c + 2 * n_tok * c * c) / 1e9
    yield "window_attention_fwdbwd_c48_w7_n125", 3 * fl, (
        lambda: torch.autograd.grad(att(xw, mask), [xw, *att.parameters()], gw)
    )
    blk = SwinTransformerBlock(c, heads, ws, (3, 3, 3), mlp_ratio=4.0, qkv_bias=True).to(dev)
    xb = torch.randn(1, 32, 32, 32, c, device=dev, requires_grad=True)
    gb = torch.randn(1, 32, 32, 32, c, device=dev)
    yield "swin_block_fwdbwd_c48_s32", None, (lambda: torch.autograd.grad(blk(xb, mask), [xb, *blk.parameters()], gb))


def selective_scan_cases(dev):
    """mamba_ssm's CUDA `selective_scan_fn` where it is installed (the suite's counterpart on a GPU)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        print("selective_scan: mamba_ssm is not installed, its cases are left out", file=sys.stderr)
        return
    for length in [1024, 8192, 65536]:
        d, n = 384, 16
        leaf = lambda t: t.to(dev).requires_grad_()
        u, delta = leaf(torch.randn(1, d, length)), leaf(torch.randn(1, d, length) * 0.5)
        a = leaf(-torch.exp(torch.randn(d, n) * 0.5))
        b, c = leaf(torch.randn(1, n, length)), leaf(torch.randn(1, n, length))
        skip, z, bias = leaf(torch.randn(d)), leaf(torch.randn(1, d, length)), leaf(torch.randn(d) * 0.1)
        gy = torch.randn(1, d, length, device=dev)
        inputs = (u, delta, a, b, c, skip, z, bias)

        def body(inputs=inputs, gy=gy):
            u, delta, a, b, c, skip, z, bias = inputs
            y = selective_scan_fn(u, delta, a, b, c, skip, z, bias, delta_softplus=True)
            torch.autograd.grad(y, inputs, gy)

        yield f"selective_scan_fwdbwd_d{d}_l{length}_n{n}", None, body


def loss_cases(dev):
    import monai.losses as L

    for name, c, make in [
        ("dice_ce", 4, lambda: L.DiceCELoss(softmax=True, to_onehot_y=True)),
        ("dice_focal", 4, lambda: L.DiceFocalLoss(softmax=True, to_onehot_y=True)),
        ("soft_dice_cldice", 2, lambda: L.SoftDiceclDiceLoss(softmax=True, to_onehot_y=True)),
    ]:
        x = torch.randn(2, c, 64, 64, 64, device=dev, requires_grad=True)
        labels = torch.randint(0, c, (2, 1, 64, 64, 64), device=dev).float()
        loss = make()
        yield f"{name}_fwdbwd_c{c}_s64", None, (lambda x=x, labels=labels, loss=loss: torch.autograd.grad(loss(x, labels), x))


def model_cases(dev):
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet, SwinUNETR

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    xin = torch.randn(1, 1, 64, 64, 64, device=dev)
    lab = torch.randint(0, 3, (1, 1, 64, 64, 64), device=dev)
    for name, make, opt in [
        ("unet_train_step_64", lambda: BasicUNet(3, 1, 3, features=(16, 16, 32, 64, 128, 16)), "sgd"),
        ("swin_unetr_train_step_64", lambda: SwinUNETR(in_channels=1, out_channels=3, feature_size=24), "adamw"),
    ]:
        net = make().to(dev)
        if opt == "sgd":
            o = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        else:
            o = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step(net=net, o=o):
            o.zero_grad(set_to_none=True)
            loss_fn(net(xin), lab).backward()
            o.step()

        def uncached(step=step):
            step()
            torch.cuda.synchronize(dev)
            torch.cuda.empty_cache()

        def infer(net=net):
            with torch.no_grad():
                net(xin)

        yield name, None, step
        yield name.replace("train_step", "infer"), None, infer
        yield f"{name}_uncached", None, uncached


def cases(dev):
    yield from conv3d_cases(dev)
    yield conv_transpose_case(dev)
    yield matmul_case(1024, dev)
    yield matmul_case(2048, dev)
    yield from instance_norm_cases(32, 64, dev)
    yield from selective_scan_cases(dev)
    yield from swin_cases(dev)
    yield from loss_cases(dev)
    yield from model_cases(dev)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_cuda.py: no CUDA device is available to PyTorch")
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    for name, gflop, body in cases(dev):
        name = f"{name}_cuda"
        if args.only not in name:
            continue
        torch.cuda.reset_peak_memory_stats(dev)
        ms = measure(body, dev)
        print(json.dumps({"name": name, "ms": round(ms, 3), "gflop": gflop}), flush=True)
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        reserved = torch.cuda.memory_reserved(dev) / 2**20
        print(json.dumps({"name": name, "peak_tensor_mib": round(peak, 1), "pool_reserved_mib": round(reserved, 1)}), file=sys.stderr)


if __name__ == "__main__":
    main()
