//! Mid-slices of a volume (axial, coronal, sagittal) with truth and prediction contours, in one picture.

use seg_tensor::{Error, Result, Tensor};

use super::canvas::{Canvas, Rgb};
use crate::volume::{dims3, image_values, label_values, same_dims};

/// Contour colours of truth classes 1, 2, ... (cool colours), cycled past the last.
pub const TRUTH_COLOURS: [Rgb; 4] = [[40, 230, 60], [30, 160, 255], [170, 110, 255], [0, 225, 225]];
/// Contour colours of predicted classes 1, 2, ... (warm colours), cycled past the last.
pub const PREDICTION_COLOURS: [Rgb; 4] = [[255, 45, 45], [255, 215, 0], [255, 130, 0], [255, 60, 200]];

const BACKGROUND: Rgb = [18, 18, 18];
const TEXT: Rgb = [235, 235, 235];
const MARGIN: usize = 12;
const SCALE: usize = 2;

/// The three views, by the axis they cut across.
#[derive(Clone, Copy)]
enum View {
    Axial,
    Coronal,
    Sagittal,
}

impl View {
    const ALL: [View; 3] = [View::Axial, View::Coronal, View::Sagittal];

    fn title(self) -> &'static str {
        match self {
            View::Axial => "axial",
            View::Coronal => "coronal",
            View::Sagittal => "sagittal",
        }
    }

    /// The slice through `[cz, cy, cx]` of a `(D, H, W)` buffer as `(width, height, pixels)`, top row first: axial
    /// `(x across, y up)`, coronal `(x across, z up)`, sagittal `(y across, z up)`, so that superior and
    /// anterior are up for an RAS-oriented volume and the patient's right is on the right.
    fn slice<T: Copy>(self, v: &[T], [d, h, w]: [usize; 3], [cz, cy, cx]: [usize; 3]) -> (usize, usize, Vec<T>) {
        let at = |z: usize, y: usize, x: usize| v[(z * h + y) * w + x];
        match self {
            View::Axial => (
                w,
                h,
                (0..h).rev().flat_map(|y| (0..w).map(move |x| at(cz, y, x))).collect(),
            ),
            View::Coronal => (
                w,
                d,
                (0..d).rev().flat_map(|z| (0..w).map(move |x| at(z, cy, x))).collect(),
            ),
            View::Sagittal => (
                h,
                d,
                (0..d).rev().flat_map(|z| (0..h).map(move |y| at(z, y, cx))).collect(),
            ),
        }
    }
}

/// Nearest-neighbour upscaling of a `w x h` slice by `zoom`.
fn upscale<T: Copy>(v: &[T], w: usize, h: usize, zoom: usize) -> Vec<T> {
    (0..h * zoom)
        .flat_map(|y| (0..w * zoom).map(move |x| v[(y / zoom) * w + x / zoom]))
        .collect()
}

/// The values at fractions `lo` and `hi` of the sorted values (nearest rank).
fn percentiles(v: &[f32], lo: f64, hi: f64) -> (f32, f32) {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (0.0, 1.0);
    }
    let rank = |q: f64| ((s.len() - 1) as f64 * q).round() as usize;
    let (i, j) = (rank(lo), rank(hi));
    let a = *s.select_nth_unstable_by(i, f32::total_cmp).1;
    let b = *s.select_nth_unstable_by(j, f32::total_cmp).1;
    (a, b)
}

/// Paints the boundary pixels of `labels` (a `w x h` slice): a pixel of class `c > 0` with a 4-neighbour
/// of another class, or on the slice's edge, gets `colours[(c - 1) % len]`.
fn draw_contours(panel: &mut Canvas, labels: &[u8], w: usize, h: usize, colours: &[Rgb]) {
    for y in 0..h {
        for x in 0..w {
            let c = labels[y * w + x];
            let differs = |nx: isize, ny: isize| {
                nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize || labels[ny as usize * w + nx as usize] != c
            };
            let (xi, yi) = (x as isize, y as isize);
            if c != 0 && (differs(xi - 1, yi) || differs(xi + 1, yi) || differs(xi, yi - 1) || differs(xi, yi + 1)) {
                panel.set(xi, yi, colours[(c as usize - 1) % colours.len()]);
            }
        }
    }
}

/// One view of the grey image with the contours of `labels`, zoomed. Grey levels span `window`; a voxel
/// of exactly 0 (outside the foreground of a z-scored or masked image) is black.
fn panel(
    (w, h, grey): (usize, usize, Vec<f32>),
    lab: &[u8],
    window: (f32, f32),
    zoom: usize,
    colours: &[Rgb],
) -> Canvas {
    let (w, h, grey, lab) = (w * zoom, h * zoom, upscale(&grey, w, h, zoom), upscale(lab, w, h, zoom));
    let mut c = Canvas::new(w, h, BACKGROUND);
    let span = (window.1 - window.0).max(f32::EPSILON);
    for (i, &g) in grey.iter().enumerate() {
        let v = if g == 0.0 {
            0
        } else {
            (((g - window.0) / span).clamp(0.0, 1.0) * 255.0).round() as u8
        };
        c.set((i % w) as isize, (i / w) as isize, [v; 3]);
    }
    draw_contours(&mut c, &lab, w, h, colours);
    c
}

/// The axial, coronal and sagittal mid-slices of `image` (f32, `(D, H, W)`) with the contours of `truth`
/// and, when given, of `prediction` (u8 label maps of the same shape): [`overlay_at`] the centre voxel.
pub fn overlay(image: &Tensor, truth: &Tensor, prediction: Option<&Tensor>, class_names: &[&str]) -> Result<Canvas> {
    let centre = dims3(image, "overlay")?.map(|n| n / 2);
    overlay_at(image, truth, prediction, class_names, centre)
}

/// The axial, coronal and sagittal slices through voxel `centre` (`(z, y, x)`) of `image` (f32,
/// `(D, H, W)`): a row with the contours of `truth` and, when given, a row with those of `prediction`
/// (u8 label maps of the same shape), each view titled, and a legend naming class `k` by
/// `class_names[k - 1]`. The grey window is the 0.5th to 99.5th percentile of the nonzero voxels. Slices
/// are zoomed by a whole factor so that the tallest is at least 300 pixels; coronal and sagittal views
/// are stacked when both fit beside the axial one (a thin slab).
pub fn overlay_at(
    image: &Tensor,
    truth: &Tensor,
    prediction: Option<&Tensor>,
    class_names: &[&str],
    centre: [usize; 3],
) -> Result<Canvas> {
    let (im, dims) = image_values(image, "overlay")?;
    let (tr, truth_dims) = label_values(truth, "overlay")?;
    same_dims("overlay", dims, truth_dims)?;
    if (0..3).any(|a| centre[a] >= dims[a]) {
        return Err(Error::invalid(
            "overlay",
            format!("centre {centre:?} is outside the volume {dims:?}"),
        ));
    }
    let pred = prediction
        .map(|p| {
            let (p, pred_dims) = label_values(p, "overlay")?;
            same_dims("overlay", dims, pred_dims)?;
            Ok::<_, Error>(p)
        })
        .transpose()?;
    let zoom = 300usize.div_ceil(dims[0].max(dims[1])).max(1);
    let nonzero: Vec<f32> = im.iter().copied().filter(|&v| v != 0.0).collect();
    let window = percentiles(&nonzero, 0.005, 0.995);
    let mut rows = vec![("truth", &tr, &TRUTH_COLOURS)];
    if let Some(p) = &pred {
        rows.push(("prediction", p, &PREDICTION_COLOURS));
    }
    let panels: Vec<[Canvas; 3]> = rows
        .iter()
        .map(|(_, labels, colours)| {
            View::ALL.map(|v| {
                let (_, _, lab) = v.slice(labels, dims, centre);
                panel(v.slice(&im, dims, centre), &lab, window, zoom, &colours[..])
            })
        })
        .collect();

    // Where each titled view sits in a row.
    let text_h = Canvas::text_height(SCALE);
    let cell_h = |p: &Canvas| text_h + MARGIN / 2 + p.height;
    let [ax, co, sa] = &panels[0];
    let right = ax.width + MARGIN;
    let stacked = cell_h(co) + MARGIN + cell_h(sa) <= cell_h(ax);
    let at = if stacked {
        [(0, 0), (right, 0), (right, cell_h(co) + MARGIN)]
    } else {
        [(0, 0), (right, 0), (right + co.width + MARGIN, 0)]
    };
    let row_w = (0..3).map(|k| at[k].0 + panels[0][k].width).max().expect("three views");
    let row_h = (0..3)
        .map(|k| at[k].1 + cell_h(&panels[0][k]))
        .max()
        .expect("three views");

    let label_w = Canvas::text_width("prediction", SCALE) + 2 * MARGIN;
    let legend_h = text_h + 2 * MARGIN;
    let (width, height) = (
        label_w + row_w + MARGIN,
        MARGIN + rows.len() * (row_h + MARGIN) + legend_h,
    );
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    let mut y = MARGIN;
    for ((name, _, _), row) in rows.iter().zip(&panels) {
        canvas.text(
            MARGIN as isize,
            (y + row_h / 2 - text_h / 2) as isize,
            name,
            SCALE,
            TEXT,
        );
        for ((view, p), (dx, dy)) in View::ALL.iter().zip(row).zip(at) {
            let (x, top) = ((label_w + dx) as isize, (y + dy) as isize);
            canvas.text(x, top, view.title(), SCALE, TEXT);
            canvas.blit(p, x, top + (text_h + MARGIN / 2) as isize);
        }
        y += row_h + MARGIN;
    }
    let mut x = MARGIN;
    for (name, _, colours) in &rows {
        canvas.text(x as isize, (y + MARGIN) as isize, &format!("{name}:"), SCALE, TEXT);
        x += Canvas::text_width(name, SCALE) + 3 * MARGIN;
        for (k, class) in class_names.iter().enumerate() {
            canvas.fill_rect(
                x as isize,
                (y + MARGIN) as isize,
                text_h,
                text_h,
                colours[k % colours.len()],
            );
            x += text_h + MARGIN / 2;
            canvas.text(x as isize, (y + MARGIN) as isize, class, SCALE, TEXT);
            x += Canvas::text_width(class, SCALE) + 2 * MARGIN;
        }
        x += 2 * MARGIN;
    }
    Ok(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contours_are_boundaries_in_their_colours() {
        // A 6 x 6 slice with a 4 x 4 square of class 1 holding a 2 x 2 square of class 2.
        let labels: Vec<u8> = (0..36)
            .map(|i| {
                let (x, y) = (i % 6, i / 6);
                match (x, y) {
                    (2..=3, 2..=3) => 2,
                    (1..=4, 1..=4) => 1,
                    _ => 0,
                }
            })
            .collect();
        let mut c = Canvas::new(6, 6, [0; 3]);
        draw_contours(&mut c, &labels, 6, 6, &TRUTH_COLOURS);
        assert_eq!(c.get(1, 1), TRUTH_COLOURS[0]);
        assert_eq!(c.get(2, 2), TRUTH_COLOURS[1]);
        assert_eq!(c.get(0, 0), [0; 3]);
        let (x, y) = (3, 3);
        assert_eq!(
            c.get(x, y),
            TRUTH_COLOURS[1],
            "every pixel of a 2 x 2 square is on its boundary"
        );
    }

    #[test]
    fn views_are_oriented() {
        // Value = 100 z + 10 y + x on a 3 x 3 x 3 volume: the axial mid-slice (z = 1) has y = 2 on top.
        let v: Vec<f32> = (0..27)
            .map(|i| (100 * (i / 9) + 10 * ((i / 3) % 3) + i % 3) as f32)
            .collect();
        let (w, h, s) = View::Axial.slice(&v, [3, 3, 3], [1, 1, 1]);
        assert_eq!((w, h, s[0], s[8]), (3, 3, 120.0, 102.0));
        let (_, _, s) = View::Coronal.slice(&v, [3, 3, 3], [1, 1, 1]);
        assert_eq!((s[0], s[8]), (210.0, 12.0));
        let (_, _, s) = View::Sagittal.slice(&v, [3, 3, 3], [1, 1, 1]);
        assert_eq!((s[0], s[8]), (201.0, 21.0));
        assert_eq!(
            upscale(&[1, 2, 3, 4], 2, 2, 2),
            vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
    }

    #[test]
    fn overlay_checks_shapes_and_lays_out_rows() {
        let image = Tensor::rand(&[10, 12, 14], 0, seg_tensor::DType::F32).unwrap();
        let labels = Tensor::from_vec((0..1680).map(|i| (i % 3) as u8).collect::<Vec<_>>(), &[10, 12, 14]).unwrap();
        let one = overlay(&image, &labels, None, &["gm", "wm"]).unwrap();
        let two = overlay(&image, &labels, Some(&labels), &["gm", "wm"]).unwrap();
        assert_eq!(one.width, two.width);
        assert!(two.height > one.height + 300);
        let wrong = Tensor::zeros(&[10, 12, 13], seg_tensor::DType::U8);
        assert!(overlay(&image, &labels, Some(&wrong), &[]).is_err());
    }
}
