#!/usr/bin/env python3
"""Conformance cases for MONAI's sliding_window_inference, forward only. The predictor is a 3x3(x3)
convolution with padding 1 and the case's weights `in.w`, `in.b`, so that window borders differ
from the whole-image result and the blending shows.

    pip install torch monai safetensors && python3 tests/fixtures-extra/generate_sliding_window.py

Case format (op "sliding_window_inference"): `in.x`, `in.w`, `in.b`, `out.y`; params: roi_size,
sw_batch_size, overlap, mode, sigma_scale, padding_mode, cval as MONAI's arguments.
"""
import json
import os

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from safetensors.torch import save_file

from fixturegen import OUT, randn, same_as_file


def window_case(name, x, cout, **params):
    dims = x.dim() - 2
    w = randn(cout, x.shape[1], *([3] * dims))
    b = randn(cout)
    conv = F.conv3d if dims == 3 else F.conv2d
    y = sliding_window_inference(x, predictor=lambda t: conv(t, w, b, padding=1), **params)
    tensors = {"in.x": x, "in.w": w, "in.b": b, "out.y": y}
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    meta = {"op": "sliding_window_inference", "params": json.dumps(params), "tol": "1e-5"}
    path = os.path.join(OUT, f"{name}.safetensors")
    if not same_as_file(path, tensors, meta):
        save_file(tensors, path, metadata=meta)


window_case("sliding_window_constant_3d", randn(1, 2, 13, 17, 10), 3, roi_size=[8, 8, 8], sw_batch_size=3,
            overlap=0.25)
window_case("sliding_window_gaussian_3d", randn(2, 1, 20, 11, 9), 2, roi_size=[8, 6, 9], sw_batch_size=4,
            overlap=0.5, mode="gaussian", sigma_scale=0.125)
window_case("sliding_window_pad_2d", randn(1, 2, 10, 23), 2, roi_size=[16, 8], sw_batch_size=2, overlap=0.4,
            mode="gaussian", sigma_scale=0.25, padding_mode="replicate")
window_case("sliding_window_cval_2d", randn(1, 1, 7, 30), 1, roi_size=[9, -1], sw_batch_size=1, overlap=0.0,
            padding_mode="constant", cval=0.5)
