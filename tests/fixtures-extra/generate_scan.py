#!/usr/bin/env python3
"""Extra conformance cases for the selective scan, computed by a float64 transcription of
mamba_ssm's `selective_scan_ref` (grouped B/C repeated over the channels of a group).

    pip install torch safetensors && python3 tests/fixtures-extra/generate_scan.py
"""
import torch
import torch.nn.functional as F

from fixturegen import case, randn


def scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    if B.dim() == 4:
        B = B.repeat_interleave(dim // B.shape[1], dim=1)
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    else:
        B = B[:, None].expand(batch, dim, *B.shape[1:])
        C = C[:, None].expand(batch, dim, *C.shape[1:])
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    inject = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(length):
        x = decay[:, :, i] * x + inject[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", x, C[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return {"y": y, "last_state": x}


def scan_case(name, batch, dim, length, state, groups=None, softplus=True, with_d=True, with_z=True, with_bias=True):
    bc = (batch, groups, state, length) if groups else (batch, state, length)
    inputs = {
        "u": randn(batch, dim, length),
        "delta": randn(batch, dim, length) * 0.5 if softplus else randn(batch, dim, length).abs() * 0.1 + 0.01,
        "A": -torch.exp(randn(dim, state) * 0.5),
        "B": randn(*bc),
        "C": randn(*bc),
    }
    if with_d:
        inputs["D"] = randn(dim)
    if with_z:
        inputs["z"] = randn(batch, dim, length)
    if with_bias:
        inputs["delta_bias"] = randn(dim) * 0.1 if softplus else randn(dim).abs() * 0.05
    case(name, "selective_scan", {"delta_softplus": softplus},
         lambda **t: scan_ref(delta_softplus=softplus, **t), tol="0.0002", **inputs)


if __name__ == "__main__":
    scan_case("scan_state5_long", 1, 6, 300, 5)
    scan_case("scan_grouped3_nosoftplus", 2, 6, 40, 16, groups=3, softplus=False)
    scan_case("scan_no_d_no_z", 3, 4, 70, 8, with_d=False, with_z=False, with_bias=False)
    scan_case("scan_z_only_n1", 1, 5, 129, 1, with_d=False, with_bias=False)
