//! The bundled MNI ICBM152 2009a template (`data/mni152`, notice in its README): a T1-weighted brain MRI
//! of 197 x 233 x 189 voxels at 1 mm, and its grey- and white-matter probability maps (uint8, 255 = 1.0).

use std::path::{Path, PathBuf};

use seg_tensor::{Result, Tensor};

use crate::nifti::{self, NiftiImage};
use crate::volume::{image_values, same_dims};

pub const T1_FILE: &str = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";
pub const GM_FILE: &str = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz";
pub const WM_FILE: &str = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz";

/// Label of background and cerebrospinal fluid.
pub const BACKGROUND: u8 = 0;
/// Label of grey matter.
pub const GREY_MATTER: u8 = 1;
/// Label of white matter.
pub const WHITE_MATTER: u8 = 2;

/// `data/mni152` of this repository.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("mni152")
}

/// The T1 image and its 3-class tissue label map (u8, same `(D, H, W)` shape).
#[derive(Clone, Debug)]
pub struct Mni152 {
    pub t1: NiftiImage,
    pub labels: Tensor,
}

/// Loads the template from `dir` (see [`default_dir`]) and makes its label map with [`tissue_labels`].
pub fn load(dir: impl AsRef<Path>) -> Result<Mni152> {
    let dir = dir.as_ref();
    let t1 = nifti::read(dir.join(T1_FILE))?;
    let [gm, wm] = [GM_FILE, WM_FILE].map(|name| -> Result<NiftiImage> {
        let map = nifti::read(dir.join(name))?;
        nifti::check_same_grid(&t1.header, &dir.join(T1_FILE), &map.header, &dir.join(name))?;
        Ok(map)
    });
    let (gm, wm) = (gm?, wm?);
    let probability = |m: &NiftiImage| m.data.mul_scalar(1.0 / 255.0);
    let labels = tissue_labels(&probability(&gm)?, &probability(&wm)?)?;
    Ok(Mni152 { t1, labels })
}

/// The tissue label map of grey- and white-matter probability maps `gm`, `wm` (f32 in `[0, 1]`, same
/// shape), the rule of the data's README: `label = argmax(gm, wm) + 1` (grey matter on a tie) where
/// `max(gm, wm) >= 0.5`, else 0 (background and CSF).
pub fn tissue_labels(gm: &Tensor, wm: &Tensor) -> Result<Tensor> {
    let (g, g_dims) = image_values(gm, "tissue_labels")?;
    let (w, w_dims) = image_values(wm, "tissue_labels")?;
    same_dims("tissue_labels", g_dims, w_dims)?;
    let labels: Vec<u8> = g
        .iter()
        .zip(w.iter())
        .map(|(&g, &w)| match g.max(w) {
            m if m < 0.5 => BACKGROUND,
            _ if g >= w => GREY_MATTER,
            _ => WHITE_MATTER,
        })
        .collect();
    Tensor::from_vec(labels, &g_dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_rule() {
        let gm = Tensor::from_vec(vec![0.1f32, 0.6, 0.5, 0.3, 0.5], &[1, 1, 5]).unwrap();
        let wm = Tensor::from_vec(vec![0.2f32, 0.3, 0.5, 0.7, 0.4], &[1, 1, 5]).unwrap();
        assert_eq!(
            tissue_labels(&gm, &wm).unwrap().to_vec::<u8>().unwrap(),
            vec![0, 1, 1, 2, 1]
        );
        let err = tissue_labels(&gm, &wm.reshape(&[5, 1, 1]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 1, 5]") && err.contains("[5, 1, 1]"), "{err}");
    }

    #[test]
    fn the_bundled_template_loads() {
        let mni = load(default_dir()).unwrap();
        assert_eq!(mni.t1.data.shape(), &[189, 233, 197]);
        assert_eq!(mni.labels.shape(), &[189, 233, 197]);
        assert_eq!(mni.t1.spacing(), [1.0, 1.0, 1.0]);
        let a = mni.t1.affine();
        assert_eq!(a[0], [1.0, 0.0, 0.0, -98.0]);
        assert_eq!(a[1], [0.0, 1.0, 0.0, -134.0]);
        assert_eq!(a[2], [0.0, 0.0, 1.0, -72.0]);
        // World (0, 0, 0), the anterior commissure, is at voxel (98, 134, 72): white matter nearby, and
        // grey and white matter are each a sizeable part of the head.
        let labels = mni.labels.to_vec::<u8>().unwrap();
        let n = labels.len() as f64;
        let fraction = |c: u8| labels.iter().filter(|&&l| l == c).count() as f64 / n;
        let (gm, wm) = (fraction(GREY_MATTER), fraction(WHITE_MATTER));
        assert!(
            (0.05..0.25).contains(&gm) && (0.04..0.2).contains(&wm),
            "GM {gm} WM {wm}"
        );
        let t1 = mni.t1.data.to_vec::<f32>().unwrap();
        let at = |x: usize, y: usize, z: usize| (z * 233 + y) * 197 + x;
        assert!(t1.iter().all(|v| (0.0..=255.0).contains(v)));
        assert_eq!(
            labels[at(98, 134, 100)],
            WHITE_MATTER,
            "corona radiata above the ventricles"
        );
        assert_eq!(labels[at(0, 0, 0)], BACKGROUND);
        // The label map survives a .nii.gz round trip with the template's space.
        let path = std::env::temp_dir().join(format!("seg-data-mni-labels-{}.nii.gz", std::process::id()));
        let header = mni.t1.header.derive(&mni.t1.header.dim, nifti::NiftiType::U8);
        nifti::write(&path, &header, &mni.labels).unwrap();
        let back = nifti::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.affine(), a);
        assert_eq!(crate::to_labels(&back.data).unwrap().to_vec::<u8>().unwrap(), labels);
    }
}
