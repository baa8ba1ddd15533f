//! `seg-nn`: modules with named parameters, layers and initialisers.
//!
//! Parameters carry the dotted names PyTorch's `state_dict` gives them ([`Module`],
//! [`load_parameters`]), so that checkpoints move between the two. Layers so far: the Mamba block
//! ([`mamba`]). Still to come (the seg-nn issue): the remaining layers, optimizers and safetensors
//! checkpoint files.

pub mod checkpoint;
pub mod init;
pub mod layers;
pub mod mamba;
mod module;
pub mod optim;
pub mod swin;

pub use module::{load_parameters, to_device, visit_child, visit_child_aliases, visit_child_mut, LoadReport, Module};
