//! The argument types the losses share: MONAI's `reduction`, per-class weights, and the `other_act`
//! callable.

use std::str::FromStr;

use seg_tensor::{Error, Result, Tensor};

/// MONAI's `other_act`: a function applied to the prediction after `sigmoid`/`softmax`, e.g.
/// `Some(Tensor::tanh)`.
pub type Activation = fn(&Tensor) -> Result<Tensor>;

/// MONAI's `LossReduction`: how per-element (or per batch and class) losses become the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean of all values (MONAI's default).
    #[default]
    Mean,
    /// The sum of all values.
    Sum,
    /// No reduction; each loss documents the shape it keeps.
    None,
}

impl FromStr for Reduction {
    type Err = Error;

    /// `"mean"`, `"sum"` or `"none"`, as MONAI spells them.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "none" => Ok(Reduction::None),
            other => Err(Error::invalid(
                "reduction",
                format!("expected \"mean\", \"sum\" or \"none\", found {other:?}"),
            )),
        }
    }
}

impl Reduction {
    /// `mean(x)` or `sum(x)` over all elements; `None` returns `x` unchanged.
    pub(crate) fn reduce_all(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Reduction::Mean => x.mean_all(),
            Reduction::Sum => x.sum_all(),
            Reduction::None => Ok(x.clone()),
        }
    }

    /// As [`Reduction::reduce_all`], but `None` keeps the first two axes of `f` (batch and class, or
    /// the one axis it has) and appends `rank - 2` axes of size 1: MONAI's broadcastable `(B, C, 1, ...)`.
    pub(crate) fn reduce_keeping_rank(self, f: &Tensor, rank: usize) -> Result<Tensor> {
        match self {
            Reduction::None => {
                let mut shape: Vec<usize> = f.shape().iter().take(2).copied().collect();
                shape.resize(shape.len() + rank - 2, 1);
                f.reshape(&shape)
            }
            r => r.reduce_all(f),
        }
    }
}

/// A per-class factor as MONAI accepts it (`weight`, `alpha`): one number for every class, or one
/// number per class.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassWeight {
    /// The same value for every class (a Python `float`).
    Scalar(f64),
    /// One value per class, in channel order (a Python sequence or 1-D tensor).
    PerClass(Vec<f64>),
}

impl ClassWeight {
    /// The values for `classes` channels: a scalar repeated, or the per-class list when its length is
    /// `classes` (else an error naming `what` and both lengths).
    pub(crate) fn values(&self, op: &'static str, what: &str, classes: usize) -> Result<Vec<f64>> {
        match self {
            ClassWeight::Scalar(w) => Ok(vec![*w; classes]),
            ClassWeight::PerClass(ws) if ws.len() == classes => Ok(ws.clone()),
            ClassWeight::PerClass(ws) => Err(Error::invalid(
                op,
                format!(
                    "{what} has {} values, expected one per class: {classes} (with include_background=false, \
                     leave out the background class)",
                    ws.len()
                ),
            )),
        }
    }

    /// Fails when any value is negative.
    pub(crate) fn expect_non_negative(&self, op: &'static str, what: &str) -> Result<()> {
        let values = match self {
            ClassWeight::Scalar(w) => std::slice::from_ref(w),
            ClassWeight::PerClass(ws) => ws.as_slice(),
        };
        match values.iter().find(|w| **w < 0.0) {
            Some(w) => Err(Error::invalid(
                op,
                format!("{what} values must be no less than 0, found {w}"),
            )),
            None => Ok(()),
        }
    }
}

/// A rank-`rank` tensor of `values` along axis `axis` (size 1 elsewhere), in `like`'s dtype: a
/// per-class factor ready to broadcast against `(B, C, ...)`, on `like`'s device.
pub(crate) fn along_axis(values: &[f64], axis: usize, rank: usize, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[axis] = values.len();
    Tensor::from_vec(values.to_vec(), &shape)?
        .to_dtype(like.dtype())?
        .to_device(like.device())
}
