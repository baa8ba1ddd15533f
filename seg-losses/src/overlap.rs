//! MONAI's `compute_tp_fp_fn`: soft true positives, false positives and false negatives of a
//! prediction `p` against a target `t`, summed over the reduced axes.

use seg_tensor::{Result, Tensor};

/// Soft confusion counts, each reduced over the same axes.
pub(crate) struct Overlap {
    pub tp: Tensor,
    pub fp: Tensor,
    pub fn_: Tensor,
}

/// How the counts are formed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverlapKind {
    /// 1: plain sums; 2: squared terms (`squared_pred`).
    pub ord: u8,
    /// MONAI's `soft_label`: use the norm form, exact for soft targets.
    pub soft_label: bool,
    /// Dice/Jaccard (`fp = sum p - tp`, `fn = sum t - tp`) rather than Tversky
    /// (`fp = sum p (1 - t)`, `fn = sum (1 - p) t`); only matters for the plain form.
    pub decoupled: bool,
}

/// With `ord == 1` and no `soft_label`: `tp = sum p t` and `fp`, `fn` as [`OverlapKind::decoupled`]
/// says. Otherwise MONAI's norm form: with `|v|_o^o = sum |v|^o`, `P = |p|_o^o`, `G = |t|_o^o`,
/// `D = |p - t|_o^o`, `tp = (P + G - D) / 2`, `fp = P - tp`, `fn = G - tp` (equal to the plain form
/// for binary targets).
pub(crate) fn overlap(p: &Tensor, t: &Tensor, axes: &[isize], kind: OverlapKind) -> Result<Overlap> {
    if kind.ord == 1 && !kind.soft_label {
        let tp = p.mul(t)?.sum(axes, false)?;
        let (fp, fn_) = if kind.decoupled {
            (p.sum(axes, false)?.sub(&tp)?, t.sum(axes, false)?.sub(&tp)?)
        } else {
            (
                p.mul(&t.affine(-1.0, 1.0)?)?.sum(axes, false)?,
                p.affine(-1.0, 1.0)?.mul(t)?.sum(axes, false)?,
            )
        };
        return Ok(Overlap { tp, fp, fn_ });
    }
    let power = |v: &Tensor| -> Result<Tensor> {
        if kind.ord == 1 {
            v.abs()?.sum(axes, false)
        } else {
            v.abs()?.powf(f64::from(kind.ord))?.sum(axes, false)
        }
    };
    let pred = power(p)?;
    let ground = power(t)?;
    let difference = power(&p.sub(t)?)?;
    let tp = pred.add(&ground)?.sub(&difference)?.mul_scalar(0.5)?;
    Ok(Overlap {
        fp: pred.sub(&tp)?,
        fn_: ground.sub(&tp)?,
        tp,
    })
}
