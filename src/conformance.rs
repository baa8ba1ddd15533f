//! The conformance runner: checks ops against reference cases computed by PyTorch and MONAI.
//!
//! A case is one safetensors file (format: `tests/fixtures/FORMAT.md`) holding the op name, its
//! parameters as JSON, a tolerance, the inputs, the reference outputs and, for the backward check,
//! an upstream gradient per output and the reference input gradients. A case passes when every output
//! and gradient has the reference's shape and `||actual - expected|| <= tol * max(||expected||, 1e-12)`.

mod losses;
mod models;
mod nn;
mod ops;
mod swin;
mod topology;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::Value;

use crate::{DType, Device, Error, Result, Tensor};

/// One reference case, loaded from a fixture file.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub op: String,
    pub params: Params,
    pub tol: f64,
    /// `in.<name>` tensors.
    pub inputs: BTreeMap<String, Tensor>,
    /// `param.<key>` tensors (module parameters, by state_dict name).
    pub module_params: BTreeMap<String, Tensor>,
    /// `out.<name>` tensors.
    pub outputs: BTreeMap<String, Tensor>,
    /// `gout.<name>` tensors.
    pub upstream: BTreeMap<String, Tensor>,
    /// `grad.<name>` tensors, keyed by the input name or `param.<key>`.
    pub grads: BTreeMap<String, Tensor>,
}

/// An op's parameters (the fixture's `params` JSON object), with typed getters that report
/// malformed values as errors.
#[derive(Debug, Clone, Default)]
pub struct Params(serde_json::Map<String, Value>);

impl Params {
    fn bad(key: &str, want: &str, v: &Value) -> Error {
        Error::invalid("conformance", format!("parameter {key:?} should be {want}, found {v}"))
    }

    /// Whether `key` is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| Self::bad(key, "a number", v)),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| Self::bad(key, "true or false", v)),
        }
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| Self::bad(key, "a string", v)),
        }
    }

    /// An integer, or `None` when absent or null.
    pub fn int(&self, key: &str) -> Result<Option<isize>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(|i| Some(i as isize))
                .ok_or_else(|| Self::bad(key, "an integer", v)),
        }
    }

    /// A list of integers (a single integer counts as a list of one), or `None` when absent or null.
    pub fn ints(&self, key: &str) -> Result<Option<Vec<isize>>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .map(|i| i as isize)
                        .ok_or_else(|| Self::bad(key, "a list of integers", v))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => v
                .as_i64()
                .map(|i| Some(vec![i as isize]))
                .ok_or_else(|| Self::bad(key, "integers", v)),
        }
    }
}

fn format_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

impl Case {
    /// Reads a fixture file; a malformed file is an error naming what is wrong.
    pub fn load(path: &Path) -> Result<Case> {
        let bytes = std::fs::read(path)?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format_error(path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| format_error(path, e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let op = meta
            .get("op")
            .ok_or_else(|| format_error(path, "metadata has no \"op\""))?
            .clone();
        let params = match meta.get("params") {
            None => Params::default(),
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => Params(map),
                Ok(other) => return Err(format_error(path, format!("params is not a JSON object: {other}"))),
                Err(e) => return Err(format_error(path, format!("params is not valid JSON: {e}"))),
            },
        };
        let tol = match meta.get("tol") {
            None => 0.0,
            Some(t) => t
                .parse()
                .map_err(|_| format_error(path, format!("tol {t:?} is not a number")))?,
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut case = Case {
            name,
            op,
            params,
            tol,
            inputs: BTreeMap::new(),
            module_params: BTreeMap::new(),
            outputs: BTreeMap::new(),
            upstream: BTreeMap::new(),
            grads: BTreeMap::new(),
        };
        for (key, view) in st.tensors() {
            let tensor = seg_nn::checkpoint::tensor_from_view(&key, &view)?;
            let (kind, rest) = key
                .split_once('.')
                .ok_or_else(|| format_error(path, format!("tensor name {key}")))?;
            let map = match kind {
                "in" => &mut case.inputs,
                "param" => &mut case.module_params,
                "out" => &mut case.outputs,
                "gout" => &mut case.upstream,
                "grad" => &mut case.grads,
                _ => return Err(format_error(path, format!("unknown tensor kind in {key}"))),
            };
            map.insert(rest.to_string(), tensor);
        }
        Ok(case)
    }
}

/// What a case came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every output and gradient within tolerance; the largest relative error.
    Pass {
        rel_err: f64,
    },
    Fail(String),
}

/// `||a - e|| / max(||e||, 1e-12)`, infinite when any value is NaN.
fn relative_error(actual: &[f64], expected: &[f64]) -> f64 {
    let diff: f64 = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm = expected.iter().map(|e| e * e).sum::<f64>().sqrt();
    if actual.iter().any(|a| a.is_nan()) || diff.is_nan() {
        return f64::INFINITY;
    }
    diff / norm.max(1e-12)
}

/// Compares one named tensor against its reference; `Err` describes a failure.
fn compare(what: &str, actual: &Tensor, expected: &Tensor, tol: f64) -> std::result::Result<f64, String> {
    if actual.shape() != expected.shape() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    let err = relative_error(&actual.to_vec_f64(), &expected.to_vec_f64());
    if err <= tol {
        Ok(err)
    } else {
        Err(format!("{what}: rel_err={err:.3e} > tol={tol:.0e}"))
    }
}

/// Runs one case on the CPU: forward, then (when the case has upstream gradients) backward.
pub fn run_case(case: &Case) -> Outcome {
    run_case_on(case, Device::Cpu)
}

/// Runs one case with its inputs, parameters and upstream gradients moved to `device`; outputs and
/// gradients are compared on the host.
pub fn run_case_on(case: &Case, device: Device) -> Outcome {
    match check_case(case, device) {
        Ok(rel_err) => Outcome::Pass { rel_err },
        Err(reason) => Outcome::Fail(reason),
    }
}

fn check_case(case: &Case, device: Device) -> std::result::Result<f64, String> {
    let wants_grad = !case.upstream.is_empty();
    let moved =
        |map: &BTreeMap<String, Tensor>, track: bool| -> std::result::Result<BTreeMap<String, Tensor>, String> {
            map.iter()
                .map(|(k, t)| {
                    let t = t.to_device(device).map_err(|e| e.to_string())?;
                    Ok((k.clone(), if track { t.requires_grad() } else { t }))
                })
                .collect()
        };
    let inputs = moved(&case.inputs, wants_grad)?;
    let module_params = moved(&case.module_params, wants_grad)?;
    let upstream = moved(&case.upstream, false)?;
    let outputs = ops::forward(case, &inputs, &module_params).map_err(|e| e.to_string())?;
    let mut worst: f64 = 0.0;
    let mut failures = Vec::new();
    let mut check = |what: String, actual: &Tensor, expected: &Tensor| match compare(&what, actual, expected, case.tol)
    {
        Ok(err) => worst = worst.max(err),
        Err(failure) => failures.push(failure),
    };
    for (name, expected) in &case.outputs {
        let actual = outputs
            .get(name)
            .ok_or_else(|| format!("the op gave no output {name:?}"))?;
        check(format!("out.{name}"), actual, expected);
    }
    if !wants_grad {
        return if failures.is_empty() {
            Ok(worst)
        } else {
            Err(failures.join("; "))
        };
    }
    let mut loss: Option<Tensor> = None;
    for (name, gout) in &upstream {
        let out = outputs
            .get(name)
            .ok_or_else(|| format!("the op gave no output {name:?} to differentiate"))?;
        let term = out.mul(gout).and_then(|t| t.sum_all()).map_err(|e| e.to_string())?;
        loss = Some(match loss {
            None => term,
            Some(l) => l.add(&term).map_err(|e| e.to_string())?,
        });
    }
    let loss = loss.expect("upstream is not empty");
    let grads = loss.backward().map_err(|e| format!("backward: {e}"))?;
    for (name, expected) in &case.grads {
        let leaf = match name.strip_prefix("param.") {
            Some(key) => module_params.get(key),
            None => inputs.get(name),
        }
        .ok_or_else(|| format!("grad.{name} names no input or parameter"))?;
        let actual = grads
            .get(leaf)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(leaf.shape(), DType::F32));
        check(format!("grad.{name}"), &actual, expected);
    }
    if failures.is_empty() {
        Ok(worst)
    } else {
        Err(failures.join("; "))
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub op: String,
    pub outcome: Outcome,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Pass { rel_err } => write!(f, "PASS {}  rel_err={rel_err:.2e}", self.name),
            Outcome::Fail(reason) => write!(f, "FAIL {}  {reason}", self.name),
        }
    }
}

/// The fixture files of `dir` (`*.safetensors`), sorted by name.
pub fn fixture_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs every fixture of `dir` on the CPU, calling `each` with each report as it is made. A file that
/// cannot be read is a failed case.
pub fn run_dir(dir: &Path, each: impl FnMut(&Report)) -> Result<Vec<Report>> {
    run_dir_on(dir, Device::Cpu, each)
}

/// Runs every fixture of `dir` on `device` (see [`run_case_on`]).
pub fn run_dir_on(dir: &Path, device: Device, mut each: impl FnMut(&Report)) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    for path in fixture_files(dir)? {
        let report = match Case::load(&path) {
            Ok(case) => Report {
                outcome: run_case_on(&case, device),
                name: case.name,
                op: case.op,
            },
            Err(e) => Report {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                op: String::new(),
                outcome: Outcome::Fail(format!("unreadable fixture: {e}")),
            },
        };
        each(&report);
        reports.push(report);
    }
    Ok(reports)
}
