//! The per (batch item, class) binary masks that every metric reads.

use rayon::prelude::*;
use seg_tensor::{DType, Error, Result, Tensor};

/// A binarized one-hot prediction and ground truth `(B, C, spatial...)` as boolean masks, one
/// `(prediction, truth)` pair per batch item and kept class. Without the background, classes `1..C`
/// are kept, as MONAI's `ignore_background` (a single channel is kept either way). Values are read
/// as f32.
#[derive(Debug, Clone)]
pub struct ClassMasks {
    pub batch: usize,
    pub classes: usize,
    pub spatial: Vec<usize>,
    pred: Vec<bool>,
    truth: Vec<bool>,
}

impl ClassMasks {
    /// Reads `pred` and `target`: the same shape `(B, C, spatial...)` with at least one spatial axis,
    /// values 0 or 1 (an error names any other value).
    pub fn new(op: &'static str, pred: &Tensor, target: &Tensor, include_background: bool) -> Result<Self> {
        if pred.rank() < 3 {
            return Err(Error::ShapeMismatch {
                op,
                expected: "a one-hot (B, C, spatial...) prediction with at least one spatial axis".into(),
                found: pred.shape().to_vec(),
            });
        }
        if target.shape() != pred.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("a ground truth of the prediction's shape {:?}", pred.shape()),
                found: target.shape().to_vec(),
            });
        }
        let (batch, channels) = (pred.shape()[0], pred.shape()[1]);
        let first = usize::from(!include_background && channels > 1);
        let spatial = pred.shape()[2..].to_vec();
        let classes = channels - first;
        let voxels: usize = spatial.iter().product();
        // The kept channels, read as f32, each plane in parallel blocks.
        let binary = |t: &Tensor, what: &str| -> Result<Vec<bool>> {
            const BLOCK: usize = 1 << 16;
            let t = t.to_dtype(DType::F32)?;
            let values = t.values::<f32>()?;
            let mut out = vec![false; batch * classes * voxels];
            for (k, plane) in out.chunks_mut(voxels.max(1)).enumerate() {
                let (b, c) = (k / classes, k % classes + first);
                let src = &values[(b * channels + c) * voxels..][..voxels];
                plane
                    .par_chunks_mut(BLOCK)
                    .zip(src.par_chunks(BLOCK))
                    .try_for_each(|(plane, src)| {
                        for (o, &v) in plane.iter_mut().zip(src) {
                            if v != 0.0 && v != 1.0 {
                                return Err(Error::invalid(
                                    op,
                                    format!("expected a binarized {what} (values 0 or 1), found {v}"),
                                ));
                            }
                            *o = v == 1.0;
                        }
                        Ok(())
                    })?;
            }
            Ok(out)
        };
        Ok(ClassMasks {
            batch,
            classes,
            pred: binary(pred, "prediction")?,
            truth: binary(target, "ground truth")?,
            spatial,
        })
    }

    /// The `(prediction, truth)` masks of every batch item and kept class, batch-major.
    pub fn pairs(&self) -> impl Iterator<Item = (&[bool], &[bool])> {
        let voxels: usize = self.spatial.iter().product();
        self.pred.chunks(voxels.max(1)).zip(self.truth.chunks(voxels.max(1)))
    }

    /// One value per batch item and kept class (batch-major) as a `(B, C')` f32 tensor.
    pub fn tensor(&self, values: Vec<f64>) -> Result<Tensor> {
        Tensor::from_vec(values, &[self.batch, self.classes])?.to_dtype(DType::F32)
    }

    /// `f(prediction, truth)` for every batch item and kept class, as a `(B, C')` f32 tensor.
    pub fn map(&self, f: impl FnMut((&[bool], &[bool])) -> Result<f64>) -> Result<Tensor> {
        self.tensor(self.pairs().map(f).collect::<Result<_>>()?)
    }
}
