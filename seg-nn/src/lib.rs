//! `seg-nn`: modules with named parameters, layers, optimizers, initialisers and safetensors
//! checkpoints.
//!
//! Not built yet. It will hold a `Module` trait whose parameters carry the dotted names PyTorch's
//! `state_dict` gives them; Conv{2,3}d, ConvTranspose{2,3}d, Linear, the norms, activations, Dropout,
//! pooling, Upsample and Sequential; PyTorch's default initialisers; SGD, Adam and AdamW with
//! PyTorch's exact updates and learning-rate schedules; checkpoints that load MONAI weights.
