//! MONAI's `sliding_window_inference`: a network applied to overlapping windows of a large volume,
//! the window outputs blended by an importance map, without autodiff.
//!
//! Windows (MONAI's `dense_patch_slices`): along each axis, interval `i = max(floor(roi (1 -
//! overlap)), 1)` (`roi` itself when the roi equals the image), starts `0, i, 2i, ...` until a window
//! reaches the end, the last one shifted back to end at the border. Output
//! `y(v) = sum_w m(v - o_w) f_w(v) / sum_w m(v - o_w)` with the importance map `m` constant 1 or
//! the Gaussian `prod_a exp(-t_a^2 / (2 (sigma_scale roi_a)^2))`, `t_a` measured from the window's
//! centre, clamped below at `max(min m, 1e-3)`. An image smaller than the roi is padded (half before,
//! the rest after) and the padding cropped off the output.

use seg_tensor::{no_grad, DType, Error, PadMode, Result, Tensor};

/// How overlapping window outputs are weighted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blend {
    Constant,
    /// MONAI's "gaussian" with `sigma = sigma_scale * roi` per axis (MONAI's default 0.125).
    Gaussian {
        sigma_scale: f64,
    },
}

/// `sliding_window_inference`'s arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Window size per spatial axis; 0 means the whole axis (MONAI's -1/None).
    pub roi_size: Vec<usize>,
    /// Windows per predictor call.
    pub sw_batch_size: usize,
    /// Fraction of overlap between neighbouring windows, in `[0, 1)`.
    pub overlap: f64,
    pub blend: Blend,
    pub padding_mode: PadMode,
    pub cval: f64,
}

impl SlidingWindow {
    /// MONAI's defaults for `roi_size`: batch 1, overlap 0.25, constant blending, zero padding.
    pub fn new(roi_size: &[usize]) -> Self {
        Self {
            roi_size: roi_size.to_vec(),
            sw_batch_size: 1,
            overlap: 0.25,
            blend: Blend::Constant,
            padding_mode: PadMode::Constant,
            cval: 0.0,
        }
    }

    /// The window start offsets along one axis of `size` for a window of `roi` (MONAI's
    /// `_get_scan_interval` and `dense_patch_slices`).
    fn starts(&self, size: usize, roi: usize) -> Vec<usize> {
        let interval = if roi == size {
            roi
        } else {
            ((roi as f64 * (1.0 - self.overlap)) as usize).max(1)
        };
        let count = (0..).find(|d| d * interval + roi >= size).unwrap_or(0) + 1;
        (0..count).map(|d| (d * interval).min(size - roi)).collect()
    }

    /// The importance map of a window of `roi` sizes, flattened row-major.
    fn importance_map(&self, roi: &[usize]) -> Vec<f32> {
        let axes: Vec<Vec<f32>> = roi
            .iter()
            .map(|&r| match self.blend {
                Blend::Constant => vec![1.0; r],
                Blend::Gaussian { sigma_scale } => {
                    let sigma = (r as f64 * sigma_scale) as f32;
                    (0..r)
                        .map(|i| {
                            let t = i as f32 - (r as f32 - 1.0) / 2.0;
                            (t * t / (-2.0 * sigma * sigma)).exp()
                        })
                        .collect()
                }
            })
            .collect();
        let mut map = vec![1.0f32];
        for axis in &axes {
            map = map.iter().flat_map(|&m| axis.iter().map(move |&a| m * a)).collect();
        }
        let floor = map.iter().copied().fold(f32::INFINITY, f32::min).max(1e-3);
        map.iter_mut().for_each(|m| *m = m.max(floor));
        map
    }

    /// Runs `predictor` on every window of `input` `(N, C, *spatial)` (1 to 3 spatial axes) and
    /// blends its `(B, C_out, *roi)` outputs into `(N, C_out, *spatial)`. The windows are cut on
    /// `input`'s device; the predictor may answer on any device (a GPU's output is read back one
    /// batch of windows at a time), and the blend runs on the host, so the result is on the host.
    pub fn run(&self, input: &Tensor, predictor: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        no_grad(|| self.run_no_grad(input, &predictor))
    }

    fn run_no_grad(&self, input: &Tensor, predictor: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let dims = input.rank().saturating_sub(2);
        if !(1..=3).contains(&dims) || self.roi_size.len() != dims {
            return Err(Error::ShapeMismatch {
                op: "sliding_window_inference",
                expected: format!("an input (N, C, spatial...) with {} spatial axes", self.roi_size.len()),
                found: input.shape().to_vec(),
            });
        }
        if !(0.0..1.0).contains(&self.overlap) || self.sw_batch_size == 0 {
            return Err(Error::invalid(
                "sliding_window_inference",
                format!(
                    "overlap must be in [0, 1) and sw_batch_size positive, found {} and {}",
                    self.overlap, self.sw_batch_size
                ),
            ));
        }
        let spatial = &input.shape()[2..];
        let roi: Vec<usize> = self
            .roi_size
            .iter()
            .zip(spatial)
            .map(|(&r, &s)| if r == 0 { s } else { r })
            .collect();
        // Pad axes smaller than the roi: half before, the rest after (F.pad order: last axis first).
        let mut pads = Vec::new();
        for a in (0..dims).rev() {
            let diff = roi[a].saturating_sub(spatial[a]);
            pads.extend([(diff / 2) as isize, (diff - diff / 2) as isize]);
        }
        let padded = if pads.iter().any(|&p| p != 0) {
            input.pad(&pads, self.padding_mode, self.cval)?
        } else {
            input.clone()
        };
        let size = padded.shape()[2..].to_vec();
        let per_axis: Vec<Vec<usize>> = (0..dims).map(|a| self.starts(size[a], roi[a])).collect();
        let mut windows: Vec<Vec<usize>> = vec![vec![]];
        for starts in &per_axis {
            windows = windows
                .iter()
                .flat_map(|w| starts.iter().map(move |&s| [w.as_slice(), &[s]].concat()))
                .collect();
        }
        let map = self.importance_map(&roi);
        let ones = vec![1.0; map.len()];
        let n = padded.shape()[0];
        let mut out: Option<(Vec<f32>, usize)> = None;
        let mut count = vec![0.0f32; size.iter().product()];
        for batch in 0..n {
            let image = padded.narrow(0, batch, 1)?;
            for chunk in windows.chunks(self.sw_batch_size) {
                let crops = chunk
                    .iter()
                    .map(|start| crop(&image, start, &roi))
                    .collect::<Result<Vec<_>>>()?;
                let pred = predictor(&Tensor::cat(&crops.iter().collect::<Vec<_>>(), 0)?)?.to_dtype(DType::F32)?;
                let channels = check_prediction(&pred, chunk.len(), &roi)?;
                let (acc, c_out) = out.get_or_insert_with(|| (vec![0.0; n * channels * count.len()], channels));
                if *c_out != channels {
                    return Err(Error::invalid(
                        "sliding_window_inference",
                        "the predictor changed its channel count",
                    ));
                }
                let values = pred.to_vec::<f32>()?;
                let window_len = map.len();
                for (w, start) in chunk.iter().enumerate() {
                    for c in 0..channels {
                        let src = &values[(w * channels + c) * window_len..][..window_len];
                        let dst = &mut acc[(batch * channels + c) * count.len()..][..count.len()];
                        scatter_add(dst, &size, start, &roi, src, &map);
                    }
                    if batch == 0 {
                        scatter_add(&mut count, &size, start, &roi, &map, &ones);
                    }
                }
            }
        }
        let (mut acc, channels) = out.ok_or_else(|| Error::invalid("sliding_window_inference", "an empty batch"))?;
        for plane in acc.chunks_mut(count.len()) {
            plane.iter_mut().zip(&count).for_each(|(v, c)| *v /= c);
        }
        let blended = Tensor::from_vec(acc, &[[n, channels].as_slice(), &size].concat())?;
        // Crop the padding back off.
        (0..dims).try_fold(blended, |t, a| {
            t.narrow(2 + a as isize, pads[2 * (dims - 1 - a)] as usize, spatial[a])
        })
    }
}

/// The window of `roi` at `start` of `image` `(1, C, *spatial)`, contiguous.
fn crop(image: &Tensor, start: &[usize], roi: &[usize]) -> Result<Tensor> {
    start
        .iter()
        .zip(roi)
        .enumerate()
        .try_fold(image.clone(), |t, (a, (&s, &r))| t.narrow(2 + a as isize, s, r))?
        .contiguous()
}

/// The predictor's channel count, after checking its output is `(windows, C, *roi)`.
fn check_prediction(pred: &Tensor, windows: usize, roi: &[usize]) -> Result<usize> {
    let ok = pred.rank() == roi.len() + 2 && pred.shape()[0] == windows && &pred.shape()[2..] == roi;
    if !ok {
        return Err(Error::ShapeMismatch {
            op: "sliding_window_inference",
            expected: format!("predictor output ({windows}, C, {roi:?})"),
            found: pred.shape().to_vec(),
        });
    }
    Ok(pred.shape()[1])
}

/// `dst[start + i] += src[i] * weight[i]` over a window of `roi` in a volume of `size` (row-major).
fn scatter_add(dst: &mut [f32], size: &[usize], start: &[usize], roi: &[usize], src: &[f32], weight: &[f32]) {
    let (size, start, roi) = (as_3d(size, 1), as_3d(start, 0), as_3d(roi, 1));
    let row = roi[2];
    for z in 0..roi[0] {
        for y in 0..roi[1] {
            let at = ((start[0] + z) * size[1] + start[1] + y) * size[2] + start[2];
            let from = (z * roi[1] + y) * row;
            let targets = dst[at..at + row].iter_mut();
            for ((o, s), w) in targets.zip(&src[from..from + row]).zip(&weight[from..from + row]) {
                *o += s * w;
            }
        }
    }
}

/// 1 to 3 per-axis values as three, `fill` in front.
fn as_3d(values: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - values.len()..].copy_from_slice(values);
    out
}
