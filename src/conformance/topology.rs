//! Conformance glue of the metrics and topology ops: `metrics`, `betti_numbers`,
//! `persistence_cubical`.

use std::collections::BTreeMap;

use seg_losses::metrics::{dice, mean_iou, surface_metrics};
use seg_losses::topology::{betti_numbers, persistence_diagram, PersistencePair};

use super::Params;
use crate::{Error, Result, Tensor};

type Tensors = BTreeMap<String, Tensor>;

/// How the fixtures store an infinite death.
const FIXTURE_INFINITY: f64 = 1e30;

fn input<'a>(inputs: &'a Tensors, name: &str) -> Result<&'a Tensor> {
    inputs
        .get(name)
        .ok_or_else(|| Error::invalid("conformance", format!("the case has no input in.{name}")))
}

/// A `spacing` parameter as MONAI's `prepare_spacing` reads it: absent or null, one number, one
/// number per spatial axis (each as a list), or one such list per batch item.
fn spacings(p: &Params, batch: usize) -> Result<Vec<Option<Vec<f64>>>> {
    let numbers = |v: &serde_json::Value| -> Result<Vec<f64>> {
        match v {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|x| x.as_f64().ok_or_else(|| Params::bad("spacing", "numbers", x)))
                .collect(),
            v => Ok(vec![v.as_f64().ok_or_else(|| Params::bad("spacing", "a number", v))?]),
        }
    };
    Ok(match p.0.get("spacing") {
        None | Some(serde_json::Value::Null) => vec![None; batch],
        Some(serde_json::Value::Array(items)) if items.first().is_some_and(|v| v.is_array()) => {
            if items.len() != batch {
                return Err(Error::invalid(
                    "metrics",
                    format!("expected one spacing per batch item ({batch}), found {}", items.len()),
                ));
            }
            items.iter().map(|v| numbers(v).map(Some)).collect::<Result<_>>()?
        }
        Some(v) => vec![Some(numbers(v)?); batch],
    })
}

/// `metrics`: `pred`, `target` one-hot; params `include_background` (false), `spacing` (see
/// [`spacings`]), `ignore_empty` (true). Outputs dice, iou, hd, hd95, assd.
fn metrics(p: &Params, inputs: &Tensors) -> Result<Tensors> {
    let (pred, target) = (input(inputs, "pred")?, input(inputs, "target")?);
    let include_background = p.bool_or("include_background", false)?;
    let ignore_empty = p.bool_or("ignore_empty", true)?;
    let batch = pred.shape().first().copied().unwrap_or(0);
    let (mut hd, mut hd95, mut assd) = (Vec::new(), Vec::new(), Vec::new());
    for (b, spacing) in spacings(p, batch)?.iter().enumerate() {
        let (pred, target) = (pred.narrow(0, b, 1)?, target.narrow(0, b, 1)?);
        let surface = surface_metrics(&pred, &target, include_background, spacing.as_deref())?;
        hd.push(surface.hd);
        hd95.push(surface.hd95);
        assd.push(surface.assd);
    }
    let rows = |items: Vec<Tensor>| Tensor::cat(&items.iter().collect::<Vec<_>>(), 0);
    Ok(Tensors::from([
        ("dice".into(), dice(pred, target, include_background, ignore_empty)?),
        ("iou".into(), mean_iou(pred, target, include_background, ignore_empty)?),
        ("hd".into(), rows(hd)?),
        ("hd95".into(), rows(hd95)?),
        ("assd".into(), rows(assd)?),
    ]))
}

/// `(n, 2)` rows of (birth, death), an infinite death as the fixtures' 1e30.
fn pairs_tensor(pairs: &[PersistencePair]) -> Result<Tensor> {
    let values: Vec<f32> = pairs
        .iter()
        .flat_map(|p| {
            [
                p.birth,
                if p.death.is_infinite() {
                    FIXTURE_INFINITY
                } else {
                    p.death
                },
            ]
        })
        .map(|v| v as f32)
        .collect();
    Tensor::from_vec(values, &[pairs.len(), 2])
}

/// The outputs of the metrics and topology ops, `None` for any other op.
pub(super) fn forward(op: &str, p: &Params, inputs: &Tensors) -> Result<Option<Tensors>> {
    Ok(Some(match op {
        "metrics" => metrics(p, inputs)?,
        "betti_numbers" => {
            let betti: Vec<f32> = betti_numbers(input(inputs, "mask")?)?
                .iter()
                .map(|&b| b as f32)
                .collect();
            let n = betti.len();
            Tensors::from([("betti".into(), Tensor::from_vec(betti, &[1, n])?)])
        }
        "persistence_cubical" => {
            let diagram = persistence_diagram(input(inputs, "f")?)?;
            let names = ["h0", "h1"];
            diagram
                .by_dim
                .iter()
                .zip(names)
                .map(|(pairs, name)| Ok((name.to_string(), pairs_tensor(pairs)?)))
                .collect::<Result<Tensors>>()?
        }
        _ => return Ok(None),
    }))
}
