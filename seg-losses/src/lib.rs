//! `seg-losses`: segmentation losses and metrics with MONAI's definitions.
//!
//! Not built yet. It will hold MONAI's Dice family (DiceLoss, GeneralizedDiceLoss, DiceCELoss,
//! DiceFocalLoss, FocalLoss, TverskyLoss), PolyDice, clDice, a persistent-homology topology loss,
//! and the metrics Dice, IoU, HD95, ASSD and Betti-number errors.

pub mod metrics;
pub mod topology;
