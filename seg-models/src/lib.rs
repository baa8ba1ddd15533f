//! `seg-models`: the segmentation networks, with the parameter names of their reference
//! implementations so that checkpoints move between the two.
//!
//! - [`BasicUNet`]: MONAI's `BasicUNet`.
//! - [`PlainConvUNet`]: nnU-Net's default network, and its [`plan`] from patch size and spacing.
//! - [`UMamba`]: U-Mamba's networks, with a Mamba layer at the bottleneck (`UMambaBot`) or after
//!   every encoder stage (`UMambaEnc`).
//! - [`SegMamba`]: SegMamba, a Mamba encoder with gated spatial convolutions and tri-oriented Mamba
//!   layers, and MONAI's UNETR decoder.
//! - [`SwinUNETR`]: MONAI's Swin UNETR (v1 and v2).
//! - [`SlidingWindow`]: MONAI's sliding-window inference.

mod basic_unet;
pub mod blocks;
mod decoder;
mod plain_unet;
pub mod plan;
pub mod res_blocks;
mod segmamba;
mod segmamba_encoder;
mod sliding_window;
mod swin_unetr;
mod umamba;
mod unetr_blocks;

pub use basic_unet::{BasicUNet, BasicUNetConfig};
pub use plain_unet::{PlainConvUNet, PlainUNetConfig};
pub use segmamba::{SegMamba, SegMambaConfig};
pub use sliding_window::{Blend, SlidingWindow};
pub use swin_unetr::{SwinUNETR, SwinUNETRConfig};
pub use umamba::{UMamba, UMambaVariant};
