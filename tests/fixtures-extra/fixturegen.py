"""Shared helpers of the fixture generators in this folder: each `generate*.py` writes conformance
cases (the fixture format of ../fixtures/FORMAT.md) computed by PyTorch in float64, stored as float32.
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(1234)


def randn(*shape):
    if len(shape) == 1 and isinstance(shape[0], tuple):
        shape = shape[0]
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


def case(name, op, params, fn, **inputs):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    y = fn(**leaves)
    gout = randn(tuple(y.shape))
    (y * gout).sum().backward()
    tensors = {f"in.{k}": v for k, v in inputs.items()}
    tensors["out.y"] = y.detach()
    tensors["gout.y"] = gout
    tensors.update({f"grad.{k}": v.grad for k, v in leaves.items()})
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    meta = {"op": op, "params": json.dumps(params), "tol": "0.0001"}
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata=meta)
