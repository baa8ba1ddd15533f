//! safetensors checkpoints: a module's parameters saved and loaded by their `state_dict` names.
//!
//! A MONAI (or any PyTorch) model comes over without Python at run time once its `state_dict` is a
//! safetensors file: `from safetensors.torch import save_file; save_file(model.state_dict(),
//! "model.safetensors")`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use seg_tensor::{with_element, DType, Error, Result, Tensor};

use crate::{load_parameters, LoadReport, Module};

fn format_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

fn to_safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
    }
}

/// A tensor with the values of a safetensors view (little-endian, as the format stores them).
/// Other dtypes than seg's (i32, bool, f8, ...) are an error naming the tensor.
pub fn tensor_from_view(name: &str, view: &TensorView<'_>) -> Result<Tensor> {
    let dtype = match view.dtype() {
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
        other => {
            return Err(Error::invalid(
                "safetensors",
                format!("tensor {name} has dtype {other:?}, which seg does not store"),
            ))
        }
    };
    with_element!(dtype, T => {
        let values: Vec<T> = bytemuck::pod_collect_to_vec(view.data());
        Tensor::from_vec(values, view.shape())
    })
}

/// Every tensor of a safetensors file by name, and the file's metadata.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format_error(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format_error(path, e))?;
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| Ok((name.clone(), tensor_from_view(&name, &view)?)))
        .collect::<Result<_>>()?;
    Ok((tensors, metadata))
}

/// Writes every parameter of `module` by name, in its dtype, with `metadata` in the header.
pub fn save_checkpoint(module: &dyn Module, path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut named = Vec::new();
    let mut failure = None;
    module.visit(&mut |name, t| {
        let bytes = with_element!(t.dtype(), T => t.to_vec::<T>().map(|v| bytemuck::cast_slice::<T, u8>(&v).to_vec()));
        match bytes {
            Ok(bytes) => named.push((name.to_string(), t.dtype(), t.shape().to_vec(), bytes)),
            Err(e) => failure = Some(e),
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let views = named
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(to_safetensors_dtype(*dtype), shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| format_error(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    safetensors::serialize_to_file(views, metadata, path).map_err(|e| format_error(path, e))
}

/// Loads a safetensors checkpoint into `module` by name ([`load_parameters`]: mis-shaped tensors
/// are an error; missing and unexpected ones too when `strict`, else reported).
pub fn load_checkpoint(module: &mut dyn Module, path: &Path, strict: bool) -> Result<LoadReport> {
    let (tensors, _) = read_safetensors(path)?;
    load_parameters(module, &tensors, strict)
}
