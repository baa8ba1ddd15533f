#!/usr/bin/env python3
"""Conformance cases for the optimizers: `steps` updates of one parameter by torch.optim.SGD, Adam
and AdamW from given gradients, in float32 as PyTorch trains (not float64: the point is its exact
f32 arithmetic).

    pip install torch safetensors && python3 tests/fixtures-extra/generate_optim.py

Case format (op "optimizer", forward only): `in.param`, `in.grad_0` ... `in.grad_{k-1}` (the
gradient of each step), `out.y` (the parameter after the k steps); params: `name` ("sgd", "adam",
"adamw") and the constructor arguments of the torch.optim class.
"""
import json
import os

import torch
from safetensors.torch import save_file

from fixturegen import OUT, randn, same_as_file

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def optimizer_case(name, params, shape, steps):
    kwargs = {k: v for k, v in params.items() if k != "name"}
    start = randn(shape).float()
    grads = [randn(shape).float() * 0.5 for _ in range(steps)]
    p = torch.nn.Parameter(start.clone())
    opt = OPTIMIZERS[params["name"]]([p], **kwargs)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    tensors = {"in.param": start, "out.y": p.detach().clone()}
    tensors.update({f"in.grad_{i}": g for i, g in enumerate(grads)})
    meta = {"op": "optimizer", "params": json.dumps(params), "tol": "1e-6"}
    path = os.path.join(OUT, f"{name}.safetensors")
    if not same_as_file(path, tensors, meta):
        save_file(tensors, path, metadata=meta)


optimizer_case("optim_sgd_plain", {"name": "sgd", "lr": 0.1}, (7, 3), 3)
optimizer_case("optim_sgd_nesterov_decay", {"name": "sgd", "lr": 0.01, "momentum": 0.99, "nesterov": True,
                                            "weight_decay": 3e-5}, (5, 4, 3), 4)
optimizer_case("optim_sgd_momentum_dampening", {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1},
               (11,), 3)
optimizer_case("optim_adam_default", {"name": "adam", "lr": 1e-3}, (6, 5), 5)
optimizer_case("optim_adam_l2", {"name": "adam", "lr": 3e-3, "betas": [0.8, 0.99], "eps": 1e-6,
                                 "weight_decay": 0.1}, (4, 4), 4)
optimizer_case("optim_adamw_default", {"name": "adamw", "lr": 1e-3}, (3, 2, 5), 5)
optimizer_case("optim_adamw_decay", {"name": "adamw", "lr": 2e-4, "weight_decay": 0.05}, (9,), 3)
