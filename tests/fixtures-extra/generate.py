#!/usr/bin/env python3
"""Extra conformance cases for the core ops and convolution, with shapes and parameters the shared
fixtures do not cover.

    pip install torch safetensors && python3 tests/fixtures-extra/generate.py
"""
import torch
import torch.nn.functional as F

from fixturegen import case, randn

case("leaky_relu_slope02", "leaky_relu", {"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2), x=randn(3, 7, 5))
case("softplus_beta2", "softplus", {"beta": 2.0, "threshold": 5.0}, lambda x: F.softplus(x, 2.0, 5.0), x=randn(6, 9) * 4)
case("gelu_tanh_3d", "gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh"), x=randn(2, 3, 4, 5) * 3)
case("softmax_dim0", "softmax", {"dim": 0}, lambda x: torch.softmax(x, 0), x=randn(5, 3, 4) * 5)
case("log_softmax_mid", "log_softmax", {"dim": -2}, lambda x: torch.log_softmax(x, -2), x=randn(2, 6, 3, 4) * 5)
case("matmul_vec_mat", "matmul", {}, lambda a, b: torch.matmul(a, b), a=randn(7), b=randn(2, 7, 3))
case("matmul_mat_vec", "matmul", {}, lambda a, b: torch.matmul(a, b), a=randn(2, 1, 4, 6), b=randn(6))
case("matmul_dot", "matmul", {}, lambda a, b: torch.matmul(a, b), a=randn(9), b=randn(9))
case("matmul_bcast_both", "matmul", {}, lambda a, b: torch.matmul(a, b), a=randn(3, 1, 4, 5), b=randn(1, 2, 5, 6))
case("linear_nobias_4d", "linear", {}, lambda x, weight: F.linear(x, weight), x=randn(2, 3, 4, 8), weight=randn(5, 8))
case("add_scalar_shape", "add", {}, lambda a, b: a + b, a=randn(4, 5), b=randn(1))
case("mul_rank0", "mul", {}, lambda a, b: a * b, a=randn(3, 2), b=randn(()))
case("div_same", "div", {}, lambda a, b: a / b, a=randn(3, 4), b=randn(3, 4).abs() + 0.5)
case("sum_all", "sum", {"dims": None, "keepdim": False}, lambda x: x.sum(), x=randn(3, 4, 5))
case("sum_neg_keep", "sum", {"dims": [-1, 0], "keepdim": True}, lambda x: x.sum((-1, 0), keepdim=True), x=randn(3, 4, 5))
case("mean_int_dim", "mean", {"dims": 1, "keepdim": False}, lambda x: x.mean(1), x=randn(2, 7, 3))
case("max_keepdim_last", "max", {"dim": -1, "keepdim": True}, lambda x: x.max(-1, keepdim=True).values, x=randn(4, 3, 6))
case("permute_5d", "permute", {"dims": [0, 4, 1, 3, 2]}, lambda x: x.permute(0, 4, 1, 3, 2), x=randn(2, 3, 2, 4, 5))
case("cat_last_neg", "cat", {"dim": -1}, lambda a, b: torch.cat([a, b], -1), a=randn(2, 3, 4), b=randn(2, 3, 1))
case("pad_reflect_3d", "pad", {"pad": [2, 1, 1, 2, 0, 1], "mode": "reflect"},
     lambda x: F.pad(x, [2, 1, 1, 2, 0, 1], mode="reflect"), x=randn(1, 2, 3, 4, 5))
case("pad_replicate_2d", "pad", {"pad": [3, 0, 1, 2], "mode": "replicate"},
     lambda x: F.pad(x, [3, 0, 1, 2], mode="replicate"), x=randn(2, 3, 4, 5))
case("pad_circular_1d", "pad", {"pad": [2, 3], "mode": "circular"},
     lambda x: F.pad(x, [2, 3], mode="circular"), x=randn(2, 3, 5))
case("pad_constant_crop", "pad", {"pad": [-1, 2, 1, -2], "mode": "constant", "value": 1.5},
     lambda x: F.pad(x, [-1, 2, 1, -2], value=1.5), x=randn(2, 4, 5))
case("roll_flat", "roll", {"shifts": 3, "dims": None}, lambda x: torch.roll(x, 3), x=randn(3, 4))
case("roll_three", "roll", {"shifts": [1, -3, 7], "dims": [0, 2, -1]},
     lambda x: torch.roll(x, (1, -3, 7), (0, 2, -1)), x=randn(2, 3, 4, 5))
case("conv2d_same_even", "conv2d", {"stride": 1, "padding": "same", "dilation": [1, 2], "groups": 1},
     lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=(1, 2)), x=randn(2, 3, 7, 8), w=randn(4, 3, 4, 3), b=randn(4))
case("conv3d_groups3_nobias", "conv3d", {"stride": [2, 1, 3], "padding": [0, 1, 2], "dilation": [1, 2, 1], "groups": 3},
     lambda x, w: F.conv3d(x, w, None, (2, 1, 3), (0, 1, 2), (1, 2, 1), 3), x=randn(3, 6, 5, 6, 7), w=randn(9, 2, 2, 3, 2))
case("conv3d_same_k2", "conv3d", {"stride": 1, "padding": "same", "dilation": 1, "groups": 1},
     lambda x, w, b: F.conv3d(x, w, b, padding="same"), x=randn(1, 2, 4, 5, 3), w=randn(3, 2, 2, 3, 2), b=randn(3))
case("conv_transpose3d_groups_dil", "conv_transpose3d",
     {"stride": [2, 1, 3], "padding": [1, 0, 2], "output_padding": [1, 0, 2], "dilation": [1, 2, 1], "groups": 2},
     lambda x, w, b: F.conv_transpose3d(x, w, b, (2, 1, 3), (1, 0, 2), (1, 0, 2), 2, (1, 2, 1)),
     x=randn(2, 4, 3, 4, 3), w=randn(4, 3, 3, 2, 3), b=randn(6))
case("conv_transpose2d_pad_nobias", "conv_transpose2d", {"stride": 3, "padding": 1, "output_padding": 2, "groups": 1},
     lambda x, w: F.conv_transpose2d(x, w, None, 3, 1, 2), x=randn(1, 3, 4, 5), w=randn(3, 2, 4, 3))
