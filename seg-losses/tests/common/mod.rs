//! Every loss of the crate behind one signature, for the tests that run them all.

use seg_losses::{
    BceWithLogitsLoss, DiceCELoss, DiceFocalLoss, DiceLoss, FocalLoss, GeneralizedDiceLoss, PolyDiceLoss,
    SoftDiceclDiceLoss, SoftclDiceLoss, TverskyLoss,
};
use seg_tensor::{Result, Tensor};

pub type Forward = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor>>;

pub fn losses() -> Vec<(&'static str, Forward)> {
    vec![
        ("DiceLoss", Box::new(|x, y| DiceLoss::default().forward(x, y))),
        (
            "GeneralizedDiceLoss",
            Box::new(|x, y| GeneralizedDiceLoss::default().forward(x, y)),
        ),
        ("TverskyLoss", Box::new(|x, y| TverskyLoss::default().forward(x, y))),
        ("FocalLoss", Box::new(|x, y| FocalLoss::default().forward(x, y))),
        ("DiceCELoss", Box::new(|x, y| DiceCELoss::default().forward(x, y))),
        ("DiceFocalLoss", Box::new(|x, y| DiceFocalLoss::default().forward(x, y))),
        (
            "SoftclDiceLoss",
            Box::new(|x, y| SoftclDiceLoss::default().forward(x, y)),
        ),
        (
            "SoftDiceclDiceLoss",
            Box::new(|x, y| SoftDiceclDiceLoss::default().forward(x, y)),
        ),
        ("PolyDiceLoss", Box::new(|x, y| PolyDiceLoss::default().forward(x, y))),
        (
            "BCEWithLogitsLoss",
            Box::new(|x, y| BceWithLogitsLoss::default().forward(x, y)),
        ),
    ]
}
