//! Pictures as PNG: slice overlays of truth and prediction, and learning curves, drawn on a plain RGB
//! [`Canvas`] and encoded by the `png` crate.

mod canvas;
mod curve;
mod font;
mod overlay;

pub use canvas::{Canvas, Rgb};
pub use curve::learning_curve;
pub use overlay::{overlay, overlay_at, PREDICTION_COLOURS, TRUTH_COLOURS};
