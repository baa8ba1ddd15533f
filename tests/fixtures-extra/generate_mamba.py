#!/usr/bin/env python3
"""Extra conformance cases for the Mamba block: mamba_ssm's `Mamba.forward` slow path (and SegMamba's
tri-oriented `bimamba_type="v3"` block) transcribed in float64 over explicit parameters.

    pip install torch safetensors && python3 tests/fixtures-extra/generate_mamba.py
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from fixturegen import case, randn
from generate_scan import scan_ref


def branch(p, s, xz, d_inner, dt_rank, d_state, d_conv):
    """One scan direction of mamba_ssm's slow path on xz (b, 2 d_inner, l); parameter suffix s."""
    length = xz.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = F.silu(F.conv1d(x, p[f"conv1d{s}.weight"], p[f"conv1d{s}.bias"], padding=d_conv - 1, groups=d_inner)[..., :length])
    x_dbl = F.linear(x.transpose(1, 2), p[f"x_proj{s}.weight"])
    dt, B, C = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    delta = (dt @ p[f"dt_proj{s}.weight"].t()).transpose(1, 2)
    A = -torch.exp(p[f"A{s}_log"])
    return scan_ref(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), p[f"D{s}"], z, p[f"dt_proj{s}.bias"], True)["y"]


def mamba(p, x, d_model, d_state, d_conv, expand, dt_rank, nslices=None):
    d_inner = expand * d_model
    batch, length, _ = x.shape
    xz = F.linear(x, p["in_proj.weight"]).transpose(1, 2)
    args = (d_inner, dt_rank, d_state, d_conv)
    y = branch(p, "", xz, *args)
    if nslices:
        y = y + branch(p, "_b", xz.flip(-1), *args).flip(-1)
        xz_s = torch.stack(xz.chunk(nslices, dim=-1), dim=-1).flatten(-2)
        y_s = branch(p, "_s", xz_s, *args)
        y = y + y_s.reshape(batch, d_inner, length // nslices, nslices).permute(0, 1, 3, 2).flatten(-2)
    return F.linear(y.transpose(1, 2), p["out_proj.weight"])


class RefMamba(nn.Module):
    """mamba_ssm's `Mamba(d_model, d_state, d_conv, expand)` module with its parameters (and with
    `bimamba_type="v3"` those SegMamba's mamba_ssm fork adds, registered in the fork's order), its
    forward the pure-torch `mamba` above; the networks' generators inject it as `mamba_ssm.Mamba`."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, bimamba_type="none", nslices=5):
        super().__init__()
        d_inner, self.dt_rank = expand * d_model, math.ceil(d_model / 16)
        self.dims = (d_model, d_state, d_conv, expand)
        self.nslices = nslices if bimamba_type == "v3" else None
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        for s in ["", "_b", "_s"] if self.nslices else [""]:
            if s:
                setattr(self, f"A{s}_log", nn.Parameter(torch.zeros(d_inner, d_state)))
            setattr(self, f"conv1d{s}", nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1))
            setattr(self, f"x_proj{s}", nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False))
            setattr(self, f"dt_proj{s}", nn.Linear(self.dt_rank, d_inner))
            if not s:
                self.A_log = nn.Parameter(torch.zeros(d_inner, d_state))
            setattr(self, f"D{s}", nn.Parameter(torch.ones(d_inner)))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):
        return mamba(dict(self.named_parameters()), x, *self.dims, self.dt_rank, self.nslices)


def params(d_model, d_state, d_conv, expand, dt_rank, suffixes):
    d_inner = expand * d_model
    p = {"in_proj.weight": randn(2 * d_inner, d_model) / math.sqrt(d_model)}
    for s in suffixes:
        p[f"conv1d{s}.weight"] = randn(d_inner, 1, d_conv) * 0.5
        p[f"conv1d{s}.bias"] = randn(d_inner) * 0.1
        p[f"x_proj{s}.weight"] = randn(dt_rank + 2 * d_state, d_inner) / math.sqrt(d_inner)
        p[f"dt_proj{s}.weight"] = randn(d_inner, dt_rank) / math.sqrt(dt_rank)
        p[f"dt_proj{s}.bias"] = randn(d_inner) * 0.5 - 3.0
        p[f"A{s}_log"] = torch.log(torch.arange(1, d_state + 1, dtype=torch.float64)).repeat(d_inner, 1) + randn(d_inner, d_state) * 0.1
        p[f"D{s}"] = 1.0 + randn(d_inner) * 0.1
    p["out_proj.weight"] = randn(d_model, d_inner) / math.sqrt(d_inner)
    return p


def mamba_case(name, batch, length, d_model, d_state=16, d_conv=4, expand=2, dt_rank=None, nslices=None):
    rank = dt_rank or math.ceil(d_model / 16)
    p = params(d_model, d_state, d_conv, expand, rank, ["", "_b", "_s"] if nslices else [""])
    config = {"d_model": d_model, "d_state": d_state, "d_conv": d_conv, "expand": expand}
    if dt_rank:
        config["dt_rank"] = dt_rank
    if nslices:
        config.update({"bimamba_type": "v3", "nslices": nslices})
    case(name, "mamba_block", config,
         lambda w, x: mamba(w, x, d_model, d_state, d_conv, expand, rank, nslices),
         tol="0.0003", module=p, x=randn(batch, length, d_model))


def layer_case(name, shape, d_state, nslices, residual):
    """U-Mamba's (residual false) or SegMamba's (residual true) MambaLayer on a (B, C, D, H, W) map."""
    batch, channels = shape[:2]
    rank = math.ceil(channels / 16)
    block = params(channels, d_state, 4, 2, rank, ["", "_b", "_s"] if nslices else [""])
    p = {"norm.weight": 1.0 + randn(channels) * 0.1, "norm.bias": randn(channels) * 0.1}
    p.update({f"mamba.{k}": v for k, v in block.items()})

    def layer(w, x):
        tokens = x.reshape(batch, channels, -1).transpose(-1, -2)
        normed = F.layer_norm(tokens, (channels,), w["norm.weight"], w["norm.bias"], 1e-5)
        inner = {k[len("mamba."):]: v for k, v in w.items() if k.startswith("mamba.")}
        out = mamba(inner, normed, channels, d_state, 4, 2, rank, nslices).transpose(-1, -2).reshape(x.shape)
        return out + x if residual else out

    config = {"d_model": channels, "d_state": d_state, "residual": residual}
    if nslices:
        config.update({"bimamba_type": "v3", "nslices": nslices})
    case(name, "mamba_layer", config, layer, tol="0.0003", module=p, x=randn(*shape))


if __name__ == "__main__":
    mamba_case("mamba_small_state_conv3", 2, 20, 8, d_state=4, d_conv=3, expand=1)
    mamba_case("mamba_dt_rank3", 1, 45, 24, d_state=8, dt_rank=3)
    mamba_case("mamba_tri_oriented", 1, 24, 8, d_state=4, nslices=4)
    layer_case("mamba_layer_umamba", (1, 6, 3, 4, 5), d_state=4, nslices=None, residual=False)
    layer_case("mamba_layer_segmamba", (2, 4, 3, 2, 4), d_state=4, nslices=3, residual=True)
