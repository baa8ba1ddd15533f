#!/usr/bin/env python3
"""Conformance cases for the networks: MONAI's BasicUNet and nnU-Net's PlainConvUNet
(dynamic_network_architectures), small, with odd and non-cubic sizes, in float64.

    pip install torch monai dynamic-network-architectures safetensors
    python3 tests/fixtures-extra/generate_models.py

Gradients are kept for the parameters whose reference gradient is not round-off: the bias of a
convolution followed by instance norm has an exactly zero gradient (the norm subtracts the mean),
and its float64 value (~1e-13) is noise no implementation can match relatively, so those are left
out (the fixture README: "Model files hold grad.param.* for some parameters only").
"""
import json
import os

import torch
from safetensors.torch import save_file

from fixturegen import OUT, randn, same_as_file


def model_case(name, op, params, net, x, tol="0.001", accept=None):
    """Writes the case, unless `accept()` (called after the forward) says no; returns whether it did."""
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(randn(tuple(p.shape)) * 0.3)
    x = x.clone().requires_grad_(True)
    outs = net(x)
    if accept is not None and not accept():
        return False
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    names = ["y"] + [f"y_{i}" for i in range(1, len(outs))]
    gouts = [randn(tuple(o.shape)) for o in outs]
    sum((o * g).sum() for o, g in zip(outs, gouts)).backward()
    tensors = {"in.x": x.detach(), "grad.x": x.grad}
    for n, o, g in zip(names, outs, gouts):
        tensors[f"out.{n}"] = o.detach()
        tensors[f"gout.{n}"] = g
    for k, v in net.state_dict().items():
        tensors[f"param.{k}"] = v
    for k, p in net.named_parameters():
        if p.grad is not None and p.grad.norm() > 1e-9 * max(1.0, p.grad.numel() ** 0.5):
            tensors[f"grad.param.{k}"] = p.grad
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    meta = {"op": op, "params": json.dumps(params), "tol": tol}
    path = os.path.join(OUT, f"{name}.safetensors")
    if not same_as_file(path, tensors, meta):
        save_file(tensors, path, metadata=meta)
    return True


def basic_unet(name, x, **params):
    from monai.networks.nets import BasicUNet
    model_case(name, "basic_unet", params, BasicUNet(**params), x)


def plain_unet(name, x, conv_op, **params):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    conv = {"Conv2d": torch.nn.Conv2d, "Conv3d": torch.nn.Conv3d}[conv_op]
    norm = {"Conv2d": torch.nn.InstanceNorm2d, "Conv3d": torch.nn.InstanceNorm3d}[conv_op]
    net = PlainConvUNet(conv_op=conv, norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01, "inplace": True},
                        **params)
    meta = dict(params, conv_op=conv_op, norm="instance_affine", nonlin="leaky_relu_0.01")
    model_case(name, "plain_conv_unet", meta, net, x)


if __name__ == "__main__":
    basic_unet("basic_unet_3d_odd", randn(1, 2, 33, 20, 18), spatial_dims=3, in_channels=2, out_channels=2,
               features=[2, 3, 4, 4, 6, 2])
    basic_unet("basic_unet_2d_odd", randn(2, 1, 23, 33), spatial_dims=2, in_channels=1, out_channels=4,
               features=[4, 4, 6, 8, 8, 3])
    plain_unet("plain_conv_unet_2d_deep_supervision", randn(2, 1, 16, 24), "Conv2d", input_channels=1, n_stages=3,
               features_per_stage=[4, 8, 8], kernel_sizes=[[3, 3], [3, 3], [3, 3]], strides=[[1, 1], [2, 2], [2, 2]],
               n_conv_per_stage=[1, 2, 2], n_conv_per_stage_decoder=[1, 2], num_classes=3, conv_bias=False,
               deep_supervision=True)
    plain_unet("plain_conv_unet_3d_anisotropic", randn(1, 2, 8, 16, 16), "Conv3d", input_channels=2, n_stages=3,
               features_per_stage=[4, 6, 8], kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
               strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 1],
               n_conv_per_stage_decoder=[1, 1], num_classes=2, conv_bias=True, deep_supervision=False)
