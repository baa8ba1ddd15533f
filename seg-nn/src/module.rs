//! Modules: network parts whose parameters carry PyTorch `state_dict` names, so that checkpoints
//! move between the two.

use std::collections::{BTreeMap, HashMap};

use seg_tensor::{Device, Error, Result, Tensor};

/// A network part with named parameters.
pub trait Module {
    /// Calls `f` with every parameter and its dotted `state_dict` name, in registration order.
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor));
    /// Calls `f` with every parameter and its name, for replacing it (loading, an optimizer step).
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor));

    /// Calls `f(alias, name)` for every second name PyTorch's `state_dict` gives a parameter (a
    /// sub-module registered twice, as nnU-Net's `all_modules` or its decoder's `encoder`): loading
    /// accepts the alias in place of the name.
    fn visit_aliases(&self, _f: &mut dyn FnMut(&str, &str)) {}

    /// Switches between training (dropout active, batch statistics) and evaluation, as PyTorch's
    /// `train()`/`eval()`; a no-op for modules that behave the same in both.
    fn set_training(&mut self, _training: bool) {}

    /// Every parameter by name.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit(&mut |name, t| out.push((name.to_string(), t.clone())));
        out
    }

    /// The number of parameter values.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_, t| n += t.numel());
        n
    }
}

/// Visits the parameters of `child` with `prefix.` before their names.
pub fn visit_child(prefix: &str, child: &dyn Module, f: &mut dyn FnMut(&str, &Tensor)) {
    child.visit(&mut |name, t| f(&format!("{prefix}.{name}"), t));
}

/// Visits the parameters of `child` mutably with `prefix.` before their names.
pub fn visit_child_mut(prefix: &str, child: &mut dyn Module, f: &mut dyn FnMut(&str, &mut Tensor)) {
    child.visit_mut(&mut |name, t| f(&format!("{prefix}.{name}"), t));
}

/// Visits the aliases of `child` with `prefix.` before both names.
pub fn visit_child_aliases(prefix: &str, child: &dyn Module, f: &mut dyn FnMut(&str, &str)) {
    child.visit_aliases(&mut |alias, name| f(&format!("{prefix}.{alias}"), &format!("{prefix}.{name}")));
}

/// Moves every parameter and buffer of `module` to `device` (PyTorch's `module.to(device)`): each
/// becomes a tensor there, a leaf that tracks gradients where the original did.
pub fn to_device(module: &mut dyn Module, device: Device) -> Result<()> {
    let mut failure = None;
    module.visit_mut(&mut |_, t| match t.detach().to_device(device) {
        Ok(moved) if t.tracks_grad() => *t = moved.requires_grad(),
        Ok(moved) => *t = moved,
        Err(e) => failure = Some(e),
    });
    failure.map_or(Ok(()), Err)
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
/// A parameter missing under its name is taken from one of its aliases ([`Module::visit_aliases`]);
/// alias names count as expected, never as unexpected, and so do the buffers the module derives
/// itself (a Swin attention's `relative_position_index`).
///
/// A tensor of the parameter's dtype and device is taken as it is (the same handle: gradients keyed
/// by it reach the module); another float dtype (f16/bf16 checkpoints) is converted, and a tensor
/// elsewhere is copied to the parameter's device (as PyTorch's `load_state_dict` copies into it). Where the module's
/// parameter tracks gradients, a loaded tensor that does not is made a leaf that does; buffers
/// (running statistics) stay constants. A mis-shaped tensor is always an error; missing
/// and unexpected names are an error listing them all when `strict`, else reported.
pub fn load_parameters(module: &mut dyn Module, source: &HashMap<String, Tensor>, strict: bool) -> Result<LoadReport> {
    let mut source = source.clone();
    let mut aliases = Vec::new();
    module.visit_aliases(&mut |alias, name| aliases.push((alias.to_string(), name.to_string())));
    for (alias, name) in aliases {
        if let Some(t) = source.remove(&alias) {
            source.entry(name).or_insert(t);
        }
    }
    let source = &source;
    let mut expected = BTreeMap::new();
    module.visit(&mut |name, t| {
        expected.insert(name.to_string(), t.shape().to_vec());
    });
    let mut report = LoadReport {
        missing: expected.keys().filter(|k| !source.contains_key(*k)).cloned().collect(),
        unexpected: source
            .keys()
            .filter(|k| !expected.contains_key(*k) && !is_derived_buffer(k, &expected))
            .cloned()
            .collect(),
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
        match found.to_dtype(param.dtype()).and_then(|t| t.to_device(param.device())) {
            Ok(t) if !param.tracks_grad() => *param = t.detach(),
            Ok(t) => *param = if t.tracks_grad() { t } else { t.requires_grad() },
            Err(e) => failure = Some(e),
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Whether `name` is a buffer PyTorch saves but this module derives from its shape instead: a Swin
/// `WindowAttention`'s `relative_position_index` (next to its `relative_position_bias_table`).
fn is_derived_buffer(name: &str, expected: &BTreeMap<String, Vec<usize>>) -> bool {
    name.strip_suffix("relative_position_index")
        .is_some_and(|prefix| expected.contains_key(&format!("{prefix}relative_position_bias_table")))
}
