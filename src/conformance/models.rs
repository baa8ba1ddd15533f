//! Conformance of seg-models: the networks, loaded with the case's `state_dict`.

use seg_models::{
    BasicUNet, BasicUNetConfig, Blend, PlainConvUNet, PlainUNetConfig, SegMamba, SegMambaConfig, SlidingWindow,
    SwinUNETR, SwinUNETRConfig, UMamba, UMambaVariant,
};
use seg_nn::swin::MergingVersion;

use super::ops::{as_source, input, required_usize, required_usizes, usizes, Tensors};
use super::Params;
use crate::{ConvOptions, ConvPadding, Error, PadMode, Result, Tensor};

/// `basic_unet`: MONAI `BasicUNet` arguments `spatial_dims`, `in_channels`, `out_channels`,
/// `features`, `dropout`.
pub(super) fn basic_unet(p: &Params, inputs: &Tensors, module_params: &Tensors) -> Result<Tensor> {
    let mut config = BasicUNetConfig::new(
        required_usize(p, "spatial_dims")?,
        required_usize(p, "in_channels")?,
        required_usize(p, "out_channels")?,
    );
    if let Some(features) = usizes(p, "features")? {
        config.features = features
            .try_into()
            .map_err(|f: Vec<usize>| Error::invalid("basic_unet", format!("6 features expected, found {f:?}")))?;
    }
    config.dropout = p.f64_or("dropout", 0.0)?;
    let mut net = BasicUNet::new(config, 0)?;
    seg_nn::load_parameters(&mut net, &as_source(module_params), true)?;
    net.forward(input(inputs, "x")?)
}

/// A per-stage list of per-axis sizes: a list whose entries are lists, or integers meaning that size
/// on every one of `dims` axes.
fn per_stage(p: &Params, key: &str, dims: usize) -> Result<Vec<Vec<usize>>> {
    let bad = || {
        Error::invalid(
            "conformance",
            format!("parameter {key:?} should be a list of sizes per stage"),
        )
    };
    let items = p.0.get(key).and_then(|v| v.as_array()).ok_or_else(bad)?;
    items
        .iter()
        .map(|item| match item {
            serde_json::Value::Array(axes) => axes
                .iter()
                .map(|a| a.as_u64().map(|a| a as usize).ok_or_else(bad))
                .collect(),
            v => v.as_u64().map(|a| vec![a as usize; dims]).ok_or_else(bad),
        })
        .collect()
}

/// The `dynamic_network_architectures`-style arguments that `PlainConvUNet` and `UMambaBot` share,
/// `dims` spatial axes.
fn nnunet_config(p: &Params, dims: usize) -> Result<PlainUNetConfig> {
    Ok(PlainUNetConfig {
        input_channels: required_usize(p, "input_channels")?,
        features_per_stage: required_usizes(p, "features_per_stage")?,
        kernel_sizes: per_stage(p, "kernel_sizes", dims)?,
        strides: per_stage(p, "strides", dims)?,
        n_conv_per_stage: required_usizes(p, "n_conv_per_stage")?,
        n_conv_per_stage_decoder: required_usizes(p, "n_conv_per_stage_decoder")?,
        num_classes: required_usize(p, "num_classes")?,
        conv_bias: p.bool_or("conv_bias", false)?,
        deep_supervision: p.bool_or("deep_supervision", false)?,
    })
}

/// A network's outputs as the case's: `y` (full resolution), then `y_1`, `y_2`, ... (deep
/// supervision).
fn deep_supervision_outputs(ys: Vec<Tensor>, outputs: &mut Tensors) -> Result<Tensor> {
    let mut ys = ys.into_iter();
    let y = ys
        .next()
        .ok_or_else(|| Error::invalid("conformance", "the network returned no output"))?;
    for (i, extra) in ys.enumerate() {
        outputs.insert(format!("y_{}", i + 1), extra);
    }
    Ok(y)
}

/// `plain_conv_unet`: `dynamic_network_architectures` `PlainConvUNet` arguments (3D convolutions
/// unless `conv_op` says `Conv2d`; instance norm with affine and LeakyReLU 0.01 as nnU-Net's
/// defaults). With deep supervision the outputs are `y` (full resolution), `y_1`, `y_2`, ...
pub(super) fn plain_conv_unet(
    p: &Params,
    inputs: &Tensors,
    module_params: &Tensors,
    outputs: &mut Tensors,
) -> Result<Tensor> {
    let dims = if p.str_or("conv_op", "Conv3d")?.contains("2d") {
        2
    } else {
        3
    };
    for (key, want) in [("norm", "instance_affine"), ("nonlin", "leaky_relu_0.01")] {
        let found = p.str_or(key, want)?;
        if found != want {
            return Err(Error::invalid(
                "plain_conv_unet",
                format!("{key} {found:?} is not supported, only {want:?}"),
            ));
        }
    }
    let mut net = PlainConvUNet::new(nnunet_config(p, dims)?, 0)?;
    seg_nn::load_parameters(&mut net, &as_source(module_params), true)?;
    deep_supervision_outputs(net.forward(input(inputs, "x")?)?, outputs)
}

/// `umamba_bot` and `umamba_enc`: U-Mamba's `UMambaBot` / `UMambaEnc` with the `PlainConvUNet`
/// arguments (the number of spatial axes from the kernel sizes' entries), `UMambaEnc`'s
/// `input_size` too, and U-Mamba's plan defaults; outputs as `plain_conv_unet`.
pub(super) fn umamba(
    op: &str,
    p: &Params,
    inputs: &Tensors,
    module_params: &Tensors,
    outputs: &mut Tensors,
) -> Result<Tensor> {
    let x = input(inputs, "x")?;
    let variant = match op {
        "umamba_enc" => UMambaVariant::Enc {
            input_size: required_usizes(p, "input_size")?,
        },
        _ => UMambaVariant::Bot,
    };
    let mut net = UMamba::new(nnunet_config(p, x.rank().saturating_sub(2))?, variant, 0)?;
    seg_nn::load_parameters(&mut net, &as_source(module_params), true)?;
    deep_supervision_outputs(net.forward(x)?, outputs)
}

/// `sliding_window_inference` with a 3x3(x3) convolution (`in.w`, `in.b`, padding 1) as predictor;
/// MONAI's arguments `roi_size` (-1: the whole axis), `sw_batch_size`, `overlap`, `mode`,
/// `sigma_scale`, `padding_mode`, `cval`.
pub(super) fn sliding_window(p: &Params, inputs: &Tensors) -> Result<Tensor> {
    let roi = p
        .ints("roi_size")?
        .ok_or_else(|| Error::invalid("conformance", "parameter \"roi_size\" is missing"))?;
    let mut sw = SlidingWindow::new(&roi.iter().map(|&r| r.max(0) as usize).collect::<Vec<_>>());
    sw.sw_batch_size = p.int("sw_batch_size")?.unwrap_or(1).max(0) as usize;
    sw.overlap = p.f64_or("overlap", 0.25)?;
    sw.blend = match p.str_or("mode", "constant")? {
        "constant" => Blend::Constant,
        "gaussian" => Blend::Gaussian {
            sigma_scale: p.f64_or("sigma_scale", 0.125)?,
        },
        other => {
            return Err(Error::invalid(
                "sliding_window_inference",
                format!("unknown mode {other:?}"),
            ))
        }
    };
    sw.padding_mode = PadMode::parse(p.str_or("padding_mode", "constant")?)?;
    sw.cval = p.f64_or("cval", 0.0)?;
    let (w, b) = (input(inputs, "w")?, input(inputs, "b")?);
    let conv = ConvOptions {
        padding: ConvPadding::Explicit(vec![1]),
        ..ConvOptions::default()
    };
    sw.run(input(inputs, "x")?, |t| t.conv(w, Some(b), &conv))
}

/// A parameter of four sizes, `default` when absent.
fn four(p: &Params, op: &'static str, key: &str, default: [usize; 4]) -> Result<[usize; 4]> {
    match usizes(p, key)? {
        None => Ok(default),
        Some(v) => v
            .try_into()
            .map_err(|v: Vec<usize>| Error::invalid(op, format!("{key} needs 4 values, found {v:?}"))),
    }
}

/// `swin_unetr`: MONAI `SwinUNETR` arguments `in_channels`, `out_channels`, `spatial_dims`,
/// `feature_size`, `depths`, `num_heads`, `window_size`, `qkv_bias`, `mlp_ratio`, `normalize`,
/// `downsample`, `use_v2`.
pub(super) fn swin_unetr(p: &Params, inputs: &Tensors, module_params: &Tensors) -> Result<Tensor> {
    let mut c = SwinUNETRConfig::new(
        required_usize(p, "in_channels")?,
        required_usize(p, "out_channels")?,
        p.int("spatial_dims")?.unwrap_or(3).max(0) as usize,
    );
    let four = |key: &str, default: [usize; 4]| four(p, "swin_unetr", key, default);
    c.feature_size = p.int("feature_size")?.map_or(c.feature_size, |f| f.max(0) as usize);
    c.depths = four("depths", c.depths)?;
    c.num_heads = four("num_heads", c.num_heads)?;
    c.window_size = usizes(p, "window_size")?
        .and_then(|w| w.first().copied())
        .unwrap_or(c.window_size);
    c.qkv_bias = p.bool_or("qkv_bias", c.qkv_bias)?;
    c.mlp_ratio = p.f64_or("mlp_ratio", c.mlp_ratio)?;
    c.normalize = p.bool_or("normalize", c.normalize)?;
    c.use_v2 = p.bool_or("use_v2", c.use_v2)?;
    c.downsample = match p.str_or("downsample", "merging")? {
        "merging" => MergingVersion::V1,
        "mergingv2" => MergingVersion::V2,
        other => return Err(Error::invalid("swin_unetr", format!("unknown downsample {other:?}"))),
    };
    let mut net = SwinUNETR::new(c, 0)?;
    seg_nn::load_parameters(&mut net, &as_source(module_params), true)?;
    net.forward(input(inputs, "x")?)
}

/// `segmamba`: SegMamba's arguments `in_chans`, `out_chans`, `depths`, `feat_size`, `hidden_size`,
/// and the Mamba layers' `num_slices` per stage (the reference's `[64, 32, 16, 8]` when absent).
pub(super) fn segmamba(p: &Params, inputs: &Tensors, module_params: &Tensors) -> Result<Tensor> {
    let mut c = SegMambaConfig::new(required_usize(p, "in_chans")?, required_usize(p, "out_chans")?);
    c.depths = four(p, "segmamba", "depths", c.depths)?;
    c.feat_size = four(p, "segmamba", "feat_size", c.feat_size)?;
    c.num_slices = four(p, "segmamba", "num_slices", c.num_slices)?;
    c.hidden_size = p.int("hidden_size")?.map_or(c.hidden_size, |h| h.max(0) as usize);
    let mut net = SegMamba::new(c, 0)?;
    seg_nn::load_parameters(&mut net, &as_source(module_params), true)?;
    net.forward(input(inputs, "x")?)
}
