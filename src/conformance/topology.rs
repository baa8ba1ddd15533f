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

/// `metrics`: `pred`, `target` one-hot; params `include_background` (false), `spacing` (null, a
/// number or one per spatial axis), `ignore_empty` (true). Outputs dice, iou, hd, hd95, assd.
fn metrics(p: &Params, inputs: &Tensors) -> Result<Tensors> {
    let (pred, target) = (input(inputs, "pred")?, input(inputs, "target")?);
    let include_background = p.bool_or("include_background", false)?;
    let ignore_empty = p.bool_or("ignore_empty", true)?;
    let spacing = match p.0.get("spacing") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| Params::bad("spacing", "numbers", v)))
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(v) => Some(vec![v.as_f64().ok_or_else(|| Params::bad("spacing", "a number", v))?]),
    };
    let surface = surface_metrics(pred, target, include_background, spacing.as_deref())?;
    Ok(Tensors::from([
        ("dice".into(), dice(pred, target, include_background, ignore_empty)?),
        ("iou".into(), mean_iou(pred, target, include_background, ignore_empty)?),
        ("hd".into(), surface.hd),
        ("hd95".into(), surface.hd95),
        ("assd".into(), surface.assd),
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
