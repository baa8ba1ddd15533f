//! `seg-models`: the segmentation networks and sliding-window inference.
//!
//! Not built yet. It will hold MONAI's BasicUNet, nnU-Net's PlainConvUNet, Swin UNETR and Mamba
//! U-Nets, with MONAI's and mamba_ssm's parameter names so that their checkpoints load.
