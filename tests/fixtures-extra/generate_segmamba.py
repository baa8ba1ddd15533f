#!/usr/bin/env python3
"""Conformance cases for SegMamba (op "segmamba"), small 3D networks in float64.

mamba_ssm needs CUDA, so the `Mamba` of SegMamba's mamba_ssm fork is replaced by generate_mamba.py's
`RefMamba` with `bimamba_type="v3"` (the tri-oriented block: the fork's parameters, its forward
transcribed in pure torch, which generated the `mamba_block` tri-oriented case). The network below
restates the structure of ge-xing/SegMamba `model_segmamba/segmamba.py` (commit 1039e37: classes
MambaLayer, MlpChannel, GSC, MambaEncoder, SegMamba), condensed to what the forward pass and the
`state_dict` names need; the decoder is MONAI's own UnetrBasicBlock, UnetrUpBlock and UnetOutBlock.
Two generalisations, both the reference's values by default: the Mamba layers' `num_slices` per
stage (the reference fixes [64, 32, 16, 8], the map depths of a 128^3 input) and the output block's
input channels (the reference writes 48, its feat_size[0]).

    pip install torch monai safetensors
    python3 tests/fixtures-extra/generate_segmamba.py
"""
import math

import torch
import torch.nn.functional as F
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from torch import nn

from fixturegen import randn
from generate_mamba import RefMamba
from generate_models import model_case

# The least distance from zero that a case's ReLU and LeakyReLU inputs keep: float32 rounds them by
# ~1e-7, and one input rounded across the kink moves the parameter gradients (sums over the whole
# map) by about 1/sqrt(voxels), past the cases' tolerance, so a draw with an input nearer is replaced.
KINK_MARGIN = 1e-6
nearest_kink = [math.inf]


def note_kink(t):
    nearest_kink[0] = min(nearest_kink[0], t.detach().abs().min().item())


def relu(t):
    note_kink(t)
    return F.relu(t)


class MambaLayer(nn.Module):
    """LayerNorm over the channels of the row-major tokens, the tri-oriented Mamba, plus the input."""

    def __init__(self, dim, num_slices):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mamba = RefMamba(dim, d_state=16, d_conv=4, expand=2, bimamba_type="v3", nslices=num_slices)

    def forward(self, x):
        tokens = x.flatten(2).transpose(-1, -2)
        return self.mamba(self.norm(tokens)).transpose(-1, -2).reshape(x.shape) + x


class MlpChannel(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv3d(dim, hidden, 1), nn.Conv3d(hidden, dim, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class GSC(nn.Module):
    """Gated spatial convolution: relu(in(proj4(a + b))) + x, a from two 3^3 conv-norm-relu, b one 1^3."""

    def __init__(self, dim):
        super().__init__()
        self.proj, self.proj2 = nn.Conv3d(dim, dim, 3, 1, 1), nn.Conv3d(dim, dim, 3, 1, 1)
        self.proj3, self.proj4 = nn.Conv3d(dim, dim, 1), nn.Conv3d(dim, dim, 1)

    def forward(self, x):
        block = lambda conv, t: relu(F.instance_norm(conv(t)))  # noqa: E731
        a = block(self.proj2, block(self.proj, x))
        return block(self.proj4, a + block(self.proj3, x)) + x


class MambaEncoder(nn.Module):
    def __init__(self, in_chans, depths, dims, num_slices):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv3d(in_chans, dims[0], 7, 2, 3))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(nn.InstanceNorm3d(dims[i]), nn.Conv3d(dims[i], dims[i + 1], 2, 2)))
        self.stages = nn.ModuleList([nn.Sequential(*[MambaLayer(dims[i], num_slices[i]) for _ in range(depths[i])])
                                     for i in range(4)])
        self.gscs = nn.ModuleList([GSC(d) for d in dims])
        self.mlps = nn.ModuleList([MlpChannel(d, 2 * d) for d in dims])

    def forward(self, x):
        outs = []
        for down, gsc, stage, mlp in zip(self.downsample_layers, self.gscs, self.stages, self.mlps):
            x = stage(gsc(down(x)))
            outs.append(mlp(F.instance_norm(x)))
        return outs


class SegMamba(nn.Module):
    def __init__(self, in_chans=1, out_chans=13, depths=(2, 2, 2, 2), feat_size=(48, 96, 192, 384), hidden_size=768,
                 num_slices=(64, 32, 16, 8)):
        super().__init__()
        f = feat_size
        self.vit = MambaEncoder(in_chans, depths, f, num_slices)
        basic = lambda i, o: UnetrBasicBlock(3, i, o, 3, 1, "instance", res_block=True)  # noqa: E731
        up = lambda i, o: UnetrUpBlock(3, i, o, 3, 2, "instance", res_block=True)  # noqa: E731
        self.encoder1, self.encoder2, self.encoder3 = basic(in_chans, f[0]), basic(f[0], f[1]), basic(f[1], f[2])
        self.encoder4, self.encoder5 = basic(f[2], f[3]), basic(f[3], hidden_size)
        self.decoder5, self.decoder4 = up(hidden_size, f[3]), up(f[3], f[2])
        self.decoder3, self.decoder2, self.decoder1 = up(f[2], f[1]), up(f[1], f[0]), basic(f[0], f[0])
        self.out = UnetOutBlock(3, f[0], out_chans)

    def forward(self, x):
        outs = self.vit(x)
        enc1, enc2, enc3, enc4 = self.encoder1(x), self.encoder2(outs[0]), self.encoder3(outs[1]), self.encoder4(outs[2])
        dec = self.decoder5(self.encoder5(outs[3]), enc4)
        dec = self.decoder2(self.decoder3(self.decoder4(dec, enc3), enc2), enc1)
        return self.out(self.decoder1(dec))


def segmamba_case(name, shape, **params):
    """A case on an input of `shape`, drawn again until its kinks keep KINK_MARGIN."""
    for _ in range(20):
        net = SegMamba(**params)
        for m in net.modules():
            if isinstance(m, nn.LeakyReLU):
                m.register_forward_pre_hook(lambda _, inputs: note_kink(inputs[0]))
        nearest_kink[0] = math.inf
        if model_case(name, "segmamba", params, net, randn(*shape), accept=lambda: nearest_kink[0] > KINK_MARGIN):
            return
        print(f"{name}: an activation input {nearest_kink[0]:.1e} from its kink, drawing again", flush=True)
    raise RuntimeError(f"{name}: no draw kept the kink margin")


def default_parameter_count(out_chans):
    """The parameter count of SegMamba's defaults (in_chans 1); seg-models' unit test holds the same."""
    return sum(p.numel() for p in SegMamba(1, out_chans).parameters())


if __name__ == "__main__":
    # The reference's num_slices: a 32^3 input gives maps of 16^3 .. 2^3, 4096 .. 8 tokens.
    segmamba_case("segmamba_32_default_slices", (1, 1, 32, 32, 32), in_chans=1, out_chans=2,
                  depths=[2, 1, 1, 1], feat_size=[4, 6, 8, 10], hidden_size=12)
    # A non-cubic batch of two, slices as the maps' depths (8, 4, 2, 1).
    segmamba_case("segmamba_noncubic_batch2", (2, 2, 16, 32, 16), in_chans=2, out_chans=3,
                  depths=[1, 2, 1, 2], feat_size=[3, 4, 5, 6], hidden_size=7, num_slices=[8, 4, 2, 1])
    for classes in (2, 3, 4):
        print(f"SegMamba default parameters (in 1, out {classes}):", default_parameter_count(classes))
