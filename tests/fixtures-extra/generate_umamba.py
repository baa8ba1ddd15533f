#!/usr/bin/env python3
"""Conformance cases for U-Mamba's UMambaBot and UMambaEnc (ops "umamba_bot", "umamba_enc"), small 3D
networks in float64.

mamba_ssm needs CUDA, so its `Mamba` is replaced by generate_mamba.py's `RefMamba` (mamba_ssm's
parameters, its slow path transcribed there, which generated the `mamba_block` cases) injected as
`mamba_ssm.Mamba` before the network definition below imports it. That definition restates the
structure of bowang-lab/U-Mamba `umamba/nnunetv2/nets/UMambaBot_3d.py` and `UMambaEnc_3d.py`
(commit 530739b: classes UpsampleLayer, MambaLayer, BasicResBlock, UNetResEncoder /
ResidualMambaEncoder, UNetResDecoder, UMambaBot, UMambaEnc), condensed to
what the forward pass and the `state_dict` names need, with nnU-Net's plan defaults (instance norm
affine eps 1e-5, LeakyReLU 0.01); `BasicBlockD` is dynamic_network_architectures' own.

    pip install torch dynamic-network-architectures safetensors
    python3 tests/fixtures-extra/generate_umamba.py
"""
import math
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

from fixturegen import randn
from generate_mamba import RefMamba
from generate_models import model_case


sys.modules["mamba_ssm"] = types.SimpleNamespace(Mamba=RefMamba)

# ---- U-Mamba's UMambaBot, restated (see the docstring) ----
from mamba_ssm import Mamba  # noqa: E402  (RefMamba, injected above)
from dynamic_network_architectures.building_blocks.residual import BasicBlockD  # noqa: E402

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


class UpsampleLayer(nn.Module):
    def __init__(self, dims, cin, cout, scale):
        super().__init__()
        self.conv, self.scale = CONV[dims](cin, cout, kernel_size=1), scale

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class MambaLayer(nn.Module):
    def __init__(self, dim, channel_token=False):
        super().__init__()
        self.norm, self.mamba = nn.LayerNorm(dim), Mamba(d_model=dim, d_state=16, d_conv=4, expand=2)
        self.channel_token = channel_token

    def forward(self, x):
        if self.channel_token:
            return self.mamba(self.norm(x.flatten(2))).reshape(x.shape)
        tokens = x.reshape(*x.shape[:2], -1).transpose(-1, -2)
        return self.mamba(self.norm(tokens)).transpose(-1, -2).reshape(x.shape)


class BasicResBlock(nn.Module):
    def __init__(self, dims, cin, cout, kernel, stride):
        super().__init__()
        pad = [k // 2 for k in kernel]
        self.conv1 = CONV[dims](cin, cout, kernel, stride=stride, padding=pad)
        self.norm1 = NORM[dims](cout, eps=1e-5, affine=True)
        self.conv2 = CONV[dims](cout, cout, kernel, padding=pad)
        self.norm2 = NORM[dims](cout, eps=1e-5, affine=True)
        self.conv3 = CONV[dims](cin, cout, kernel_size=1, stride=stride)

    def forward(self, x):
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.01)
        return F.leaky_relu(self.norm2(self.conv2(y)) + self.conv3(x), 0.01)


def res_stage(dims, n_blocks, cin, cout, kernel, stride, conv_bias):
    blocks = [BasicBlockD(CONV[dims], cout, cout, kernel, 1, conv_bias, NORM[dims], {"eps": 1e-5, "affine": True},
                          nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01}) for _ in range(n_blocks - 1)]
    return nn.Sequential(BasicResBlock(dims, cin, cout, kernel, stride), *blocks)


class Encoder(nn.Module):
    """UNetResEncoder, or with `input_size` ResidualMambaEncoder (a MambaLayer after every stage)."""

    def __init__(self, dims, cin, features, kernels, strides, n_blocks, conv_bias, input_size=None):
        super().__init__()
        self.stem = res_stage(dims, n_blocks[0], cin, features[0], kernels[0], [1] * dims, conv_bias)
        ins = [features[0]] + features[:-1]
        self.stages = nn.Sequential(*[res_stage(dims, n, i, f, k, s, conv_bias)
                                      for n, i, f, k, s in zip(n_blocks, ins, features, kernels, strides)])
        self.mamba_layers = None
        if input_size is not None:
            layers, size = [], input_size
            for f, s in zip(features, strides):
                size = [i // j for i, j in zip(size, s)]
                voxels = math.prod(size)
                layers.append(MambaLayer(voxels, True) if voxels <= f else MambaLayer(f))
            self.mamba_layers = nn.ModuleList(layers)

    def forward(self, x):
        x, skips = self.stem(x), []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if self.mamba_layers is not None:
                x = self.mamba_layers[s](x)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    def __init__(self, dims, encoder, features, kernels, strides, n_blocks, num_classes, conv_bias, deep_supervision):
        super().__init__()
        self.encoder, self.deep_supervision = encoder, deep_supervision
        n = len(features)
        self.upsample_layers = nn.ModuleList(
            [UpsampleLayer(dims, features[-s], features[-s - 1], strides[-s]) for s in range(1, n)])
        self.stages = nn.ModuleList([res_stage(dims, n_blocks[s - 1], 2 * features[-s - 1], features[-s - 1],
                                               kernels[-s - 1], [1] * dims, conv_bias) for s in range(1, n)])
        self.seg_layers = nn.ModuleList([CONV[dims](features[-s - 1], num_classes, 1) for s in range(1, n)])

    def forward(self, skips):
        x, outs = skips[-1], []
        for s, (up, stage, head) in enumerate(zip(self.upsample_layers, self.stages, self.seg_layers)):
            x = stage(torch.cat((up(x), skips[-s - 2]), 1))
            if self.deep_supervision or s == len(self.stages) - 1:
                outs.append(head(x))
        return outs[::-1] if self.deep_supervision else outs[0]


class UMamba(nn.Module):
    """UMambaBot, or with `input_size` UMambaEnc."""

    def __init__(self, input_channels, features_per_stage, kernel_sizes, strides, n_conv_per_stage,
                 n_conv_per_stage_decoder, num_classes, conv_bias, deep_supervision, input_size=None):
        super().__init__()
        n, dims = len(features_per_stage), len(kernel_sizes[0])
        enc = [1 if s >= math.ceil(n / 2) else b for s, b in enumerate(n_conv_per_stage)]
        dec = [1 if s >= math.ceil((n - 1) / 2 + 0.5) else b for s, b in enumerate(n_conv_per_stage_decoder)]
        self.encoder = Encoder(dims, input_channels, features_per_stage, kernel_sizes, strides, enc, conv_bias,
                               input_size)
        self.mamba_layer = MambaLayer(features_per_stage[-1]) if input_size is None else None
        self.decoder = Decoder(dims, self.encoder, features_per_stage, kernel_sizes, strides, dec, num_classes,
                               conv_bias, deep_supervision)

    def forward(self, x):
        skips = self.encoder(x)
        if self.mamba_layer is not None:
            skips[-1] = self.mamba_layer(skips[-1])
        return self.decoder(skips)
# ---- end of the restatement ----


def umamba_case(name, x, **params):
    op = "umamba_enc" if "input_size" in params else "umamba_bot"
    model_case(name, op, params, UMamba(**params), x)


def default_3d_parameter_count(input_size=None):
    """The parameter count of seg-models' `UMamba::default_3d` (its unit test holds the same)."""
    net = UMamba(1, [32, 64, 128, 256, 320, 320], [[3] * 3] * 6, [[1] * 3] + [[2] * 3] * 5, [2] * 6, [2] * 5, 2,
                 True, True, input_size)
    return sum(p.numel() for p in net.parameters())


if __name__ == "__main__":
    umamba_case("umamba_bot_3d_three_stages", randn(2, 1, 8, 8, 8), input_channels=1, features_per_stage=[3, 4, 6],
                kernel_sizes=[[3, 3, 3]] * 3, strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[1, 3, 2],
                n_conv_per_stage_decoder=[2, 3], num_classes=2, conv_bias=False, deep_supervision=False)
    umamba_case("umamba_bot_3d_four_stages_deep_supervision", randn(1, 2, 16, 8, 12), input_channels=2,
                features_per_stage=[2, 3, 4, 5], kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                strides=[[1, 1, 1], [2, 2, 1], [2, 1, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 2, 2],
                n_conv_per_stage_decoder=[2, 2, 2], num_classes=3, conv_bias=True, deep_supervision=True)
    umamba_case("umamba_enc_3d_channel_tokens", randn(1, 1, 8, 8, 4), input_channels=1, features_per_stage=[3, 4, 6],
                kernel_sizes=[[3, 3, 3]] * 3, strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 2],
                n_conv_per_stage_decoder=[2, 2], num_classes=2, conv_bias=True, deep_supervision=True,
                input_size=[8, 8, 4])
    print("UMambaBot default 3D parameters:", default_3d_parameter_count())
    print("UMambaEnc default 3D parameters (128^3 patch):", default_3d_parameter_count([128] * 3))
