//! A user's own data: a folder of images and label maps.

use std::path::{Path, PathBuf};

use seg_tensor::{Error, Result, Tensor};

use crate::nifti::{self, NiftiImage};

/// One image and its label map (u8, the image's shape).
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub image: NiftiImage,
    pub labels: Tensor,
}

fn format_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// The case name of a NIfTI file name (`.nii` or `.nii.gz` dropped, and nnU-Net's channel suffix
/// `_0000`), `None` for a file that is not NIfTI.
fn case_name(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".nii.gz").or_else(|| file.strip_suffix(".nii"))?;
    Some(stem.strip_suffix("_0000").unwrap_or(stem))
}

/// Reads every image with its label map from `dir`, sorted by name, in either layout:
///
/// - nnU-Net and the Medical Segmentation Decathlon: `imagesTr/NAME_0000.nii.gz` (or `NAME.nii.gz`) with
///   `labelsTr/NAME.nii.gz`;
/// - `images/NAME.nii.gz` with `labels/NAME.nii.gz`.
///
/// `.nii` works as well as `.nii.gz`. Images have one channel (a second one, `NAME_0001`, is an error).
/// Errors name the file: no images, an image without a label map, grids that differ, labels that are not
/// whole numbers in `0..=255`.
pub fn load_folder(dir: impl AsRef<Path>) -> Result<Vec<Case>> {
    let dir = dir.as_ref();
    let (images, labels) = [("imagesTr", "labelsTr"), ("images", "labels")]
        .iter()
        .map(|(i, l)| (dir.join(i), dir.join(l)))
        .find(|(i, _)| i.is_dir())
        .ok_or_else(|| {
            format_error(
                dir,
                "expected a folder imagesTr/ with labelsTr/, or images/ with labels/",
            )
        })?;
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&images)
        .map_err(|e| format_error(&images, e.to_string()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = case_name(path.file_name()?.to_str()?)?.to_string();
            Some((name, path))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format_error(
            &images,
            "expected NIfTI images (.nii, .nii.gz), found none",
        ));
    }
    files
        .into_iter()
        .map(|(name, image_path)| {
            if name.len() > 5
                && name.as_bytes()[name.len() - 5] == b'_'
                && name[name.len() - 4..].parse::<u16>().is_ok()
            {
                return Err(format_error(
                    &image_path,
                    "expected one channel per case (NAME_0000), found another",
                ));
            }
            let label_path = ["nii.gz", "nii"]
                .iter()
                .map(|ext| labels.join(format!("{name}.{ext}")))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format_error(
                        &image_path,
                        format!("no label map {name}.nii.gz in {}", labels.display()),
                    )
                })?;
            let (image, label_image) = nifti::read_pair(&image_path, &label_path)?;
            let labels = crate::to_labels(&label_image.data).map_err(|e| format_error(&label_path, e.to_string()))?;
            Ok(Case { name, image, labels })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use seg_tensor::DType;

    use super::*;
    use crate::nifti::{identity_affine, Header, NiftiType};

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("seg-data-folder-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write(path: PathBuf, shape: &[usize], kind: NiftiType, value: f64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data = Tensor::full(shape, value, DType::F32);
        nifti::write(path, &Header::new(shape, kind, &identity_affine()), &data).unwrap();
    }

    #[test]
    fn both_layouts_load_sorted_with_their_labels() {
        let dir = folder("nnunet");
        write(dir.join("imagesTr/b_0000.nii.gz"), &[2, 3, 4], NiftiType::F32, 1.5);
        write(dir.join("imagesTr/a_0000.nii.gz"), &[2, 3, 4], NiftiType::F32, 2.5);
        write(dir.join("labelsTr/a.nii.gz"), &[2, 3, 4], NiftiType::U8, 1.0);
        write(dir.join("labelsTr/b.nii"), &[2, 3, 4], NiftiType::I16, 2.0);
        let cases = load_folder(&dir).unwrap();
        let nnunet = dir;
        assert_eq!(cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(cases[1].labels.to_vec::<u8>().unwrap(), vec![2; 24]);
        assert_eq!(cases[0].image.data.to_vec::<f32>().unwrap()[0], 2.5);

        let dir = folder("plain");
        write(dir.join("images/x.nii"), &[2, 2, 2], NiftiType::F32, 1.0);
        write(dir.join("labels/x.nii"), &[2, 2, 2], NiftiType::U8, 0.0);
        assert_eq!(load_folder(&dir).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&nnunet).unwrap();
    }

    #[test]
    fn bad_folders_are_named() {
        let err = |dir: &Path| load_folder(dir).unwrap_err().to_string();
        let dir = folder("none");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(err(&dir).contains("expected a folder imagesTr/"));
        std::fs::create_dir_all(dir.join("images")).unwrap();
        assert!(err(&dir).contains("found none"));
        write(dir.join("images/x.nii"), &[2, 2, 2], NiftiType::F32, 1.0);
        assert!(err(&dir).contains("no label map x.nii.gz"));
        write(dir.join("labels/x.nii"), &[2, 2, 3], NiftiType::U8, 0.0);
        assert!(err(&dir).contains("dimension mismatch"));
        write(dir.join("labels/x.nii"), &[2, 2, 2], NiftiType::F32, 0.5);
        assert!(err(&dir).contains("found 0.5"));
        write(dir.join("labels/x.nii"), &[2, 2, 2], NiftiType::U8, 1.0);
        write(dir.join("images/x_0001.nii"), &[2, 2, 2], NiftiType::F32, 1.0);
        assert!(err(&dir).contains("one channel"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
