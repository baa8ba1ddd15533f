//! The Swin transformer parts of MONAI's Swin UNETR (`monai/networks/nets/swin_unetr.py`) with its
//! `state_dict` names, 2D and 3D: [`WindowAttention`] (on the fused window-attention kernel),
//! [`SwinTransformerBlock`], [`BasicLayer`], [`PatchMerging`] (both of MONAI's orders) and
//! [`PatchEmbed`]. Dropout, attention dropout and drop-path are not modelled (MONAI's defaults, 0).

mod attention;
mod block;
mod embed;
mod layer;
mod merging;
pub mod windows;

pub use attention::WindowAttention;
pub use block::{Mlp, SwinTransformerBlock};
pub use embed::PatchEmbed;
pub use layer::{BasicLayer, BasicLayerConfig};
pub use merging::{MergingVersion, PatchMerging};
