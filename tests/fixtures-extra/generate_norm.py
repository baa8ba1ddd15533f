#!/usr/bin/env python3
"""Extra conformance cases for the normalisation ops (instance_norm, group_norm, layer_norm,
batch_norm), with shapes and parameters the shared fixtures do not cover: 1-, 2- and 3-D spatial
inputs, other group counts, layer norm over several trailing dims, no-affine variants, other eps,
batch norm with running statistics (training: the updated statistics are outputs; eval: they are
used).

    pip install torch safetensors && python3 tests/fixtures-extra/generate_norm.py

batch_norm cases with running statistics hold them as inputs `in.running_mean` and `in.running_var`
(no gradient: they are buffers), and in training mode the updated statistics as `out.running_mean`
and `out.running_var`; params `training`, `momentum`, `eps` as torch.nn.functional.batch_norm.
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fixturegen import OUT, case, randn

case("instance_norm2d_affine_eps", "instance_norm", {"eps": 1e-3},
     lambda x, weight, bias: F.instance_norm(x, weight=weight, bias=bias, eps=1e-3),
     x=randn(3, 4, 5, 6) * 2 + 1, weight=randn(4), bias=randn(4))
case("instance_norm1d_weight_only", "instance_norm", {"eps": 1e-5},
     lambda x, weight: F.instance_norm(x, weight=weight, eps=1e-5), x=randn(2, 5, 9), weight=randn(5))
case("group_norm2d_g2", "group_norm", {"num_groups": 2, "eps": 1e-5},
     lambda x, weight, bias: F.group_norm(x, 2, weight, bias, 1e-5), x=randn(2, 8, 5, 4), weight=randn(8), bias=randn(8))
case("group_norm3d_g1_noaffine", "group_norm", {"num_groups": 1, "eps": 1e-6},
     lambda x: F.group_norm(x, 1, eps=1e-6), x=randn(2, 6, 3, 4, 5) + 3)
case("group_norm3d_g4", "group_norm", {"num_groups": 4, "eps": 1e-2},
     lambda x, weight, bias: F.group_norm(x, 4, weight, bias, 1e-2), x=randn(1, 8, 4, 3, 5), weight=randn(8), bias=randn(8))
case("layer_norm_two_dims", "layer_norm", {"normalized_shape": [4, 5], "eps": 1e-6},
     lambda x, weight, bias: F.layer_norm(x, [4, 5], weight, bias, 1e-6), x=randn(2, 3, 4, 5), weight=randn(4, 5), bias=randn(4, 5))
case("layer_norm_three_dims_noaffine", "layer_norm", {"normalized_shape": [3, 4, 5], "eps": 1e-5},
     lambda x: F.layer_norm(x, [3, 4, 5], eps=1e-5), x=randn(2, 3, 4, 5) * 4)
case("batch_norm1d_train_noaffine", "batch_norm", {"eps": 1e-5, "training": True},
     lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5), x=randn(6, 5))


def batch_norm_case(name, training, momentum, eps, x, weight, bias, running_mean, running_var):
    """A batch_norm case with running statistics: inputs without gradients, updated in training."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in {"x": x, "weight": weight, "bias": bias}.items()}
    rm, rv = running_mean.clone(), running_var.clone()
    y = F.batch_norm(leaves["x"], rm, rv, leaves["weight"], leaves["bias"], training, momentum, eps)
    gout = randn(tuple(y.shape))
    (y * gout).sum().backward()
    tensors = {"in.x": x, "in.weight": weight, "in.bias": bias, "in.running_mean": running_mean,
               "in.running_var": running_var, "out.y": y.detach(), "gout.y": gout}
    if training:
        tensors.update({"out.running_mean": rm, "out.running_var": rv})
    tensors.update({f"grad.{k}": v.grad for k, v in leaves.items()})
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    params = {"eps": eps, "training": training, "momentum": momentum}
    meta = {"op": "batch_norm", "params": json.dumps(params), "tol": "0.0001"}
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata=meta)


batch_norm_case("batch_norm2d_train_running", True, 0.2, 1e-5, randn(4, 3, 5, 6) * 2 + 1, randn(3), randn(3),
                randn(3), randn(3).abs() + 0.5)
batch_norm_case("batch_norm3d_eval", False, 0.1, 1e-3, randn(2, 4, 3, 4, 5), randn(4), randn(4),
                randn(4), randn(4).abs() + 0.5)
