//! The conformance runner's op table: fixture op name and parameters to `seg` calls.

use std::collections::BTreeMap;

use super::{Case, Params};
use crate::{BatchNormStats, ConvOptions, ConvPadding, Error, PadMode, Result, Tensor};

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

/// A non-negative integer parameter.
fn usize_param(params: &Params, key: &str) -> Result<usize> {
    let v = params
        .int(key)?
        .ok_or_else(|| Error::invalid("conformance", format!("parameter {key:?} is missing")))?;
    usize::try_from(v).map_err(|_| Error::invalid("conformance", format!("parameter {key:?} is {v}")))
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
pub(super) fn forward(case: &Case, inputs: &Tensors, _module_params: &Tensors) -> Result<Tensors> {
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
        "instance_norm" => x()?.instance_norm(weight, bias, eps()?)?,
        "group_norm" => x()?.group_norm(usize_param(p, "num_groups")?, weight, bias, eps()?)?,
        "layer_norm" => {
            let shape = required_ints(p, "normalized_shape")?
                .into_iter()
                .map(|v| usize::try_from(v).map_err(|_| Error::invalid("layer_norm", format!("normalized_shape {v}"))))
                .collect::<Result<Vec<_>>>()?;
            x()?.layer_norm(&shape, weight, bias, eps()?)?
        }
        "batch_norm" => batch_norm(p, inputs, &mut outputs)?,
        other => return Err(Error::invalid("conformance", format!("unsupported op {other:?}"))),
    };
    outputs.insert("y".to_string(), y);
    Ok(outputs)
}
