"""Shared helpers of the fixture generators in this folder: each `generate*.py` writes conformance
cases (the fixture format of ../fixtures/FORMAT.md) computed by PyTorch in float64, stored as float32.
"""
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

OUT = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(1234)


def randn(*shape):
    if len(shape) == 1 and isinstance(shape[0], tuple):
        shape = shape[0]
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


def case(name, op, params, fn, tol="0.0001", module=None, **inputs):
    """One fixture: `fn(**inputs)` (or `fn(module, **inputs)` with module parameters, a dict of
    state_dict names to tensors) returns the output `y`, or a dict of named outputs."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    weights = {k: v.clone().requires_grad_(True) for k, v in (module or {}).items()}
    outputs = fn(weights, **leaves) if module is not None else fn(**leaves)
    if not isinstance(outputs, dict):
        outputs = {"y": outputs}
    gouts = {k: randn(tuple(v.shape)) for k, v in outputs.items()}
    sum((outputs[k] * gouts[k]).sum() for k in outputs).backward()
    tensors = {f"in.{k}": v for k, v in inputs.items()}
    tensors.update({f"param.{k}": v for k, v in (module or {}).items()})
    tensors.update({f"out.{k}": v.detach() for k, v in outputs.items()})
    tensors.update({f"gout.{k}": v for k, v in gouts.items()})
    tensors.update({f"grad.{k}": v.grad for k, v in leaves.items() if v.grad is not None})
    tensors.update({f"grad.param.{k}": v.grad for k, v in weights.items() if v.grad is not None})
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    meta = {"op": op, "params": json.dumps(params), "tol": tol}
    path = os.path.join(OUT, f"{name}.safetensors")
    if not same_as_file(path, tensors, meta):
        save_file(tensors, path, metadata=meta)


def same_as_file(path, tensors, meta):
    """Whether `path` already holds these tensors and metadata (the header's key order is not stable
    between runs, so rewriting an unchanged case would only churn the file)."""
    if not os.path.exists(path):
        return False
    with safe_open(path, "pt") as f:
        if f.metadata() != meta or set(f.keys()) != set(tensors):
            return False
        return all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())
