#!/usr/bin/env python3
"""Extra conformance cases for the metrics and topology ops (metrics, betti_numbers,
persistence_cubical), with shapes and parameters the shared fixtures do not cover.

    pip install torch monai scipy gudhi safetensors && python3 tests/fixtures-extra/generate_metrics.py

- metrics: MONAI 1.6 DiceMetric, MeanIoU, HausdorffDistanceMetric (percentile 95 and none) and
  SurfaceDistanceMetric (symmetric) on 2D and 3D one-hot masks with more classes, anisotropic or
  scalar or per-batch-item spacing, include_background true or false, masks touching the image border. Every kept
  class has a non-empty prediction and truth (empty ones give NaN or inf, which no fixture can
  compare; the unit tests hold those conventions), except in one case with only Dice and IoU
  outputs and ignore_empty false (empty classes give 1 or 0).
- betti_numbers: [b0, b1, b2] of 3D masks from gudhi's cubical complex on the top-dimensional cells
  (closed voxels: 26-connected foreground), checked here against scipy.ndimage labelling for b0
  (26-connected) and b2 (6-connected background components that do not reach the border).
- persistence_cubical: gudhi's sublevel persistence of the top-dimensional cubical complex, 2D (h0,
  h1) and 3D (h0 only), including an image with many tied values; pairs sorted with the essential
  class first, then by persistence descending, ties by birth ascending; infinite death as 1e30.
"""
import json
import os
import warnings

import gudhi
import numpy as np
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU, SurfaceDistanceMetric
from scipy import ndimage
from safetensors.torch import save_file

from fixturegen import OUT, same_as_file

rng = np.random.default_rng(4321)
warnings.simplefilter("ignore")


def save(name, op, params, inputs, outputs, tol):
    """A forward-only case (no gradients)."""
    tensors = {f"in.{k}": torch.as_tensor(np.asarray(v), dtype=torch.float32).contiguous() for k, v in inputs.items()}
    tensors.update({f"out.{k}": torch.as_tensor(np.asarray(v), dtype=torch.float32).contiguous() for k, v in outputs.items()})
    meta = {"op": op, "params": json.dumps(params), "tol": tol}
    path = os.path.join(OUT, f"{name}.safetensors")
    if not same_as_file(path, tensors, meta):
        save_file(tensors, path, metadata=meta)


def blobs(shape, sigma, threshold):
    """A binary mask of smoothed noise above a threshold."""
    return ndimage.gaussian_filter(rng.standard_normal(shape), sigma) > threshold


def labels(batch, classes, spatial, sigma):
    """Random label maps (argmax of smoothed noise) and a perturbed prediction, one-hot (B, C, ...)."""
    fields = ndimage.gaussian_filter(rng.standard_normal((batch, classes, *spatial)), (0, 0, *[sigma] * len(spatial)))
    noise = ndimage.gaussian_filter(rng.standard_normal(fields.shape), (0, 0, *[sigma / 2] * len(spatial)))
    one_hot = lambda f: np.moveaxis(np.eye(classes)[f.argmax(1)], -1, 1)
    return one_hot(fields + 0.6 * noise * fields.std() / noise.std()), one_hot(fields)


def metrics_case(name, batch, classes, spatial, sigma, include_background, spacing):
    pred, target = labels(batch, classes, spatial, sigma)
    first = 0 if include_background else 1
    assert pred[:, first:].reshape(batch, classes - first, -1).any(-1).all(), name
    assert target[:, first:].reshape(batch, classes - first, -1).any(-1).all(), name
    p, t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    kw = {"include_background": include_background}
    out = {
        "dice": DiceMetric(**kw)(p, t),
        "iou": MeanIoU(**kw)(p, t),
        "hd95": HausdorffDistanceMetric(percentile=95, **kw)(p, t, spacing=spacing),
        "hd": HausdorffDistanceMetric(**kw)(p, t, spacing=spacing),
        "assd": SurfaceDistanceMetric(symmetric=True, **kw)(p, t, spacing=spacing),
    }
    assert all(torch.isfinite(v).all() for v in out.values()), name
    save(name, "metrics", {"include_background": include_background, "spacing": spacing},
         {"pred": pred, "target": target}, {k: v.numpy() for k, v in out.items()}, "0.0001")


metrics_case("metrics_2d_3class_aniso", 2, 3, (30, 26), 3.0, False, [0.7, 1.3])
metrics_case("metrics_3d_aniso", 1, 2, (14, 18, 16), 2.5, False, [2.0, 0.8, 1.1])
metrics_case("metrics_3d_background_scalar_spacing", 2, 3, (12, 10, 15), 2.0, True, 0.5)
metrics_case("metrics_3d_4class_nospacing", 1, 4, (16, 12, 20), 2.0, False, None)




def empty_classes_case():
    """Dice and IoU only (the surface metrics of an empty mask are inf or NaN) with ignore_empty
    false: class 1 empty in both (1), class 2 empty in the truth only (0), class 3 empty in the
    prediction only (0)."""
    pred, target = labels(2, 4, (9, 11, 7), 1.5)
    pred[0, 1], target[0, 1] = 0, 0
    target[1, 2], pred[1, 3] = 0, 0
    p, t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    kw = {"include_background": False, "ignore_empty": False}
    out = {"dice": DiceMetric(**kw)(p, t), "iou": MeanIoU(**kw)(p, t)}
    assert out["dice"][0, 0] == 1 and out["dice"][1, 1] == 0 and out["dice"][1, 2] == 0
    save("metrics_empty_classes_no_ignore", "metrics", {**kw, "spacing": None},
         {"pred": pred, "target": target}, {k: v.numpy() for k, v in out.items()}, "0.0001")


empty_classes_case()
metrics_case("metrics_2d_per_item_spacing", 2, 2, (21, 17), 2.5, False, [[0.5, 1.5], [1.2, 0.9]])


def betti_gudhi(mask):
    cc = gudhi.CubicalComplex(top_dimensional_cells=np.where(mask, 0.0, 1.0))
    cc.compute_persistence()
    return [int(b) for b in cc.persistent_betti_numbers(0.0, 0.0)] + [0] * (3 - mask.ndim)


def betti_scipy_b0_b2(mask):
    b0 = ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]
    background, n = ndimage.label(np.pad(~mask, 1, constant_values=True))
    return b0, n - 1


def betti_case(name, mask):
    b = betti_gudhi(mask)[:3]
    b0, b2 = betti_scipy_b0_b2(mask)
    assert (b[0], b[2]) == (b0, b2), (name, b, b0, b2)
    save(name, "betti_numbers", {"connectivity": "26/6"}, {"mask": mask}, {"betti": np.array([b])}, "0")


rng = np.random.default_rng(1)  # each section its own stream: adding a case moves no other section
betti_case("betti_blobs_coarse", blobs((20, 24, 18), 2.0, 0.05))
betti_case("betti_blobs_fine", blobs((16, 16, 16), 1.0, 0.1))
betti_case("betti_porous", ~blobs((18, 14, 22), 1.2, 0.15))
betti_case("betti_thin_slab", blobs((3, 30, 25), 1.5, 0.0))
hollow = np.zeros((9, 9, 9), bool)
hollow[1:8, 1:8, 1:8] = True
hollow[3:6, 3:6, 3:6] = False
hollow[4, 4, 4] = True  # a voxel floating inside the cavity
betti_case("betti_hollow_with_core", hollow)


def diagram(f):
    """gudhi's pairs by dimension, sorted as the fixtures: essential first, persistence desc, birth asc."""
    cc = gudhi.CubicalComplex(top_dimensional_cells=f)
    pairs = cc.persistence()
    out = {}
    for dim in range(f.ndim if f.ndim == 2 else 1):
        rows = [(b, d) for k, (b, d) in pairs if k == dim]
        rows.sort(key=lambda r: (-(r[1] - r[0]), r[0]))
        out[f"h{dim}"] = np.array([[b, 1e30 if np.isinf(d) else d] for b, d in rows]).reshape(-1, 2)
    return out


def persistence_case(name, f, tol="1e-06"):
    f = np.asarray(f, dtype=np.float32).astype(np.float64)
    save(name, "persistence_cubical", {"filtration": "sublevel", "cells": "top_dimensional", "connectivity": 8 if f.ndim == 2 else 26},
         {"f": f}, diagram(f), tol)


rng = np.random.default_rng(2)
persistence_case("persistence_2d_smooth_rect", ndimage.gaussian_filter(rng.standard_normal((17, 33)), 1.5))
persistence_case("persistence_2d_noise_square", rng.random((28, 28)))
persistence_case("persistence_2d_ties", np.round(rng.random((15, 21)) * 6) / 6)
persistence_case("persistence_2d_single_row", rng.random((1, 19)))
persistence_case("persistence_3d_h0", ndimage.gaussian_filter(rng.standard_normal((10, 12, 9)), 1.0))
