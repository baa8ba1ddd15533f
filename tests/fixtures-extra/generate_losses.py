#!/usr/bin/env python3
"""Extra conformance cases for the losses (dice_loss, generalized_dice_loss, dice_ce_loss,
dice_focal_loss, focal_loss, tversky_loss, soft_cldice_loss, soft_dice_cldice_loss, poly_dice_loss)
with shapes and parameters the shared fixtures do not cover: 2D and 3D, batch > 1, class weights,
label smoothing, reductions sum/none, jaccard, squared_pred, include_background=False, sigmoid
multi-label targets, soft labels, ignore_index, absent classes, one-channel predictions.

    pip install torch monai safetensors && python3 tests/fixtures-extra/generate_losses.py

Params are MONAI's constructor arguments; the target is an input without gradient (labels
(B, 1, ...) or a (multi-)label mask (B, C, ...)), only `grad.x` is checked.
"""
import torch

import monai.losses as L
from fixturegen import case, gen, randn


def labels(shape, classes):
    return torch.randint(0, classes, shape, generator=gen).double()


def mask(shape, p=0.4):
    return (torch.rand(shape, generator=gen) < p).double()


def loss_case(name, op, params, make, x, target, tol="1e-5"):
    """A case of `make(**params)(x, target)`, differentiated in x only."""
    loss = make(**params)
    case(name, op, params, lambda x, target: loss(x, target.detach()), tol=tol, x=x, target=target)


def poly_dice(softmax=False, sigmoid=False, to_onehot_y=False, include_background=True, epsilon=1.0,
              order=None, smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    """PolyDice: D per (batch, class) as MONAI DiceLoss; mean(-ln D + eps (1 - D)), or the series
    sum_{j<=order} (1 - D)^j / j in place of -ln D."""
    dice = L.DiceLoss(softmax=softmax, sigmoid=sigmoid, to_onehot_y=to_onehot_y, batch=batch,
                      include_background=include_background, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                      reduction="none")

    def f(x, target):
        miss = dice(x, target)
        series = -torch.log(1 - miss) if order is None else sum(miss ** j / j for j in range(1, order + 1))
        return (series + epsilon * miss).mean()
    return f


# Dice
loss_case("dice_2d_sigmoid_multilabel_sum", "dice_loss", {"sigmoid": True, "reduction": "sum"},
          L.DiceLoss, randn(3, 2, 7, 6), mask((3, 2, 7, 6)))
loss_case("dice_3d_weight_nobg", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "include_background": False, "weight": [0.3, 1.7]},
          L.DiceLoss, randn(3, 3, 4, 5, 3), labels((3, 1, 4, 5, 3), 3))
loss_case("dice_2d_jaccard_squared_none", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "squared_pred": True, "jaccard": True, "reduction": "none"},
          L.DiceLoss, randn(2, 4, 6, 5), labels((2, 1, 6, 5), 4))
loss_case("dice_batch_none_scalar_weight", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "batch": True, "reduction": "none", "weight": 2.0,
           "smooth_nr": 0.0, "smooth_dr": 1e-3},
          L.DiceLoss, randn(2, 3, 5, 4, 3), labels((2, 1, 5, 4, 3), 3))
loss_case("dice_ignore_index_class", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "ignore_index": 2},
          L.DiceLoss, randn(2, 3, 6, 5), labels((2, 1, 6, 5), 3))
ignored = labels((2, 1, 4, 5, 3), 3)
ignored[ignored == 2] = 255
loss_case("dice_ignore_index_sentinel", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "ignore_index": 255, "include_background": False},
          L.DiceLoss, randn(2, 3, 4, 5, 3), ignored)
loss_case("dice_soft_label_sigmoid", "dice_loss", {"sigmoid": True, "soft_label": True, "squared_pred": True},
          L.DiceLoss, randn(2, 2, 5, 6), torch.rand((2, 2, 5, 6), generator=gen).double())

# Generalized Dice: an absent class has an infinite weight, replaced by the largest finite one.
absent = labels((3, 1, 6, 5), 2)
absent[1] = 0
loss_case("generalized_dice_2d_absent_class_simple_sum", "generalized_dice_loss",
          {"softmax": True, "to_onehot_y": True, "w_type": "simple", "reduction": "sum"},
          L.GeneralizedDiceLoss, randn(3, 3, 6, 5), absent)
absent3 = labels((2, 1, 4, 3, 5), 3)
absent3[absent3 == 1] = 2
loss_case("generalized_dice_batch_square_none", "generalized_dice_loss",
          {"softmax": True, "to_onehot_y": True, "batch": True, "reduction": "none"},
          L.GeneralizedDiceLoss, randn(2, 4, 4, 3, 5), absent3)
loss_case("generalized_dice_sigmoid_nobg", "generalized_dice_loss",
          {"sigmoid": True, "include_background": False, "w_type": "square"},
          L.GeneralizedDiceLoss, randn(2, 3, 5, 6), mask((2, 3, 5, 6)))

# Focal
loss_case("focal_softmax_alpha_weight_nobg_sum", "focal_loss",
          {"to_onehot_y": True, "use_softmax": True, "include_background": False, "alpha": [0.6, 0.4],
           "weight": [1.5, 0.5], "gamma": 1.5, "reduction": "sum"},
          L.FocalLoss, randn(2, 3, 5, 4, 3), labels((2, 1, 5, 4, 3), 3))
loss_case("focal_sigmoid_multilabel_alpha_list_none", "focal_loss",
          {"alpha": [0.2, 0.7, 0.5], "gamma": 0.5, "reduction": "none"},
          L.FocalLoss, randn(2, 3, 6, 5), mask((2, 3, 6, 5)))
loss_case("focal_softmax_scalar_alpha_weight", "focal_loss",
          {"to_onehot_y": True, "use_softmax": True, "alpha": 0.25, "weight": 0.7, "gamma": 2.5},
          L.FocalLoss, randn(3, 4, 5, 6), labels((3, 1, 5, 6), 4))
loss_case("focal_ignore_index_mean", "focal_loss", {"to_onehot_y": True, "ignore_index": 1},
          L.FocalLoss, randn(2, 3, 4, 5, 3), labels((2, 1, 4, 5, 3), 3))
loss_case("focal_ignore_index_sum_softmax", "focal_loss",
          {"to_onehot_y": True, "use_softmax": True, "ignore_index": 0, "reduction": "sum"},
          L.FocalLoss, randn(2, 3, 6, 4), labels((2, 1, 6, 4), 3))

# Dice + cross-entropy
loss_case("dice_ce_2d_weight_smoothing_nobg", "dice_ce_loss",
          {"softmax": True, "to_onehot_y": True, "include_background": False, "weight": [0.5, 1.0, 2.0],
           "label_smoothing": 0.1, "lambda_dice": 0.7, "lambda_ce": 1.3},
          lambda weight=None, **kw: L.DiceCELoss(weight=torch.tensor(weight, dtype=torch.float64), **kw),
          randn(3, 3, 6, 5), labels((3, 1, 6, 5), 3))
loss_case("dice_ce_onehot_target_weight_sum", "dice_ce_loss",
          {"softmax": True, "weight": [2.0, 0.5, 1.0, 1.5], "reduction": "sum", "label_smoothing": 0.2,
           "jaccard": True},
          lambda weight=None, **kw: L.DiceCELoss(weight=torch.tensor(weight, dtype=torch.float64), **kw),
          randn(2, 4, 4, 3, 3),
          torch.nn.functional.one_hot(labels((2, 4, 3, 3), 4).long(), 4).permute(0, 4, 1, 2, 3).double())
loss_case("dice_ce_single_channel_bce", "dice_ce_loss",
          {"sigmoid": True, "weight": [2.5], "squared_pred": True},
          lambda weight=None, **kw: L.DiceCELoss(weight=torch.tensor(weight, dtype=torch.float64), **kw),
          randn(3, 1, 5, 6), mask((3, 1, 5, 6)))

# Dice + focal (the focal part is sigmoid focal on the logits)
loss_case("dice_focal_2d_weight_alpha", "dice_focal_loss",
          {"softmax": True, "to_onehot_y": True, "weight": [0.5, 1.0, 1.5], "alpha": 0.3, "gamma": 1.0,
           "lambda_focal": 2.0, "lambda_dice": 0.5},
          L.DiceFocalLoss, randn(2, 3, 6, 5), labels((2, 1, 6, 5), 3))
loss_case("dice_focal_sigmoid_nobg_sum", "dice_focal_loss",
          {"sigmoid": True, "include_background": False, "reduction": "sum", "batch": True},
          L.DiceFocalLoss, randn(2, 3, 4, 3, 5), mask((2, 3, 4, 3, 5)))

# Tversky
loss_case("tversky_2d_batch_nobg_none", "tversky_loss",
          {"softmax": True, "to_onehot_y": True, "include_background": False, "alpha": 0.7, "beta": 0.3,
           "batch": True, "reduction": "none"},
          L.TverskyLoss, randn(3, 4, 5, 6), labels((3, 1, 5, 6), 4))
loss_case("tversky_sigmoid_soft_label_sum", "tversky_loss",
          {"sigmoid": True, "soft_label": True, "alpha": 0.4, "beta": 0.9, "reduction": "sum", "smooth_nr": 0.5},
          L.TverskyLoss, randn(2, 2, 4, 3, 4), torch.rand((2, 2, 4, 3, 4), generator=gen).double())
loss_case("tversky_ignore_index", "tversky_loss",
          {"softmax": True, "to_onehot_y": True, "ignore_index": 1},
          L.TverskyLoss, randn(2, 3, 5, 4), labels((2, 1, 5, 4), 3))

# clDice
loss_case("soft_cldice_2d_sigmoid_none", "soft_cldice_loss",
          {"iter_": 2, "sigmoid": True, "reduction": "none"},
          L.SoftclDiceLoss, randn(3, 2, 9, 8), mask((3, 2, 9, 8), 0.5), tol="1e-4")
loss_case("soft_cldice_3d_nobg_iter0", "soft_cldice_loss",
          {"iter_": 0, "softmax": True, "to_onehot_y": True, "include_background": False, "smooth": 1e-3},
          L.SoftclDiceLoss, randn(2, 3, 5, 6, 4), labels((2, 1, 5, 6, 4), 3), tol="1e-4")
loss_case("soft_dice_cldice_3d_nobg_sum", "soft_dice_cldice_loss",
          {"iter_": 1, "alpha": 0.3, "softmax": True, "to_onehot_y": True, "include_background": False,
           "reduction": "sum", "smooth_nr": 0.5, "smooth_dr": 2.0},
          L.SoftDiceclDiceLoss, randn(2, 3, 6, 5, 4), labels((2, 1, 6, 5, 4), 3), tol="1e-4")
loss_case("soft_dice_cldice_2d_sigmoid", "soft_dice_cldice_loss",
          {"iter_": 4, "alpha": 0.8, "sigmoid": True},
          L.SoftDiceclDiceLoss, randn(2, 1, 10, 9), mask((2, 1, 10, 9), 0.5), tol="1e-4")

# PolyDice
loss_case("poly_dice_2d_sigmoid_order2", "poly_dice_loss",
          {"sigmoid": True, "epsilon": 2.0, "order": 2},
          poly_dice, randn(3, 2, 6, 5), mask((3, 2, 6, 5)))
loss_case("poly_dice_3d_nobg_log", "poly_dice_loss",
          {"softmax": True, "to_onehot_y": True, "include_background": False, "epsilon": 0.0, "order": None},
          poly_dice, randn(2, 4, 4, 5, 3), labels((2, 1, 4, 5, 3), 4))
loss_case("poly_dice_order1_smooth", "poly_dice_loss",
          {"softmax": True, "to_onehot_y": True, "epsilon": -0.5, "order": 1, "smooth_nr": 1.0, "smooth_dr": 1.0},
          poly_dice, randn(2, 3, 5, 5, 2), labels((2, 1, 5, 5, 2), 3))

# What MONAI only warns about: softmax, to_onehot_y and include_background=False on one channel are skipped.
loss_case("dice_single_channel_warnings", "dice_loss",
          {"softmax": True, "to_onehot_y": True, "include_background": False},
          L.DiceLoss, torch.rand((2, 1, 5, 6), generator=gen).double(), mask((2, 1, 5, 6)))
loss_case("focal_single_channel_warnings", "focal_loss",
          {"to_onehot_y": True, "include_background": False, "gamma": 1.0, "alpha": 0.75},
          L.FocalLoss, randn(2, 1, 4, 3, 5), mask((2, 1, 4, 3, 5)))
