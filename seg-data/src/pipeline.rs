//! A case prepared for a network as nnU-Net prepares it, and a prediction mapped back to the original
//! voxel grid (what `seg infer` writes with the input's affine).

use seg_tensor::{Error, Result, Tensor};

use crate::preprocess::{self, BoundingBox};
use crate::volume::{dims3, label_values, same_dims};

/// A prepared case: its image cropped to the nonzero box, z-scored on the foreground and resampled to
/// the target spacing, its labels likewise (nearest), and what [`Prepared::restore_labels`] needs.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub image: Tensor,
    pub labels: Option<Tensor>,
    /// The nonzero box of the original volume.
    pub bbox: BoundingBox,
    /// Shape of the original volume.
    pub original_shape: [usize; 3],
    /// Spacing of the prepared volume (`(D, H, W)`).
    pub spacing: [f64; 3],
}

/// nnU-Net's order: crop to the image's nonzero box, z-score on the nonzero voxels, resample from
/// `spacing` to `target_spacing` (none: keep the spacing). `labels` (u8) must have the image's shape.
pub fn prepare(
    image: &Tensor,
    labels: Option<&Tensor>,
    spacing: [f64; 3],
    target_spacing: Option<[f64; 3]>,
) -> Result<Prepared> {
    let dims = dims3(image, "prepare")?;
    if let Some(l) = labels {
        same_dims("prepare", dims, label_values(l, "prepare")?.1)?;
    }
    let bbox = preprocess::nonzero_bbox(image)?;
    let cropped = preprocess::zscore_foreground(&preprocess::crop(image, &bbox)?, None)?;
    let cropped_labels = labels.map(|l| preprocess::crop(l, &bbox)).transpose()?;
    let to = target_spacing.unwrap_or(spacing);
    let (image, labels) = if to == spacing {
        (cropped, cropped_labels)
    } else {
        let image = preprocess::resample_image(&cropped, spacing, to)?;
        let labels = cropped_labels
            .map(|l| preprocess::resample_labels(&l, spacing, to))
            .transpose()?;
        (image, labels)
    };
    Ok(Prepared {
        image,
        labels,
        bbox,
        original_shape: dims,
        spacing: to,
    })
}

impl Prepared {
    /// A label map predicted on the prepared grid (u8, the shape of `self.image`) on the original grid:
    /// resized (nearest) to the nonzero box and background (0) outside it.
    pub fn restore_labels(&self, prediction: &Tensor) -> Result<Tensor> {
        let (_, dims) = label_values(prediction, "restore_labels")?;
        if dims != dims3(&self.image, "restore_labels")? {
            return Err(Error::ShapeMismatch {
                op: "restore_labels",
                expected: format!("the prepared image's shape {:?}", self.image.shape()),
                found: dims.to_vec(),
            });
        }
        let box_shape = self.bbox.clone().map(|r| r.len());
        let resized = if dims == box_shape {
            prediction.clone()
        } else {
            preprocess::resize_labels(prediction, box_shape)?
        };
        preprocess::uncrop(&resized, &self.bbox, self.original_shape)
    }
}

#[cfg(test)]
mod tests {
    use seg_tensor::DType;

    use super::*;

    /// A 12 x 10 x 8 volume, nonzero on a 6 x 6 x 4 block, labelled 1 or 2 inside it.
    fn case() -> (Tensor, Tensor) {
        let inside = |z: usize, y: usize, x: usize| (3..9).contains(&z) && (2..8).contains(&y) && (2..6).contains(&x);
        let (mut image, mut labels) = (vec![0f32; 960], vec![0u8; 960]);
        for i in 0..960 {
            let (z, y, x) = (i / 80, (i / 8) % 10, i % 8);
            if inside(z, y, x) {
                image[i] = 10.0 + (i % 13) as f32;
                labels[i] = 1 + (z >= 7) as u8;
            }
        }
        (
            Tensor::from_vec(image, &[12, 10, 8]).unwrap(),
            Tensor::from_vec(labels, &[12, 10, 8]).unwrap(),
        )
    }

    #[test]
    fn prepare_then_restore_gives_the_labels_back() {
        let (image, labels) = case();
        let p = prepare(&image, Some(&labels), [1.0; 3], None).unwrap();
        assert_eq!(p.bbox, [3..9, 2..8, 2..6]);
        assert_eq!(p.image.shape(), &[6, 6, 4]);
        let z = p.image.to_vec::<f32>().unwrap();
        assert!((z.iter().sum::<f32>() / z.len() as f32).abs() < 1e-5);
        let prepared_labels = p.labels.clone().unwrap();
        let back = p.restore_labels(&prepared_labels).unwrap();
        assert_eq!(back.to_vec::<u8>().unwrap(), labels.to_vec::<u8>().unwrap());

        // At 2 mm the prepared grid is 3 x 3 x 2; back on the original grid, the two halves of the box
        // keep their labels (the boundary lies on a 2-voxel step).
        let p = prepare(&image, Some(&labels), [1.0; 3], Some([2.0; 3])).unwrap();
        assert_eq!((p.image.shape(), p.spacing), (&[3usize, 3, 2][..], [2.0; 3]));
        let back = p.restore_labels(p.labels.as_ref().unwrap()).unwrap();
        assert_eq!(back.to_vec::<u8>().unwrap(), labels.to_vec::<u8>().unwrap());
        assert!(p.restore_labels(&Tensor::zeros(&[3, 3, 3], DType::U8)).is_err());
        assert!(prepare(&image, Some(&Tensor::zeros(&[12, 10, 7], DType::U8)), [1.0; 3], None).is_err());
    }
}
