//! The steps MONAI's segmentation losses take before their formula, in MONAI's order: the activation
//! (`sigmoid`, `softmax`, `other_act`), `to_onehot_y`, `include_background`, the `ignore_index`
//! mask, and the shape check.
//!
//! Every loss also rejects a NaN or an infinity in its input or target ([`expect_finite`]) rather
//! than letting it propagate into the loss value.
//!
//! Where MONAI only warns (a single-channel prediction with `softmax`, `to_onehot_y` or
//! `include_background=False`), the step is skipped as in MONAI, silently.

use rayon::prelude::*;
use seg_tensor::{no_grad, with_element, DType, Device, Element, Error, Result, Tensor};

use crate::options::Activation;
use crate::DiceLoss;

/// How logits become probabilities: MONAI's `sigmoid`, `softmax` and `other_act`, applied in that
/// order (at most one may be set).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Act {
    pub sigmoid: bool,
    pub softmax: bool,
    pub other_act: Option<Activation>,
}

impl Act {
    /// The activated prediction `(B, C, ...)`; softmax is along the channels and skipped for one channel.
    pub fn apply(&self, op: &'static str, input: &Tensor) -> Result<Tensor> {
        if usize::from(self.sigmoid) + usize::from(self.softmax) + usize::from(self.other_act.is_some()) > 1 {
            return Err(Error::invalid(
                op,
                "incompatible values: more than 1 of [sigmoid=true, softmax=true, other_act is set]",
            ));
        }
        let mut x = input.clone();
        if self.sigmoid {
            x = x.sigmoid()?;
        }
        if self.softmax && x.shape()[1] > 1 {
            x = x.softmax(1)?;
        }
        if let Some(act) = self.other_act {
            x = act(&x)?;
        }
        Ok(x)
    }
}

/// The channel handling shared by the losses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prepare {
    pub op: &'static str,
    pub act: Act,
    pub to_onehot_y: bool,
    pub include_background: bool,
    pub ignore_index: Option<i64>,
}

/// Prediction and target after [`Prepare::run`], of equal shape `(B, C', ...)`.
pub(crate) struct Prepared {
    pub input: Tensor,
    pub target: Tensor,
    /// MONAI's `create_ignore_mask` of the original target, `(B, 1, ...)` (1 = counted), when
    /// `ignore_index` is set; input and target are already multiplied by it.
    pub mask: Option<Tensor>,
}

impl Prepare {
    /// Activation, `to_onehot_y`, `include_background`, ignore mask, then the shape check.
    pub fn run(&self, input: &Tensor, target: &Tensor) -> Result<Prepared> {
        let op = self.op;
        expect_batched(op, input)?;
        expect_finite(op, input, target)?;
        let target = as_float_like(target, input)?;
        let input = self.act.apply(op, input)?;
        let classes = input.shape()[1];
        let mut y = target.clone();
        if self.to_onehot_y && classes > 1 {
            if let Some(ii) = self.ignore_index.filter(|&ii| ii < 0 || ii >= classes as i64) {
                // An out-of-range ignore label becomes background before the one-hot conversion.
                y = y.eq(&scalar_like(ii as f64, &y)?)?.where_(&scalar_like(0.0, &y)?, &y)?;
            }
            y = one_hot(op, &y, classes)?;
        }
        let (mut input, mut y) = if !self.include_background && classes > 1 {
            (without_background(&input)?, without_background(&y)?)
        } else {
            (input, y)
        };
        let mask = self.ignore_index.map(|ii| ignore_mask(&target, ii)).transpose()?;
        if y.shape() != input.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("a ground truth of the prediction's shape {:?}", input.shape()),
                found: y.shape().to_vec(),
            });
        }
        if let Some(m) = &mask {
            input = input.mul(m)?;
            y = y.mul(m)?;
        }
        Ok(Prepared { input, target: y, mask })
    }
}

/// Fails unless `input` is `(B, C, ...)` with at least one channel.
pub(crate) fn expect_batched(op: &'static str, input: &Tensor) -> Result<()> {
    if input.rank() < 2 || input.shape()[1] == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "a prediction (B, C, spatial...) with C >= 1".into(),
            found: input.shape().to_vec(),
        });
    }
    Ok(())
}

/// Fails unless `input` is `(B, C, spatial...)` with at least one spatial axis, as MONAI's overlap
/// losses document (`BNH[WD]`): their sums run over the spatial axes.
pub(crate) fn expect_spatial(op: &'static str, input: &Tensor) -> Result<()> {
    if input.rank() < 3 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "a prediction (B, C, spatial...) with at least one spatial axis".into(),
            found: input.shape().to_vec(),
        });
    }
    Ok(())
}

/// Fails when the prediction or the target holds a NaN or an infinity, naming the first one found.
/// One read-only pass over each float tensor (threaded over blocks, branch-free within a block);
/// integer labels are finite by construction and are not read.
pub(crate) fn expect_finite(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    for (name, t) in [("prediction", input), ("target", target)] {
        if let Some((index, value)) = first_non_finite(t)? {
            return Err(Error::invalid(
                op,
                format!(
                    "expected a finite {name}, found {value} at flat index {index} of shape {:?}",
                    t.shape()
                ),
            ));
        }
    }
    Ok(())
}

/// The flat index and value of the first NaN or infinity of `t`, if any. On a GPU one reduction
/// there decides (`sum(0 x)` is NaN exactly when some `x` is not finite), and only a tensor that
/// fails it is read back to find the element.
fn first_non_finite(t: &Tensor) -> Result<Option<(usize, f64)>> {
    const BLOCK: usize = 1 << 14;
    if !t.dtype().is_float() {
        return Ok(None);
    }
    if t.device() != Device::Cpu && no_grad(|| t.detach().mul_scalar(0.0)?.sum_all()?.item())?.is_finite() {
        return Ok(None);
    }
    with_element!(t.dtype(), T => {
        let values = t.values::<T>()?;
        let all_finite = |block: &[T]| block.iter().fold(true, |ok, x| ok & x.as_f64().is_finite());
        Ok(values.par_chunks(BLOCK).position_first(|block| !all_finite(block)).and_then(|b| {
            let block = &values[b * BLOCK..];
            let i = block.iter().position(|x| !x.as_f64().is_finite())?;
            Some((b * BLOCK + i, block[i].as_f64()))
        }))
    })
}

/// `target` in `input`'s float dtype (labels may come as integers).
pub(crate) fn as_float_like(target: &Tensor, input: &Tensor) -> Result<Tensor> {
    target.to_dtype(input.dtype())
}

/// A rank-0 tensor holding `value` in `like`'s dtype, on `like`'s device.
pub(crate) fn scalar_like(value: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::full_on(&[], value, like.dtype(), like.device())
}

/// MONAI's `one_hot(labels, num_classes)`: labels `(B, 1, ...)` (truncated to integers, as
/// `labels.long()`) to `(B, classes, ...)` with a 1 in each label's channel.
pub(crate) fn one_hot(op: &'static str, labels: &Tensor, classes: usize) -> Result<Tensor> {
    if labels.rank() < 2 || labels.shape()[1] != 1 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "labels (B, 1, spatial...) for to_onehot_y".into(),
            found: labels.shape().to_vec(),
        });
    }
    let dtype = labels.dtype();
    let encoded = labels.squeeze(1)?.to_dtype(DType::I64)?.one_hot(Some(classes), dtype)?;
    // one_hot appends the class axis; move it to axis 1.
    let rank = encoded.rank() as isize;
    let order: Vec<isize> = std::iter::once(0)
        .chain(std::iter::once(rank - 1))
        .chain(1..rank - 1)
        .collect();
    encoded.permute(&order)?.contiguous()
}

/// Channels `1..C` of `(B, C, ...)`.
pub(crate) fn without_background(t: &Tensor) -> Result<Tensor> {
    t.narrow(1, 1, t.shape()[1] - 1)
}

/// MONAI's `create_ignore_mask(y, ignore_index)`, `(B, 1, ...)`, 1 where a voxel counts: for labels
/// `(B, 1, ...)` `y != ignore_index`; for one-hot `y` and a valid class `1 - y[:, ignore_index]`; for
/// one-hot `y` and any other index, 1 where some channel is set.
pub(crate) fn ignore_mask(y: &Tensor, ignore_index: i64) -> Result<Tensor> {
    let classes = y.shape()[1];
    let dtype = y.dtype();
    if classes == 1 {
        return y.ne(&scalar_like(ignore_index as f64, y)?)?.to_dtype(dtype);
    }
    if (0..classes as i64).contains(&ignore_index) {
        return y.narrow(1, ignore_index as usize, 1)?.affine(-1.0, 1.0);
    }
    y.sum(&[1], true)?.gt(&scalar_like(0.0, y)?)?.to_dtype(dtype)
}

/// The spatial axes `2..rank`, with the batch axis 0 first when `batch`.
pub(crate) fn reduce_axes(rank: usize, batch: bool) -> Vec<isize> {
    let mut axes: Vec<isize> = (2..rank as isize).collect();
    if batch {
        axes.insert(0, 0);
    }
    axes
}

/// MONAI's check that a loss weight is not negative.
pub(crate) fn non_negative_lambda(op: &'static str, name: &str, value: f64) -> Result<()> {
    if value < 0.0 {
        return Err(Error::invalid(
            op,
            format!("{name} should be no less than 0.0, found {value}"),
        ));
    }
    Ok(())
}

/// MONAI's checks of the compound losses: `input` and `target` of equal rank, and the target with 1
/// or the prediction's channel count. (Their terms check that the values are finite.)
pub(crate) fn expect_target_channels(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    expect_batched(op, input)?;
    if input.rank() != target.rank() {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!(
                "a target of rank {} like the prediction {:?} (labels as (B, 1, spatial...))",
                input.rank(),
                input.shape()
            ),
            found: target.shape().to_vec(),
        });
    }
    let (c, ct) = (input.shape()[1], target.shape()[1]);
    if ct != 1 && ct != c {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("a target with 1 or {c} channels"),
            found: target.shape().to_vec(),
        });
    }
    Ok(())
}

/// The compound losses' target: checked by [`expect_target_channels`] and [`expect_finite`], then
/// made one-hot up front when `to_onehot_y` and the prediction has more than one channel (MONAI's
/// `DiceFocalLoss`, `SoftDiceclDiceLoss`), so that both terms see the same target.
pub(crate) fn onehot_target_first(
    op: &'static str,
    input: &Tensor,
    target: &Tensor,
    to_onehot_y: bool,
) -> Result<Tensor> {
    expect_target_channels(op, input, target)?;
    expect_finite(op, input, target)?;
    let classes = input.shape()[1];
    if to_onehot_y && classes > 1 {
        one_hot(op, &target.to_dtype(input.dtype())?, classes)
    } else {
        Ok(target.clone())
    }
}

/// Fails when the Dice term `dice` of the compound loss `op` was given class weights, which `op` takes
/// elsewhere or not at all (`hint` says which).
pub(crate) fn expect_no_dice_weight(op: &'static str, dice: &DiceLoss, hint: &str) -> Result<()> {
    match dice.weight {
        Some(_) => Err(Error::invalid(
            op,
            format!("dice.weight must be None, found a weight ({hint})"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_moves_classes_to_axis_one() {
        let labels = Tensor::from_vec(vec![0.0f32, 2.0, 1.0, 2.0], &[1, 1, 2, 2]).unwrap();
        let y = one_hot("test", &labels, 3).unwrap();
        assert_eq!(y.shape(), &[1, 3, 2, 2]);
        assert_eq!(
            y.to_vec::<f32>().unwrap(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn one_hot_rejects_several_channels_and_bad_labels() {
        let two = Tensor::zeros(&[1, 2, 3], DType::F32);
        assert!(one_hot("test", &two, 3).unwrap_err().to_string().contains("(B, 1"));
        let bad = Tensor::full(&[1, 1, 2], 3.0, DType::F32);
        assert!(one_hot("test", &bad, 3).is_err());
    }

    #[test]
    fn ignore_mask_covers_labels_valid_index_and_sentinel() {
        let labels = Tensor::from_vec(vec![0.0f32, 1.0, 2.0], &[1, 1, 3]).unwrap();
        assert_eq!(
            ignore_mask(&labels, 1).unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 0.0, 1.0]
        );
        let onehot = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0], &[1, 2, 3]).unwrap();
        assert_eq!(
            ignore_mask(&onehot, 1).unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 0.0, 1.0]
        );
        assert_eq!(
            ignore_mask(&onehot, 255).unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 1.0, 0.0]
        );
    }

    #[test]
    fn non_finite_values_are_found_first_in_order() {
        let n = 3 << 14;
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 5, (1 << 14) + 7, n - 1] {
                let mut v = vec![0.5f64; n];
                v[at] = bad;
                v[n - 1] = if at == n - 1 { bad } else { f64::NAN };
                let t = Tensor::from_vec(v, &[n]).unwrap();
                let (i, value) = first_non_finite(&t).unwrap().unwrap();
                assert_eq!(i, at);
                assert_eq!(value.is_nan(), bad.is_nan());
                let half = t.to_dtype(DType::F16).unwrap();
                assert_eq!(first_non_finite(&half).unwrap().unwrap().0, at);
            }
        }
        let fine = Tensor::rand(&[4, 5], 0, DType::F32).unwrap();
        assert_eq!(first_non_finite(&fine).unwrap(), None);
        assert_eq!(first_non_finite(&Tensor::zeros(&[3], DType::I64)).unwrap(), None);
        // A strided view is read in row-major order.
        let m = Tensor::from_vec(vec![1.0f32, 2.0, f32::NAN, 4.0], &[2, 2]).unwrap();
        let (i, _) = first_non_finite(&m.transpose(0, 1).unwrap()).unwrap().unwrap();
        assert_eq!(i, 1);
    }

    #[test]
    fn expect_finite_names_the_op_and_the_tensor() {
        let x = Tensor::zeros(&[1, 2, 3], DType::F32);
        let bad = Tensor::from_vec(vec![0.0f32, 1.0, f32::INFINITY], &[1, 1, 3]).unwrap();
        assert!(expect_finite("Loss", &x, &x).is_ok());
        let msg = expect_finite("Loss", &x, &bad).unwrap_err().to_string();
        assert!(msg.contains("Loss") && msg.contains("finite target") && msg.contains("inf at flat index 2"));
    }

    #[test]
    fn reduce_axes_are_spatial_then_batch() {
        assert_eq!(reduce_axes(5, false), vec![2, 3, 4]);
        assert_eq!(reduce_axes(4, true), vec![0, 2, 3]);
    }

    #[test]
    fn two_activations_are_an_error() {
        let act = Act {
            sigmoid: true,
            softmax: true,
            other_act: None,
        };
        let x = Tensor::zeros(&[1, 2, 2], DType::F32);
        assert!(act.apply("test", &x).unwrap_err().to_string().contains("more than 1"));
    }
}
