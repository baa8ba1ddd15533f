#!/usr/bin/env python3
"""Extra conformance cases for the Swin parts, from MONAI's own classes in float64
(`monai.networks.nets.swin_unetr`): WindowAttention (2D, heads 1/4, no qkv bias, no mask, fewer
tokens than the window), BasicLayer (2D, non-cubic windows, windows larger than the map, odd depth,
batch 2, both downsamplings) and PatchMerging (2D, odd sizes).

    pip install torch monai safetensors && python3 tests/fixtures-extra/generate_swin.py
"""
import torch
from torch.func import functional_call
from monai.networks.nets.swin_unetr import BasicLayer, PatchMerging, PatchMergingV2, WindowAttention, compute_mask

from fixturegen import case, randn

torch.set_default_dtype(torch.float64)


def weights(module):
    """Random values for every parameter (norm weights near 1), so that each one matters."""
    return {
        name: 1.0 + 0.1 * randn(tuple(p.shape)) if "norm" in name and name.endswith("weight") else 0.3 * randn(tuple(p.shape))
        for name, p in module.named_parameters()
    }


def run(module):
    buffers = dict(module.named_buffers())
    return lambda w, **inputs: functional_call(module, {**w, **buffers}, tuple(inputs.values()))


def window_attention(name, dim, heads, window, qkv_bias, windows, tokens=None, mask_dims=None):
    att = WindowAttention(dim, heads, window, qkv_bias=qkv_bias).double()
    n = tokens or int(torch.tensor(window).prod())
    params = {"dim": dim, "num_heads": heads, "window_size": list(window), "qkv_bias": qkv_bias,
              "masked": mask_dims is not None}
    inputs = {"x": randn(windows, n, dim)}
    if mask_dims is not None:
        inputs["mask"] = compute_mask(mask_dims, window, [w // 2 for w in window], "cpu").double()
        fn = run(att)
    else:
        fn = lambda w, x: functional_call(att, {**w, **dict(att.named_buffers())}, (x, None))
    w = weights(att)
    case(name, "window_attention", params, fn, module=w, **inputs)


def basic_layer(name, x_shape, dim, depth, heads, window, downsample=None, qkv_bias=True, mlp_ratio=4.0):
    merging = {None: None, "merging": PatchMerging, "mergingv2": PatchMergingV2}[downsample]
    layer = BasicLayer(dim, depth, heads, window, drop_path=[0.0] * depth, mlp_ratio=mlp_ratio,
                       qkv_bias=qkv_bias, downsample=merging).double()
    params = {"dim": dim, "depth": depth, "num_heads": heads, "window_size": list(window),
              "mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "downsample": downsample}
    case(name, "swin_basic_layer", params, run(layer), tol="0.0002", module=weights(layer), x=randn(*x_shape))


def patch_merging(name, x_shape, dim, version):
    cls = PatchMerging if version == 1 else PatchMergingV2
    m = cls(dim, spatial_dims=len(x_shape) - 2).double()
    case(name, "patch_merging", {"dim": dim, "version": version}, run(m), module=weights(m), x=randn(*x_shape))


window_attention("window_attention_2d_heads4_nobias", 16, 4, (4, 5), False, 6, mask_dims=[8, 15])
window_attention("window_attention_heads1_nomask", 8, 1, (3, 3, 3), True, 5)
window_attention("window_attention_fewer_tokens", 12, 3, (7, 7, 7), True, 2, tokens=140)
basic_layer("swin_basic_layer_2d_mergingv2", (1, 8, 9, 7), 8, 2, 2, (4, 4), downsample="mergingv2")
basic_layer("swin_basic_layer_noncubic_depth3_merging", (1, 8, 5, 7, 6), 8, 3, 4, (2, 3, 4),
            downsample="merging", qkv_bias=False)
basic_layer("swin_basic_layer_window_larger_than_map", (1, 6, 4, 5, 3), 6, 2, 1, (7, 7, 7))
basic_layer("swin_basic_layer_batch2_partial_clip", (2, 8, 3, 9, 6), 8, 2, 2, (4, 4, 4),
            downsample="mergingv2", mlp_ratio=2.0)
patch_merging("patch_merging_2d_odd", (2, 5, 7, 6), 6, 1)
patch_merging("patch_merging_3d_v1_odd", (1, 3, 5, 2, 4), 4, 1)
patch_merging("patch_merging_3d_v2_odd", (2, 1, 4, 3, 4), 4, 2)
