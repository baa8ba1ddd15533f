#!/usr/bin/env python3
"""Extra conformance cases for pooling and interpolate, with parameters the shared fixtures do not
cover: strides other than the kernel, padding, ceil mode, dilation, count_include_pad=False,
divisor_override, non-cubic adaptive sizes, (bi/tri)linear both ways of align_corners with scale
factors and sizes, nearest with non-integer ratios.

    pip install torch safetensors && python3 tests/fixtures-extra/generate_pool.py

Nearest cases avoid `out == in` and `out == 2 in` with a non-matching scale factor: there PyTorch's
nearest backward takes a shortcut its forward does not, so its gradient is not the forward's adjoint.
"""
import torch.nn.functional as F

from fixturegen import case, randn


def max_pool(name, op, x, **kw):
    fn = {"max_pool2d": F.max_pool2d, "max_pool3d": F.max_pool3d}[op]
    case(name, op, kw, lambda x: fn(x, **kw), x=x)


def avg_pool3d(name, x, **kw):
    case(name, "avg_pool3d", kw, lambda x: F.avg_pool3d(x, **kw), x=x)


def interpolate(name, x, **kw):
    params = {"mode": kw["mode"], "align_corners": kw.get("align_corners")}
    params.update({k: kw[k] for k in ("size", "scale_factor") if k in kw})
    case(name, "interpolate", params, lambda x: F.interpolate(x, **kw), x=x)


max_pool("max_pool3d_s2_p1_ceil", "max_pool3d", randn(2, 3, 7, 6, 5),
         kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)
max_pool("max_pool3d_dilation", "max_pool3d", randn(1, 2, 7, 8, 6),
         kernel_size=[2, 3, 2], stride=[1, 2, 1], padding=[1, 1, 0], dilation=[2, 1, 2], ceil_mode=False)
max_pool("max_pool2d_rect_ceil", "max_pool2d", randn(2, 3, 9, 7),
         kernel_size=[3, 2], stride=[2, 1], padding=[1, 0], dilation=1, ceil_mode=True)
max_pool("max_pool2d_dilated_s1", "max_pool2d", randn(1, 2, 8, 9),
         kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=False)
avg_pool3d("avg_pool3d_s2_p1_ceil", randn(2, 2, 7, 6, 5),
           kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
avg_pool3d("avg_pool3d_exclude_pad", randn(1, 3, 7, 6, 5),
           kernel_size=[3, 2, 3], stride=[2, 2, 1], padding=[1, 1, 1], ceil_mode=True, count_include_pad=False)
avg_pool3d("avg_pool3d_divisor_override", randn(1, 2, 4, 5, 3),
           kernel_size=2, stride=1, padding=1, ceil_mode=False, count_include_pad=True, divisor_override=3)
case("adaptive_avg_pool3d_noncubic", "adaptive_avg_pool3d", {"output_size": [3, 2, 5]},
     lambda x: F.adaptive_avg_pool3d(x, [3, 2, 5]), x=randn(2, 3, 7, 6, 4))
case("adaptive_avg_pool3d_mixed", "adaptive_avg_pool3d", {"output_size": [4, 1, 3]},
     lambda x: F.adaptive_avg_pool3d(x, [4, 1, 3]), x=randn(1, 2, 9, 5, 7))
interpolate("interpolate_bilinear_ac1_size", randn(2, 3, 4, 3), size=[7, 5], mode="bilinear", align_corners=True)
interpolate("interpolate_bilinear_ac0_size_down", randn(1, 2, 5, 4), size=[3, 7], mode="bilinear", align_corners=False)
interpolate("interpolate_trilinear_ac1_scale2", randn(1, 2, 3, 4, 5), scale_factor=2, mode="trilinear", align_corners=True)
interpolate("interpolate_trilinear_ac0_size", randn(2, 2, 3, 4, 6), size=[5, 7, 3], mode="trilinear", align_corners=False)
interpolate("interpolate_trilinear_ac0_scale_mixed", randn(1, 2, 4, 3, 8),
            scale_factor=[1.5, 2.0, 0.75], mode="trilinear", align_corners=False)
interpolate("interpolate_linear_scale2_5", randn(2, 3, 4), scale_factor=2.5, mode="linear", align_corners=False)
interpolate("interpolate_nearest_scale1_5", randn(1, 2, 5, 3, 7), scale_factor=1.5, mode="nearest")
interpolate("interpolate_nearest_size_2d", randn(2, 2, 5, 4), size=[7, 3], mode="nearest")
