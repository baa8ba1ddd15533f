//! The conformance runner's op table: fixture op name and parameters to `seg` calls.

use std::collections::BTreeMap;

use super::{Case, Params};
use crate::{
    AvgPoolOptions, ConvOptions, ConvPadding, Error, InterpolateMode, InterpolateOptions, MaxPoolOptions, PadMode,
    Result, Tensor,
};

type Tensors = BTreeMap<String, Tensor>;

fn input<'a>(inputs: &'a Tensors, name: &str) -> Result<&'a Tensor> {
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
    let usizes = |key: &str| -> Result<Vec<usize>> {
        let values = params
            .ints(key)?
            .unwrap_or_else(|| vec![if key == "padding" { 0 } else { 1 }]);
        values
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| Error::invalid("conv", format!("negative {key} {v}"))))
            .collect()
    };
    let padding = match params.0.get("padding").and_then(|v| v.as_str()) {
        Some("same") => ConvPadding::Same,
        Some("valid") => ConvPadding::Explicit(vec![0]),
        Some(other) => return Err(Error::invalid("conv", format!("unknown padding {other:?}"))),
        None => ConvPadding::Explicit(usizes("padding")?),
    };
    let groups = params.int("groups")?.unwrap_or(1);
    let groups = usize::try_from(groups).map_err(|_| Error::invalid("conv", format!("groups {groups}")))?;
    Ok(ConvOptions {
        stride: usizes("stride")?,
        padding,
        dilation: usizes("dilation")?,
        groups,
    })
}

/// A list of non-negative integers (one integer counts as a list of one), or `None` when absent or null.
fn usizes(params: &Params, key: &str) -> Result<Option<Vec<usize>>> {
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

fn required_usizes(params: &Params, key: &str) -> Result<Vec<usize>> {
    usizes(params, key)?.ok_or_else(|| Error::invalid("conformance", format!("parameter {key:?} is missing")))
}

/// A list of numbers (one number counts as a list of one), or `None` when absent or null.
fn floats(params: &Params, key: &str) -> Result<Option<Vec<f64>>> {
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

/// Computes the outputs of `case` (named as its `out.*` tensors) from the given inputs and module
/// parameters, recording autodiff when they track gradients.
pub(super) fn forward(case: &Case, inputs: &Tensors, _module_params: &Tensors) -> Result<Tensors> {
    let p = &case.params;
    let x = || input(inputs, "x");
    let (a, b) = (|| input(inputs, "a"), || input(inputs, "b"));
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
        other => return Err(Error::invalid("conformance", format!("unsupported op {other:?}"))),
    };
    Ok(BTreeMap::from([("y".to_string(), y)]))
}
