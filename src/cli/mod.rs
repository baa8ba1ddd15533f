//! The subcommands of the `seg` program that do a job: train, infer, eval.

pub mod eval;
pub mod infer;
pub mod train;

use seg::train::ClassMetrics;
use seg::{Error, Result};

/// One value for all three axes, or three comma-separated values `D,H,W`.
pub fn parse_triple<T: std::str::FromStr + Copy>(what: &str, text: &str) -> Result<[T; 3]> {
    let values: Option<Vec<T>> = text.split(',').map(|v| v.trim().parse().ok()).collect();
    match values.as_deref() {
        Some(&[v]) => Ok([v; 3]),
        Some(&[d, h, w]) => Ok([d, h, w]),
        _ => Err(Error::invalid(
            "arguments",
            format!("--{what} needs one number or three (D,H,W), found {text:?}"),
        )),
    }
}

/// The per-class metrics as a table.
pub fn metrics_table(names: &[&str], m: &ClassMetrics) -> String {
    let mut out = format!("{:<10} {:>7} {:>9} {:>9}\n", "class", "Dice", "HD95 mm", "ASSD mm");
    for (i, name) in names.iter().enumerate() {
        out += &format!("{name:<10} {:>7.3} {:>9.2} {:>9.2}\n", m.dice[i], m.hd95[i], m.assd[i]);
    }
    out
}
