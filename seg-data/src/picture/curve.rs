//! A learning-curve plot drawn by hand: training loss (left axis) and validation Dice (right axis, 0 to 1)
//! per epoch.

use seg_tensor::{Error, Result};

use super::canvas::{Canvas, Rgb};

const WIDTH: usize = 900;
const HEIGHT: usize = 540;
const LEFT: usize = 90;
const RIGHT: usize = WIDTH - 90;
const TOP: usize = 70;
const BOTTOM: usize = HEIGHT - 70;
const LOSS: Rgb = [31, 100, 200];
const DICE: Rgb = [230, 110, 0];
const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];

/// A round step near `raw`: 1, 2 or 5 times a power of ten.
fn nice_step(raw: f64) -> f64 {
    let e = 10f64.powf(raw.log10().floor());
    let f = raw / e;
    e * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// `v` with as many decimals as `step` needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Ticks from `lo` to the first multiple of the step at or above `hi`: `(ticks, top)`.
fn axis(lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    let step = nice_step((hi - lo) / 5.0);
    let (first, top) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let n = ((top - first) / step).round() as usize;
    ((0..=n).map(|k| first + k as f64 * step).collect(), top, step)
}

/// The pixel of each finite value `values[e]` at `(px(e), py(value))`.
fn points(values: &[f64], px: impl Fn(usize) -> f64, py: impl Fn(f64) -> f64) -> Vec<Option<(isize, isize)>> {
    let at = |(e, &v): (usize, &f64)| v.is_finite().then(|| (px(e) as isize, py(v) as isize));
    values.iter().enumerate().map(at).collect()
}

/// The plot of `train_loss[e]` and `val_dice[e]` against epoch `e + 1` (a NaN is an epoch without a
/// value). Loss is read on the left axis (from `min(0, min loss)` to a round number above the largest),
/// Dice on the right one (0 to 1).
pub fn learning_curve(train_loss: &[f64], val_dice: &[f64]) -> Result<Canvas> {
    let epochs = train_loss.len().max(val_dice.len());
    let finite = |v: &[f64]| v.iter().copied().filter(|x| x.is_finite()).collect::<Vec<_>>();
    let losses = finite(train_loss);
    if epochs == 0 || (losses.is_empty() && finite(val_dice).is_empty()) {
        return Err(Error::invalid(
            "learning_curve",
            "expected at least one finite loss or Dice, found none",
        ));
    }
    let lo = losses.iter().copied().fold(0.0, f64::min);
    let hi = losses.iter().copied().fold(lo, f64::max);
    let (loss_ticks, loss_top, loss_step) = axis(lo, if hi > lo { hi } else { lo + 1.0 });
    let loss_lo = loss_ticks[0];

    let (l, r, t, b) = (LEFT as f64, RIGHT as f64, TOP as f64, BOTTOM as f64);
    let px = |e: usize| {
        if epochs == 1 {
            (l + r) / 2.0
        } else {
            l + (r - l) * e as f64 / (epochs - 1) as f64
        }
    };
    let py_loss = |v: f64| b - (b - t) * (v - loss_lo) / (loss_top - loss_lo);
    let py_dice = |v: f64| b - (b - t) * v.clamp(0.0, 1.0);

    let mut c = Canvas::new(WIDTH, HEIGHT, [255; 3]);
    let th = Canvas::text_height(2) as isize;
    for &v in &loss_ticks {
        let y = py_loss(v) as isize;
        c.line((LEFT as isize, y), (RIGHT as isize, y), 1, GRID);
        let label = tick_label(v, loss_step);
        c.text(
            LEFT as isize - 10 - Canvas::text_width(&label, 2) as isize,
            y - th / 2,
            &label,
            2,
            LOSS,
        );
    }
    for k in 0..=5 {
        let v = k as f64 / 5.0;
        let y = py_dice(v) as isize;
        c.line((RIGHT as isize, y), (RIGHT as isize + 6, y), 2, INK);
        c.text(RIGHT as isize + 10, y - th / 2, &tick_label(v, 0.2), 2, DICE);
    }
    let x_step = nice_step(epochs as f64 / 10.0).max(1.0) as usize;
    for e in (0..epochs).filter(|e| e == &0 || (e + 1) % x_step == 0) {
        let x = px(e) as isize;
        c.line((x, BOTTOM as isize), (x, BOTTOM as isize + 6), 2, INK);
        let label = (e + 1).to_string();
        c.text(
            x - Canvas::text_width(&label, 2) as isize / 2,
            BOTTOM as isize + 12,
            &label,
            2,
            INK,
        );
    }
    c.line((LEFT as isize, TOP as isize), (LEFT as isize, BOTTOM as isize), 2, INK);
    c.line(
        (RIGHT as isize, TOP as isize),
        (RIGHT as isize, BOTTOM as isize),
        2,
        INK,
    );
    c.line(
        (LEFT as isize, BOTTOM as isize),
        (RIGHT as isize, BOTTOM as isize),
        2,
        INK,
    );

    let series = [
        (points(train_loss, px, py_loss), LOSS),
        (points(val_dice, px, py_dice), DICE),
    ];
    for (points, colour) in series {
        for pair in points.windows(2) {
            if let [Some(a), Some(b)] = pair {
                c.line(*a, *b, 3, colour);
            }
        }
        if epochs <= 60 {
            points
                .iter()
                .flatten()
                .for_each(|&(x, y)| c.fill_rect(x - 3, y - 3, 7, 7, colour));
        }
    }

    let title = "learning curve";
    c.text((WIDTH - Canvas::text_width(title, 3)) as isize / 2, 18, title, 3, INK);
    c.text(LEFT as isize - 60, TOP as isize - 30, "train loss", 2, LOSS);
    let dice = "val dice";
    c.text(
        RIGHT as isize + 60 - Canvas::text_width(dice, 2) as isize,
        TOP as isize - 30,
        dice,
        2,
        DICE,
    );
    let x_label = "epoch";
    c.text(
        (WIDTH - Canvas::text_width(x_label, 2)) as isize / 2,
        HEIGHT as isize - 28,
        x_label,
        2,
        INK,
    );
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_step(0.23), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(20.0, 5.0), "20");
        let (ticks, top, _) = axis(0.0, 1.37);
        assert_eq!((ticks, top), (vec![0.0, 0.5, 1.0, 1.5], 1.5));
    }

    #[test]
    fn curves_are_drawn_in_their_colours() {
        let loss = [1.2, 0.9, 0.7, 0.6, 0.55];
        let dice = [0.2, f64::NAN, 0.6, 0.75, 0.8];
        let c = learning_curve(&loss, &dice).unwrap();
        assert_eq!((c.width, c.height), (WIDTH, HEIGHT));
        assert_eq!(c.get(LEFT, TOP + 1), INK, "left axis");
        let count = |colour: Rgb| {
            (0..c.height)
                .flat_map(|y| (0..c.width).map(move |x| (x, y)))
                .filter(|&(x, y)| c.get(x, y) == colour)
                .count()
        };
        assert!(count(LOSS) > 500 && count(DICE) > 500);
        assert!(learning_curve(&[], &[]).is_err());
        assert!(learning_curve(&[f64::NAN], &[]).is_err());
        assert!(learning_curve(&[0.5], &[0.5]).is_ok());
    }
}
