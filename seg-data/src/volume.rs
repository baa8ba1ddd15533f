//! Checked access to the buffers of rank-3 image (f32) and label (u8) tensors.

use std::borrow::Cow;

use seg_tensor::{DType, Error, Result, Tensor};

/// The `(D, H, W)` shape of a rank-3 tensor.
pub(crate) fn dims3(t: &Tensor, op: &'static str) -> Result<[usize; 3]> {
    match *t.shape() {
        [d, h, w] => Ok([d, h, w]),
        _ => Err(Error::ShapeMismatch {
            op,
            expected: "a rank-3 volume (D, H, W)".into(),
            found: t.shape().to_vec(),
        }),
    }
}

/// The values and shape of a rank-3 f32 image.
pub(crate) fn image_values<'a>(t: &'a Tensor, op: &'static str) -> Result<(Cow<'a, [f32]>, [usize; 3])> {
    let dims = dims3(t, op)?;
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op,
            expected: "f32 (an image)",
            found: t.dtype(),
        });
    }
    Ok((t.values::<f32>()?, dims))
}

/// The values and shape of a rank-3 u8 label map.
pub(crate) fn label_values<'a>(t: &'a Tensor, op: &'static str) -> Result<(Cow<'a, [u8]>, [usize; 3])> {
    let dims = dims3(t, op)?;
    if t.dtype() != DType::U8 {
        return Err(Error::DType {
            op,
            expected: "u8 (a label map; see seg_data::to_labels)",
            found: t.dtype(),
        });
    }
    Ok((t.values::<u8>()?, dims))
}

/// An error unless an image and its label map have the same shape.
pub(crate) fn same_dims(op: &'static str, image: [usize; 3], labels: [usize; 3]) -> Result<()> {
    if image == labels {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op,
        expected: format!("a label map of the image's shape {image:?}"),
        found: labels.to_vec(),
    })
}

/// A label map of class indices as a u8 tensor of the same shape, from a tensor of any dtype whose values
/// are whole numbers in `0..=255` (as a label map read from NIfTI arrives, in f32).
pub fn to_labels(t: &Tensor) -> Result<Tensor> {
    let values = t.to_vec_f64();
    let labels = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                Ok(v as u8)
            } else {
                Err(Error::invalid(
                    "to_labels",
                    format!("expected class indices 0..=255, found {v} at element {i}"),
                ))
            }
        })
        .collect::<Result<Vec<u8>>>()?;
    Tensor::from_vec(labels, t.shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_whole_numbers_only() {
        let t = Tensor::from_vec(vec![0f32, 1.0, 2.0, 255.0], &[1, 2, 2]).unwrap();
        assert_eq!(to_labels(&t).unwrap().to_vec::<u8>().unwrap(), vec![0, 1, 2, 255]);
        let bad = Tensor::from_vec(vec![0f32, 1.5], &[1, 1, 2]).unwrap();
        assert!(to_labels(&bad).unwrap_err().to_string().contains("1.5 at element 1"));
        let img = Tensor::zeros(&[2, 2], DType::F32);
        assert!(image_values(&img, "t").unwrap_err().to_string().contains("rank-3"));
        assert!(label_values(&Tensor::zeros(&[1, 1, 1], DType::F32), "t").is_err());
    }
}
