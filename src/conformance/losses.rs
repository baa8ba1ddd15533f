//! The conformance runner's loss ops: MONAI's constructor arguments (the fixture's params) to the
//! `seg_losses` structs, applied to inputs `x` (logits) and `target`.

use seg_losses::{
    ClassWeight, DiceCELoss, DiceFocalLoss, DiceLoss, FocalLoss, GeneralizedDiceLoss, PolyDiceLoss, Reduction,
    SoftDiceclDiceLoss, SoftclDiceLoss, TverskyLoss,
};
use serde_json::Value;

use super::ops::{input, Tensors};
use super::Params;
use crate::{Error, Result, Tensor};

/// A number (one value for every class) or a list of numbers (one per class); `None` when absent.
fn class_weight(p: &Params, key: &str) -> Result<Option<ClassWeight>> {
    let bad = |v: &Value| Params::bad(key, "a number or a list of numbers", v);
    match p.0.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| bad(v)))
            .collect::<Result<Vec<_>>>()
            .map(|w| Some(ClassWeight::PerClass(w))),
        Some(v) => v.as_f64().map(|w| Some(ClassWeight::Scalar(w))).ok_or_else(|| bad(v)),
    }
}

/// A list of per-class numbers (a single number counts as a list of one), `None` when absent.
fn per_class(p: &Params, key: &str) -> Result<Option<Vec<f64>>> {
    Ok(class_weight(p, key)?.map(|w| match w {
        ClassWeight::Scalar(v) => vec![v],
        ClassWeight::PerClass(vs) => vs,
    }))
}

fn ignore_index(p: &Params) -> Result<Option<i64>> {
    Ok(p.int("ignore_index")?.map(|i| i as i64))
}

fn reduction(p: &Params) -> Result<Reduction> {
    p.str_or("reduction", "mean")?.parse()
}

fn count(p: &Params, key: &str, default: usize) -> Result<usize> {
    match p.int(key)? {
        None => Ok(default),
        Some(n) => usize::try_from(n).map_err(|_| Error::invalid("conformance", format!("negative {key} {n}"))),
    }
}

/// The arguments every MONAI segmentation loss shares, read from `p` with `defaults` where absent.
struct Common {
    include_background: bool,
    to_onehot_y: bool,
    sigmoid: bool,
    softmax: bool,
    smooth_nr: f64,
    smooth_dr: f64,
    batch: bool,
    reduction: Reduction,
}

impl Common {
    fn read(p: &Params, smooth_default: f64) -> Result<Self> {
        if p.has("other_act") {
            return Err(Error::invalid(
                "conformance",
                "other_act cannot be given as a fixture parameter",
            ));
        }
        Ok(Self {
            include_background: p.bool_or("include_background", true)?,
            to_onehot_y: p.bool_or("to_onehot_y", false)?,
            sigmoid: p.bool_or("sigmoid", false)?,
            softmax: p.bool_or("softmax", false)?,
            smooth_nr: p.f64_or("smooth_nr", smooth_default)?,
            smooth_dr: p.f64_or("smooth_dr", smooth_default)?,
            batch: p.bool_or("batch", false)?,
            reduction: reduction(p)?,
        })
    }
}

/// MONAI's `DiceLoss` arguments; the Dice term of the compound losses.
fn dice_loss(p: &Params) -> Result<DiceLoss> {
    let c = Common::read(p, 1e-5)?;
    Ok(DiceLoss {
        include_background: c.include_background,
        to_onehot_y: c.to_onehot_y,
        sigmoid: c.sigmoid,
        softmax: c.softmax,
        other_act: None,
        squared_pred: p.bool_or("squared_pred", false)?,
        jaccard: p.bool_or("jaccard", false)?,
        reduction: c.reduction,
        smooth_nr: c.smooth_nr,
        smooth_dr: c.smooth_dr,
        batch: c.batch,
        weight: class_weight(p, "weight")?,
        soft_label: p.bool_or("soft_label", false)?,
        ignore_index: ignore_index(p)?,
    })
}

/// The Dice term of `DiceCELoss` and `DiceFocalLoss`, whose `weight` they take themselves.
fn unweighted_dice_loss(p: &Params) -> Result<DiceLoss> {
    Ok(DiceLoss {
        weight: None,
        ..dice_loss(p)?
    })
}

/// MONAI's `SoftclDiceLoss` arguments; the clDice term of `SoftDiceclDiceLoss`.
fn cldice_loss(p: &Params) -> Result<SoftclDiceLoss> {
    let c = Common::read(p, 1.0)?;
    Ok(SoftclDiceLoss {
        iter_: count(p, "iter_", 3)?,
        smooth_nr: c.smooth_nr,
        smooth_dr: c.smooth_dr,
        smooth: p.f64_or("smooth", 1e-4)?,
        include_background: c.include_background,
        to_onehot_y: c.to_onehot_y,
        sigmoid: c.sigmoid,
        softmax: c.softmax,
        other_act: None,
        reduction: c.reduction,
    })
}

/// The loss `op` of `x` against `target` with MONAI's arguments `p`; `None` when `op` is no loss.
pub(super) fn forward(op: &str, p: &Params, inputs: &Tensors) -> Result<Option<Tensor>> {
    let (x, target) = (|| input(inputs, "x"), || input(inputs, "target"));
    let y = match op {
        "dice_loss" => dice_loss(p)?.forward(x()?, target()?)?,
        "generalized_dice_loss" => {
            let c = Common::read(p, 1e-5)?;
            GeneralizedDiceLoss {
                include_background: c.include_background,
                to_onehot_y: c.to_onehot_y,
                sigmoid: c.sigmoid,
                softmax: c.softmax,
                other_act: None,
                w_type: p.str_or("w_type", "square")?.parse()?,
                reduction: c.reduction,
                smooth_nr: c.smooth_nr,
                smooth_dr: c.smooth_dr,
                batch: c.batch,
                soft_label: p.bool_or("soft_label", false)?,
            }
            .forward(x()?, target()?)?
        }
        "tversky_loss" => {
            let c = Common::read(p, 1e-5)?;
            TverskyLoss {
                include_background: c.include_background,
                to_onehot_y: c.to_onehot_y,
                sigmoid: c.sigmoid,
                softmax: c.softmax,
                other_act: None,
                alpha: p.f64_or("alpha", 0.5)?,
                beta: p.f64_or("beta", 0.5)?,
                reduction: c.reduction,
                smooth_nr: c.smooth_nr,
                smooth_dr: c.smooth_dr,
                batch: c.batch,
                soft_label: p.bool_or("soft_label", false)?,
                ignore_index: ignore_index(p)?,
            }
            .forward(x()?, target()?)?
        }
        "focal_loss" => FocalLoss {
            include_background: p.bool_or("include_background", true)?,
            to_onehot_y: p.bool_or("to_onehot_y", false)?,
            gamma: p.f64_or("gamma", 2.0)?,
            alpha: class_weight(p, "alpha")?,
            weight: class_weight(p, "weight")?,
            reduction: reduction(p)?,
            use_softmax: p.bool_or("use_softmax", false)?,
            ignore_index: ignore_index(p)?,
        }
        .forward(x()?, target()?)?,
        "dice_ce_loss" => DiceCELoss {
            dice: unweighted_dice_loss(p)?,
            weight: per_class(p, "weight")?,
            lambda_dice: p.f64_or("lambda_dice", 1.0)?,
            lambda_ce: p.f64_or("lambda_ce", 1.0)?,
            label_smoothing: p.f64_or("label_smoothing", 0.0)?,
        }
        .forward(x()?, target()?)?,
        "dice_focal_loss" => DiceFocalLoss {
            dice: unweighted_dice_loss(p)?,
            gamma: p.f64_or("gamma", 2.0)?,
            weight: class_weight(p, "weight")?,
            lambda_dice: p.f64_or("lambda_dice", 1.0)?,
            lambda_focal: p.f64_or("lambda_focal", 1.0)?,
            alpha: p.has("alpha").then(|| p.f64_or("alpha", 0.0)).transpose()?,
        }
        .forward(x()?, target()?)?,
        "soft_cldice_loss" => cldice_loss(p)?.forward(x()?, target()?)?,
        "soft_dice_cldice_loss" => SoftDiceclDiceLoss {
            cldice: cldice_loss(p)?,
            alpha: p.f64_or("alpha", 0.5)?,
        }
        .forward(x()?, target()?)?,
        "poly_dice_loss" => PolyDiceLoss {
            dice: dice_loss(p)?,
            epsilon: p.f64_or("epsilon", 1.0)?,
            order: p.has("order").then(|| count(p, "order", 1)).transpose()?,
        }
        .forward(x()?, target()?)?,
        _ => return Ok(None),
    };
    Ok(Some(y))
}
