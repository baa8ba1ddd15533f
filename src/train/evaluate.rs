//! Whole-volume prediction by sliding windows, and the per-class metrics of a label map.

use seg_losses::metrics::{dice, surface_metrics};
use seg_models::{Blend, SlidingWindow};

use super::Model;
use crate::{DType, Error, InterpolateMode, InterpolateOptions, Result, Tensor};

/// Class logits `(1, classes, D, H, W)` of an image `(D, H, W)`: Gaussian-blended sliding windows
/// of `patch` with `overlap`, optionally averaged with the prediction of the image flipped along
/// each axis (test-time augmentation, flipped back). The image stays where it is; each batch of
/// windows runs on the model's device and is blended on the host, so the logits are on the host.
pub fn predict_logits(
    model: &Model,
    image: &Tensor,
    patch: [usize; 3],
    overlap: f64,
    flip_tta: bool,
) -> Result<Tensor> {
    let x = image.unsqueeze(0)?.unsqueeze(0)?;
    let mut sw = SlidingWindow::new(&patch);
    sw.overlap = overlap;
    sw.blend = Blend::Gaussian { sigma_scale: 0.125 };
    sw.sw_batch_size = 2;
    let device = model.device();
    let run = |x: &Tensor| sw.run(x, |w| model.forward(&w.to_device(device)?));
    let mut logits = run(&x)?;
    if flip_tta {
        for axis in [2, 3, 4] {
            logits = logits.add(&run(&x.flip(&[axis])?)?.flip(&[axis])?)?;
        }
        logits = logits.mul_scalar(0.25)?;
    }
    Ok(logits)
}

/// The label map `(D, H, W)` (u8) of class logits `(1, classes, D, H, W)`.
pub fn labels_of(logits: &Tensor) -> Result<Tensor> {
    logits.argmax(1, false)?.squeeze(0)?.to_dtype(DType::U8)
}

/// Dice, 95th-percentile Hausdorff distance and average symmetric surface distance (in the units of
/// `spacing`) of each foreground class `1..classes`, as MONAI computes them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMetrics {
    pub dice: Vec<f64>,
    pub hd95: Vec<f64>,
    pub assd: Vec<f64>,
}

impl ClassMetrics {
    /// The mean Dice over the foreground classes.
    pub fn mean_dice(&self) -> f64 {
        self.dice.iter().sum::<f64>() / self.dice.len().max(1) as f64
    }
}

/// One-hot `(1, classes, D, H, W)` f32 of a label map `(D, H, W)`.
fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    labels
        .to_dtype(DType::I64)?
        .one_hot(Some(classes), DType::F32)?
        .permute(&[3, 0, 1, 2])?
        .unsqueeze(0)
}

/// The metrics of `prediction` against `truth` (label maps of one shape).
pub fn evaluate(prediction: &Tensor, truth: &Tensor, classes: usize, spacing: [f64; 3]) -> Result<ClassMetrics> {
    if prediction.shape() != truth.shape() {
        return Err(Error::ShapeMismatch {
            op: "evaluate",
            expected: format!("a prediction of the truth's shape {:?}", truth.shape()),
            found: prediction.shape().to_vec(),
        });
    }
    let (p, t) = (one_hot(prediction, classes)?, one_hot(truth, classes)?);
    let surface = surface_metrics(&p, &t, false, Some(&spacing))?;
    Ok(ClassMetrics {
        dice: dice(&p, &t, false, true)?.to_vec_f64(),
        hd95: surface.hd95.to_vec_f64(),
        assd: surface.assd.to_vec_f64(),
    })
}

/// The label map of a whole image on its own grid, as `seg infer` makes it: nnU-Net's preparation
/// (crop to the nonzero box, z-score, resample from `spacing` to the network's spacing), sliding
/// windows, then, as nnU-Net does, the class probabilities resampled (trilinear) back to the box's
/// original size before the argmax, and background outside the box.
pub fn segment_volume(
    model: &Model,
    spec: &super::ModelSpec,
    image: &Tensor,
    spacing: [f64; 3],
    overlap: f64,
    flip_tta: bool,
) -> Result<Tensor> {
    let prepared = seg_data::pipeline::prepare(image, None, spacing, Some(spec.spacing))?;
    crate::no_grad(|| {
        let probabilities = predict_logits(model, &prepared.image, spec.patch, overlap, flip_tta)?.softmax(1)?;
        let box_shape: Vec<usize> = prepared.bbox.iter().map(|r| r.len()).collect();
        let resampled = if probabilities.shape()[2..] == box_shape[..] {
            probabilities
        } else {
            probabilities.interpolate(&InterpolateOptions {
                align_corners: Some(false),
                ..InterpolateOptions::size(&box_shape, InterpolateMode::Trilinear)
            })?
        };
        seg_data::preprocess::uncrop(&labels_of(&resampled)?, &prepared.bbox, prepared.original_shape)
    })
}
