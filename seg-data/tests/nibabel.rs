//! Files written by nibabel (tests/nibabel/generate.py) read as nibabel reads them: a big-endian int16
//! volume with scaling and a qform-only float32 volume.

use std::path::Path;

fn floats<const N: usize>(path: &Path) -> Vec<f64> {
    std::fs::read(path)
        .unwrap()
        .chunks(N)
        .map(|c| {
            if N == 4 {
                f32::from_le_bytes(c.try_into().unwrap()) as f64
            } else {
                f64::from_le_bytes(c.try_into().unwrap())
            }
        })
        .collect()
}

#[test]
fn nibabel_files_read_as_nibabel_reads_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("nibabel");
    for (file, stem, little_endian) in [
        ("be_scaled.nii.gz", "be_scaled", false),
        ("qform_only.nii", "qform_only", true),
    ] {
        let image = seg_data::nifti::read(dir.join(file)).unwrap();
        assert_eq!(image.data.shape(), &[7, 6, 5], "{file}");
        assert_eq!(image.header.little_endian, little_endian, "{file}");
        let want = floats::<4>(&dir.join(format!("{stem}.expected.f32")));
        let got = image.data.to_vec::<f32>().unwrap();
        assert!(
            got.iter()
                .zip(&want)
                .all(|(&a, &b)| (a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0)),
            "{file}"
        );
        let affine = floats::<8>(&dir.join(format!("{stem}.affine.f64")));
        assert!(
            image
                .affine()
                .iter()
                .flatten()
                .zip(&affine)
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{file}: {:?}",
            image.affine()
        );
    }
}
