//! The conformance runner's op table: fixture op name and parameters to `seg` calls.

use std::collections::{BTreeMap, HashMap};

use seg_nn::mamba::{Mamba, MambaConfig, MambaLayer, Orientation};

use super::{Case, Params};
use crate::{
    AvgPoolOptions, BatchNormStats, ConvOptions, ConvPadding, ConvTransposeOptions, Error, InterpolateMode,
    InterpolateOptions, MaxPoolOptions, PadMode, Result, ScanOptions, Tensor,
};

pub(super) type Tensors = BTreeMap<String, Tensor>;

pub(super) fn input<'a>(inputs: &'a Tensors, name: &str) -> Result<&'a Tensor> {
    inputs
        .get(name)
        .ok_or_else(|| Error::invalid("conformance", format!("the case has no input in.{name}")))
}

fn required_ints(params: &Params, key: &str) -> Result<Vec<isize>> {
    params
        .ints(key)?
        .ok_or_else(|| Error::invalid("conformance", format!("parameter {key:?} is missing")))
}

/// The reduced dims of a `sum`/`mean` case: `dims` or `dim`, all axes when absent.
fn reduce_dims(params: &Params) -> Result<Vec<isize>> {
    Ok(match params.ints("dims")? {
        Some(d) => d,
        None => params.ints("dim")?.unwrap_or_default(),
    })
}

/// PyTorch's convolution arguments: `stride`, `padding` (ints or "same"/"valid"), `dilation`, `groups`.
fn conv_options(params: &Params) -> Result<ConvOptions> {
    let d = ConvOptions::default();
    let padding = match params.0.get("padding").and_then(|v| v.as_str()) {
        Some("same") => ConvPadding::Same,
        Some("valid") => ConvPadding::Explicit(vec![0]),
        Some(other) => return Err(Error::invalid("conv", format!("unknown padding {other:?}"))),
        None => ConvPadding::Explicit(non_negative(params, "padding", vec![0])?),
    };
    Ok(ConvOptions {
        stride: non_negative(params, "stride", d.stride)?,
        padding,
        dilation: non_negative(params, "dilation", d.dilation)?,
        groups: non_negative(params, "groups", vec![d.groups])?[0],
    })
}

/// A list of non-negative integers (one integer counts as a list of one), or `None` when absent or null.
pub(super) fn usizes(params: &Params, key: &str) -> Result<Option<Vec<usize>>> {
    params
        .ints(key)?
        .map(|values| {
            values
                .into_iter()
                .map(|v| usize::try_from(v).map_err(|_| Error::invalid("conformance", format!("negative {key} {v}"))))
                .collect()
        })
        .transpose()
}

pub(super) fn required_usizes(params: &Params, key: &str) -> Result<Vec<usize>> {
    usizes(params, key)?.ok_or_else(|| Error::invalid("conformance", format!("parameter {key:?} is missing")))
}

/// A list of numbers (one number counts as a list of one), or `None` when absent or null.
pub(super) fn floats(params: &Params, key: &str) -> Result<Option<Vec<f64>>> {
    let bad = |v: &serde_json::Value| Params::bad(key, "a number or a list of numbers", v);
    match params.0.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| bad(v)))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => v.as_f64().map(|f| Some(vec![f])).ok_or_else(|| bad(v)),
    }
}

/// An optional boolean: `None` when absent or null.
fn opt_bool(params: &Params, key: &str) -> Result<Option<bool>> {
    if params.has(key) {
        params.bool_or(key, false).map(Some)
    } else {
        Ok(None)
    }
}

/// PyTorch's max pooling arguments: `kernel_size`, `stride` (null: the kernel), `padding`, `dilation`, `ceil_mode`.
fn max_pool_options(params: &Params) -> Result<MaxPoolOptions> {
    Ok(MaxPoolOptions {
        kernel_size: required_usizes(params, "kernel_size")?,
        stride: usizes(params, "stride")?,
        padding: usizes(params, "padding")?.unwrap_or_else(|| vec![0]),
        dilation: usizes(params, "dilation")?.unwrap_or_else(|| vec![1]),
        ceil_mode: params.bool_or("ceil_mode", false)?,
    })
}

/// PyTorch's average pooling arguments: `kernel_size`, `stride`, `padding`, `ceil_mode`,
/// `count_include_pad` (default true), `divisor_override`.
fn avg_pool_options(params: &Params) -> Result<AvgPoolOptions> {
    let divisor_override = match params.int("divisor_override")? {
        None => None,
        Some(d) => Some(usize::try_from(d).map_err(|_| Error::invalid("avg_pool", format!("divisor_override {d}")))?),
    };
    Ok(AvgPoolOptions {
        kernel_size: required_usizes(params, "kernel_size")?,
        stride: usizes(params, "stride")?,
        padding: usizes(params, "padding")?.unwrap_or_else(|| vec![0]),
        ceil_mode: params.bool_or("ceil_mode", false)?,
        count_include_pad: params.bool_or("count_include_pad", true)?,
        divisor_override,
    })
}

/// `output_size` of an adaptive pooling of `x` with `rank` spatial axes; a null entry keeps the input's size.
fn adaptive_output_size(params: &Params, x: &Tensor, rank: usize) -> Result<Vec<usize>> {
    let bad = |v: &serde_json::Value| Params::bad("output_size", "an integer or a list of integers and nulls", v);
    let spatial = &x.shape()[x.rank().saturating_sub(rank)..];
    match params.0.get("output_size") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(a, v)| match v {
                serde_json::Value::Null => spatial
                    .get(a)
                    .copied()
                    .ok_or_else(|| Error::invalid("conformance", "output_size has more entries than axes")),
                v => v.as_u64().map(|n| n as usize).ok_or_else(|| bad(v)),
            })
            .collect(),
        Some(v) => v.as_u64().map(|n| vec![n as usize]).ok_or_else(|| bad(v)),
        None => Err(Error::invalid("conformance", "parameter \"output_size\" is missing")),
    }
}

/// `torch.nn.functional.interpolate`'s arguments: `size` or `scale_factor`, `mode`, `align_corners`,
/// `recompute_scale_factor`.
fn interpolate_options(params: &Params) -> Result<InterpolateOptions> {
    Ok(InterpolateOptions {
        size: usizes(params, "size")?,
        scale_factor: floats(params, "scale_factor")?,
        mode: InterpolateMode::parse(params.str_or("mode", "nearest")?)?,
        align_corners: opt_bool(params, "align_corners")?,
        recompute_scale_factor: opt_bool(params, "recompute_scale_factor")?,
    })
}

/// An int or list-of-ints parameter that must not be negative, `default` when absent.
fn non_negative(params: &Params, key: &str, default: Vec<usize>) -> Result<Vec<usize>> {
    Ok(usizes(params, key)?.unwrap_or(default))
}

/// PyTorch's transposed-convolution arguments: `stride`, `padding`, `output_padding`, `dilation`, `groups`.
fn conv_transpose_options(params: &Params) -> Result<ConvTransposeOptions> {
    let d = ConvTransposeOptions::default();
    Ok(ConvTransposeOptions {
        stride: non_negative(params, "stride", d.stride)?,
        padding: non_negative(params, "padding", d.padding)?,
        output_padding: non_negative(params, "output_padding", d.output_padding)?,
        dilation: non_negative(params, "dilation", d.dilation)?,
        groups: non_negative(params, "groups", vec![d.groups])?[0],
    })
}

/// A non-negative integer parameter that must be present.
pub(super) fn required_usize(params: &Params, key: &str) -> Result<usize> {
    if !params.has(key) {
        return Err(Error::invalid("conformance", format!("parameter {key:?} is missing")));
    }
    optional_usize(params, key, 0)
}

/// A non-negative integer parameter, `default` when absent.
fn optional_usize(params: &Params, key: &str, default: usize) -> Result<usize> {
    Ok(non_negative(params, key, vec![default])?[0])
}

/// mamba_ssm's `Mamba` arguments: `d_model`, `d_state`, `d_conv`, `expand`, `dt_rank` (an integer or
/// "auto"), and SegMamba's `bimamba_type` "v3" with `nslices`.
fn mamba_config(p: &Params) -> Result<MambaConfig> {
    let mut config = MambaConfig::new(required_usize(p, "d_model")?);
    config.d_state = optional_usize(p, "d_state", config.d_state)?;
    config.d_conv = optional_usize(p, "d_conv", config.d_conv)?;
    config.expand = optional_usize(p, "expand", config.expand)?;
    if p.str_or("dt_rank", "auto").is_err() {
        config.dt_rank = Some(required_usize(p, "dt_rank")?);
    }
    if p.has("nslices") || p.str_or("bimamba_type", "none")? == "v3" {
        config.orientation = Orientation::TriOriented {
            nslices: optional_usize(p, "nslices", 5)?,
        };
    }
    Ok(config)
}

/// The case's module parameters as a checkpoint to load.
pub(super) fn as_source(module_params: &Tensors) -> HashMap<String, Tensor> {
    module_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `batch_norm`: `x`, optional `weight`/`bias`, optional running statistics as inputs `running_mean`
/// and `running_var` (then the updated statistics are outputs of the same names); params `training`
/// (PyTorch's default false), `momentum` (0.1, null for the cumulative average), `eps`.
fn batch_norm(p: &Params, inputs: &Tensors, outputs: &mut Tensors) -> Result<Tensor> {
    let mut stats = match (inputs.get("running_mean"), inputs.get("running_var")) {
        (Some(m), Some(v)) => Some(BatchNormStats::from_tensors(m, v, 0)?),
        (None, None) => None,
        _ => return Err(Error::invalid("batch_norm", "running_mean and running_var go together")),
    };
    let momentum = if p.0.get("momentum").is_some_and(|v| v.is_null()) {
        None
    } else {
        Some(p.f64_or("momentum", 0.1)?)
    };
    let y = input(inputs, "x")?.batch_norm(
        stats.as_mut(),
        inputs.get("weight"),
        inputs.get("bias"),
        p.bool_or("training", false)?,
        momentum,
        p.f64_or("eps", 1e-5)?,
    )?;
    if let Some(s) = stats {
        outputs.insert("running_mean".into(), s.running_mean);
        outputs.insert("running_var".into(), s.running_var);
    }
    Ok(y)
}

/// Computes the outputs of `case` (named as its `out.*` tensors) from the given inputs and module
/// parameters, recording autodiff when they track gradients.
pub(super) fn forward(case: &Case, inputs: &Tensors, module_params: &Tensors) -> Result<Tensors> {
    let p = &case.params;
    let x = || input(inputs, "x");
    let (a, b) = (|| input(inputs, "a"), || input(inputs, "b"));
    let (weight, bias) = (inputs.get("weight"), inputs.get("bias"));
    let eps = || p.f64_or("eps", 1e-5);
    let mut outputs = Tensors::new();
    let y = match case.op.as_str() {
        "relu" => x()?.relu()?,
        "leaky_relu" => x()?.leaky_relu(p.f64_or("negative_slope", 0.01)?)?,
        "gelu" => match p.str_or("approximate", "none")? {
            "none" => x()?.gelu()?,
            "tanh" => x()?.gelu_tanh()?,
            other => return Err(Error::invalid("gelu", format!("unknown approximate {other:?}"))),
        },
        "silu" => x()?.silu()?,
        "sigmoid" => x()?.sigmoid()?,
        "softplus" => x()?.unary(crate::Unary::Softplus {
            beta: p.f64_or("beta", 1.0)?,
            threshold: p.f64_or("threshold", 20.0)?,
        })?,
        "tanh" => x()?.tanh()?,
        "exp" => x()?.exp()?,
        "log_abs1" => x()?.abs()?.add_scalar(1.0)?.log()?,
        "softmax" => x()?.softmax(p.int("dim")?.unwrap_or(-1))?,
        "log_softmax" => x()?.log_softmax(p.int("dim")?.unwrap_or(-1))?,
        "matmul" => a()?.matmul(b()?)?,
        "linear" => x()?.linear(input(inputs, "weight")?, inputs.get("bias"))?,
        "add" => a()?.add(b()?)?,
        "sub" => a()?.sub(b()?)?,
        "mul" => a()?.mul(b()?)?,
        "div" => a()?.div(b()?)?,
        "sum" => x()?.sum(&reduce_dims(p)?, p.bool_or("keepdim", false)?)?,
        "mean" => x()?.mean(&reduce_dims(p)?, p.bool_or("keepdim", false)?)?,
        "max" => match p.int("dim")? {
            Some(dim) => x()?.max_dim(dim, p.bool_or("keepdim", false)?)?.0,
            None => x()?.flatten(0, -1)?.max_dim(0, false)?.0,
        },
        "permute" => x()?.permute(&required_ints(p, "dims")?)?,
        "cat" => {
            // Inputs in name order: a, b, c, ...
            let parts: Vec<&Tensor> = inputs.values().collect();
            Tensor::cat(&parts, p.int("dim")?.unwrap_or(0))?
        }
        "pad" => x()?.pad(
            &required_ints(p, "pad")?,
            PadMode::parse(p.str_or("mode", "constant")?)?,
            p.f64_or("value", 0.0)?,
        )?,
        "roll" => x()?.roll(&required_ints(p, "shifts")?, &p.ints("dims")?.unwrap_or_default())?,
        "conv2d" => x()?.conv2d(input(inputs, "w")?, inputs.get("b"), &conv_options(p)?)?,
        "conv3d" => x()?.conv3d(input(inputs, "w")?, inputs.get("b"), &conv_options(p)?)?,
        "conv_transpose2d" => {
            x()?.conv_transpose2d(input(inputs, "w")?, inputs.get("b"), &conv_transpose_options(p)?)?
        }
        "conv_transpose3d" => {
            x()?.conv_transpose3d(input(inputs, "w")?, inputs.get("b"), &conv_transpose_options(p)?)?
        }
        "selective_scan" => {
            let options = ScanOptions {
                d: inputs.get("D"),
                z: inputs.get("z"),
                delta_bias: inputs.get("delta_bias"),
                delta_softplus: p.bool_or("delta_softplus", false)?,
            };
            let (u, delta) = (input(inputs, "u")?, input(inputs, "delta")?);
            let (a, b, c) = (input(inputs, "A")?, input(inputs, "B")?, input(inputs, "C")?);
            let (y, last_state) = u.selective_scan(delta, a, b, c, &options)?;
            outputs.insert("last_state".to_string(), last_state);
            y
        }
        "mamba_block" => {
            let mut block = Mamba::new(mamba_config(p)?, 0)?;
            seg_nn::load_parameters(&mut block, &as_source(module_params), true)?;
            block.forward(x()?)?
        }
        "mamba_layer" => {
            let mut layer = MambaLayer::new(mamba_config(p)?, p.bool_or("residual", false)?, 0)?;
            seg_nn::load_parameters(&mut layer, &as_source(module_params), true)?;
            layer.forward(x()?)?
        }
        "max_pool1d" => x()?.max_pool1d(&max_pool_options(p)?)?,
        "max_pool2d" => x()?.max_pool2d(&max_pool_options(p)?)?,
        "max_pool3d" => x()?.max_pool3d(&max_pool_options(p)?)?,
        "avg_pool1d" => x()?.avg_pool1d(&avg_pool_options(p)?)?,
        "avg_pool2d" => x()?.avg_pool2d(&avg_pool_options(p)?)?,
        "avg_pool3d" => x()?.avg_pool3d(&avg_pool_options(p)?)?,
        "adaptive_avg_pool1d" => x()?.adaptive_avg_pool1d(&adaptive_output_size(p, x()?, 1)?)?,
        "adaptive_avg_pool2d" => x()?.adaptive_avg_pool2d(&adaptive_output_size(p, x()?, 2)?)?,
        "adaptive_avg_pool3d" => x()?.adaptive_avg_pool3d(&adaptive_output_size(p, x()?, 3)?)?,
        "interpolate" => x()?.interpolate(&interpolate_options(p)?)?,
        "instance_norm" => x()?.instance_norm(weight, bias, eps()?)?,
        "group_norm" => x()?.group_norm(required_usize(p, "num_groups")?, weight, bias, eps()?)?,
        "layer_norm" => x()?.layer_norm(&required_usizes(p, "normalized_shape")?, weight, bias, eps()?)?,
        "batch_norm" => batch_norm(p, inputs, &mut outputs)?,
        "optimizer" => super::nn::optimizer_steps(p, inputs)?,
        "basic_unet" => super::models::basic_unet(p, inputs, module_params)?,
        "swin_unetr" => super::models::swin_unetr(p, inputs, module_params)?,
        "segmamba" => super::models::segmamba(p, inputs, module_params)?,
        "sliding_window_inference" => super::models::sliding_window(p, inputs)?,
        "plain_conv_unet" => super::models::plain_conv_unet(p, inputs, module_params, &mut outputs)?,
        op @ ("umamba_bot" | "umamba_enc") => super::models::umamba(op, p, inputs, module_params, &mut outputs)?,
        op @ ("window_attention" | "swin_basic_layer" | "patch_merging") => {
            super::swin::forward(op, p, inputs, module_params)?
        }
        other => match super::losses::forward(other, p, inputs)? {
            Some(y) => y,
            None => {
                return super::topology::forward(other, p, inputs)?
                    .ok_or_else(|| Error::invalid("conformance", format!("unsupported op {other:?}")))
            }
        },
    };
    outputs.insert("y".to_string(), y);
    Ok(outputs)
}
