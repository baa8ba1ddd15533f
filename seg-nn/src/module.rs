//! Modules: network parts whose parameters carry PyTorch `state_dict` names, so that checkpoints
//! move between the two.

use std::collections::{BTreeMap, HashMap};

use seg_tensor::{Error, Result, Tensor};

/// A network part with named parameters.
pub trait Module {
    /// Calls `f` with every parameter and its dotted `state_dict` name, in registration order.
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor));
    /// Calls `f` with every parameter and its name, for replacing it (loading, an optimizer step).
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor));

    /// Every parameter by name.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit(&mut |name, t| out.push((name.to_string(), t.clone())));
        out
    }
}

/// What a non-strict [`load_parameters`] left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters of the module the source did not have (they keep their values).
    pub missing: Vec<String>,
    /// Source tensors no parameter of the module is named after.
    pub unexpected: Vec<String>,
}

/// Replaces the module's parameters by the tensors of `source` with the same names.
///
/// A tensor of the parameter's dtype is taken as it is (the same handle: gradients keyed by it
/// reach the module); another float dtype (f16/bf16 checkpoints) is converted. Loaded tensors that
/// do not track gradients are made leaves that do. A mis-shaped tensor is always an error; missing
/// and unexpected names are an error listing them all when `strict`, else reported.
pub fn load_parameters(module: &mut dyn Module, source: &HashMap<String, Tensor>, strict: bool) -> Result<LoadReport> {
    let mut expected = BTreeMap::new();
    module.visit(&mut |name, t| {
        expected.insert(name.to_string(), t.shape().to_vec());
    });
    let mut report = LoadReport {
        missing: expected.keys().filter(|k| !source.contains_key(*k)).cloned().collect(),
        unexpected: source.keys().filter(|k| !expected.contains_key(*k)).cloned().collect(),
    };
    report.unexpected.sort();
    let misshaped: Vec<String> = expected
        .iter()
        .filter_map(|(name, shape)| {
            let found = source.get(name)?;
            (found.shape() != shape.as_slice())
                .then(|| format!("{name}: expected {shape:?}, found {:?}", found.shape()))
        })
        .collect();
    if !misshaped.is_empty() || (strict && (!report.missing.is_empty() || !report.unexpected.is_empty())) {
        let mut problems = misshaped;
        problems.extend(
            report
                .missing
                .iter()
                .map(|n| format!("{n}: missing from the checkpoint")),
        );
        problems.extend(
            report
                .unexpected
                .iter()
                .map(|n| format!("{n}: not a parameter of this module")),
        );
        return Err(Error::invalid("load_parameters", problems.join("; ")));
    }
    let mut failure = None;
    module.visit_mut(&mut |name, param| {
        let Some(found) = source.get(name) else { return };
        match found.to_dtype(param.dtype()) {
            Ok(t) => *param = if t.tracks_grad() { t } else { t.requires_grad() },
            Err(e) => failure = Some(e),
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
