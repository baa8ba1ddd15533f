//! Conformance of the Swin parts (seg-nn's `swin`): MONAI's `WindowAttention`, `BasicLayer` and
//! patch merging, loaded with the case's `state_dict`.

use seg_nn::layers::Layer;
use seg_nn::swin::{BasicLayer, BasicLayerConfig, MergingVersion, PatchMerging, WindowAttention};

use super::ops::{as_source, input, required_usize, usizes, Tensors};
use super::Params;
use crate::{Error, Result, Tensor};

/// The window size: a list, or one integer for every one of `dims` axes.
fn window_size(p: &Params, dims: usize) -> Result<Vec<usize>> {
    match usizes(p, "window_size")? {
        Some(w) if w.len() == 1 => Ok(vec![w[0]; dims]),
        Some(w) => Ok(w),
        None => Err(Error::invalid("conformance", "parameter \"window_size\" is missing")),
    }
}

/// Fails for non-zero dropout or drop-path rates, which the modules do not model.
fn no_dropout(p: &Params) -> Result<()> {
    for key in [
        "drop",
        "attn_drop",
        "drop_path",
        "proj_drop",
        "drop_rate",
        "attn_drop_rate",
    ] {
        let rate = p.f64_or(key, 0.0)?;
        if rate != 0.0 {
            return Err(Error::invalid(
                "swin",
                format!("{key} = {rate}: only rate 0 is supported"),
            ));
        }
    }
    Ok(())
}

/// MONAI's merging class by `downsample` name ("merging", "mergingv2") or `version` (1, 2).
fn merging_version(name: &str) -> Result<MergingVersion> {
    match name {
        "merging" | "1" => Ok(MergingVersion::V1),
        "mergingv2" | "2" => Ok(MergingVersion::V2),
        other => Err(Error::invalid(
            "swin",
            format!("unknown merging {other:?} (expected \"merging\" or \"mergingv2\")"),
        )),
    }
}

/// `window_attention`, `swin_basic_layer` or `patch_merging` (see the fixture README).
pub(super) fn forward(op: &str, p: &Params, inputs: &Tensors, module_params: &Tensors) -> Result<Tensor> {
    no_dropout(p)?;
    let x = input(inputs, "x")?;
    let source = as_source(module_params);
    let dim = required_usize(p, "dim")?;
    match op {
        "window_attention" => {
            let window = window_size(p, 3)?;
            let heads = required_usize(p, "num_heads")?;
            let mut attn = WindowAttention::new(dim, heads, &window, p.bool_or("qkv_bias", false)?, 0)?;
            seg_nn::load_parameters(&mut attn, &source, true)?;
            attn.forward(x, inputs.get("mask"))
        }
        "swin_basic_layer" => {
            let downsample = match p.0.get("downsample") {
                None | Some(serde_json::Value::Null) => None,
                Some(_) => Some(merging_version(p.str_or("downsample", "")?)?),
            };
            let config = BasicLayerConfig {
                dim,
                depth: required_usize(p, "depth")?,
                num_heads: required_usize(p, "num_heads")?,
                window_size: window_size(p, x.rank().saturating_sub(2))?,
                mlp_ratio: p.f64_or("mlp_ratio", 4.0)?,
                qkv_bias: p.bool_or("qkv_bias", false)?,
                downsample,
            };
            let mut layer = BasicLayer::new(&config, 0)?;
            seg_nn::load_parameters(&mut layer, &source, true)?;
            layer.forward(x)
        }
        _ => {
            let version = merging_version(&p.int("version")?.unwrap_or(1).to_string())?;
            let mut merging = PatchMerging::new(dim, x.rank().saturating_sub(2), version, 0)?;
            seg_nn::load_parameters(&mut merging, &source, true)?;
            merging.forward(x)
        }
    }
}
