#!/usr/bin/env python3
"""PyTorch timings for the suite cases that seg adds beyond ../shared/bench/torch_baseline.py.

Same JSON lines and the same timing rule as seg-bench (median of 5 after 2 warm-ups).
    python3 benches/torch_extra.py [--only SUBSTRING] [--threads N]
"""
import argparse
import json
import time

import torch


def measure(body):
    times = []
    for i in range(7):
        start = time.perf_counter()
        body()
        ms = (time.perf_counter() - start) * 1e3
        if i >= 2:
            times.append(ms)
        if i == 2 and ms > 1000:
            break
    times.sort()
    return times[len(times) // 2]


def matmul_case(n):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    return f"matmul_f32_{n}", 2 * n**3 / 1e9, lambda: torch.matmul(a, b)


def instance_norm_case(c, s, backward):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, s, s, s, generator=g)
    w, b, gy = torch.randn(c, generator=g), torch.randn(c, generator=g), torch.randn(1, c, s, s, s, generator=g)
    if not backward:
        return f"instance_norm_fwd_c{c}_s{s}", None, lambda: torch.nn.functional.instance_norm(x, weight=w, bias=b)
    x, w, b = (t.requires_grad_(True) for t in (x, w, b))

    def body():
        y = torch.nn.functional.instance_norm(x, weight=w, bias=b)
        torch.autograd.grad(y, (x, w, b), gy)

    return f"instance_norm_fwdbwd_c{c}_s{s}", None, body


def loss_case(name, c, s, make):
    """A MONAI loss on logits (2, c, s, s, s) against labels (2, 1, s, s, s), forward and backward."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, c, s, s, s, generator=g).requires_grad_(True)
    labels = torch.randint(0, c, (2, 1, s, s, s), generator=g).float()
    loss = make()

    def body():
        torch.autograd.grad(loss(x, labels), x)

    return f"{name}_fwdbwd_c{c}_s{s}", None, body


def loss_cases():
    import monai.losses as L
    return [
        loss_case("dice_ce", 4, 64, lambda: L.DiceCELoss(softmax=True, to_onehot_y=True)),
        loss_case("dice_focal", 4, 64, lambda: L.DiceFocalLoss(softmax=True, to_onehot_y=True)),
        loss_case("soft_dice_cldice", 2, 64, lambda: L.SoftDiceclDiceLoss(softmax=True, to_onehot_y=True)),
    ]
def hd95_pair(s):
    """One-hot (1, 2, s, s, s) masks of two wavy balls, as `wavy_ball_pair` in seg-bench."""
    z, y, x = torch.meshgrid(*[torch.arange(s, dtype=torch.float64)] * 3, indexing="ij")

    def ball(radius, waves, shift):
        r = ((z - s / 2 - shift) ** 2 + (y - s / 2) ** 2 + (x - s / 2 + shift) ** 2).sqrt()
        wave = 1 + 0.08 * torch.sin(waves * x / s) * torch.cos(waves * y / s)
        fg = (r < radius * s * wave).float()
        return torch.stack([1 - fg, fg])[None]

    return ball(0.3, 5.0, 0.03 * s), ball(0.32, 3.0, 0.0)


def hd95_case(s):
    from monai.metrics import HausdorffDistanceMetric

    pred, truth = hd95_pair(s)
    metric = HausdorffDistanceMetric(include_background=False, percentile=95)
    return f"hd95_s{s}", None, lambda: metric(pred, truth)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [matmul_case(1024), matmul_case(2048), instance_norm_case(32, 64, False), instance_norm_case(32, 64, True)]
    cases += loss_cases()
    cases.append(hd95_case(128))
    for name, gflop, body in cases:
        if args.only in name:
            print(json.dumps({"name": name, "ms": round(measure(body), 3), "gflop": gflop}), flush=True)


if __name__ == "__main__":
    main()
