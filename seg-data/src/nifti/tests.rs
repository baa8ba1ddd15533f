use seg_tensor::DType;

use super::*;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seg-data-nifti-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn affine() -> Affine {
    [
        [-1.5, 0.0, 0.0, 90.0],
        [0.0, 2.0, 0.0, -126.0],
        [0.0, 0.0, 2.5, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn ramp(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_vec((0..n).map(|i| i as f32 * 0.25 - 3.0).collect::<Vec<_>>(), shape).unwrap()
}

#[test]
fn f32_round_trip_nii_and_gz() {
    let data = ramp(&[4, 3, 5]);
    let header = Header::new(&[5, 3, 4], NiftiType::F32, &affine());
    for name in ["a.nii", "a.nii.gz"] {
        write(tmp(name), &header, &data).unwrap();
        let back = read(tmp(name)).unwrap();
        assert_eq!(back.data.shape(), &[4, 3, 5]);
        assert_eq!(back.data.to_vec::<f32>().unwrap(), data.to_vec::<f32>().unwrap());
        assert_eq!(back.affine(), affine());
        assert_eq!(back.spacing(), [2.5, 2.0, 1.5]);
    }
    let raw = std::fs::read(tmp("a.nii")).unwrap();
    assert_eq!(raw.len(), 352 + 60 * 4);
    assert!(std::fs::read(tmp("a.nii.gz")).unwrap().starts_with(&[0x1f, 0x8b]));
}

#[test]
fn label_maps_round_trip_as_u8_and_i16_keeping_the_space() {
    let reference = Header::new(&[3, 2, 2], NiftiType::F32, &affine());
    let labels = Tensor::from_vec(vec![0u8, 1, 2, 1, 0, 2, 2, 2, 1, 0, 0, 1], &[2, 2, 3]).unwrap();
    for kind in [NiftiType::U8, NiftiType::I16] {
        let header = reference.derive(&[3, 2, 2], kind);
        let back = from_bytes(&to_bytes(&header, &labels).unwrap(), "mem").unwrap();
        assert_eq!(back.header.datatype, kind);
        assert_eq!(back.affine(), affine());
        assert_eq!(
            crate::to_labels(&back.data).unwrap().to_vec::<u8>().unwrap(),
            labels.to_vec::<u8>().unwrap()
        );
    }
    let err = to_bytes(&reference.derive(&[3, 2, 2], NiftiType::U8), &ramp(&[2, 2, 3])).unwrap_err();
    assert!(err.to_string().contains("U8 holds whole numbers"), "{err}");
}

#[test]
fn four_d_volumes_keep_their_axes() {
    let header = Header::new(&[2, 3, 4, 2], NiftiType::F64, &affine());
    let data = ramp(&[2, 4, 3, 2]);
    let back = from_bytes(&to_bytes(&header, &data).unwrap(), "mem").unwrap();
    assert_eq!(back.data.to_vec::<f32>().unwrap(), data.to_vec::<f32>().unwrap());
}

#[test]
fn scaling_from_the_header_is_applied() {
    let header = Header::new(&[2, 2, 1], NiftiType::I16, &affine());
    let data = Tensor::from_vec(vec![0f32, 1.0, -2.0, 100.0], &[1, 2, 2]).unwrap();
    let mut bytes = to_bytes(&header, &data).unwrap();
    bytes[112..116].copy_from_slice(&0.5f32.to_le_bytes());
    bytes[116..120].copy_from_slice(&10f32.to_le_bytes());
    let back = from_bytes(&bytes, "scaled").unwrap();
    assert_eq!(back.data.to_vec::<f32>().unwrap(), vec![10.0, 10.5, 9.0, 60.0]);
    assert_eq!(back.data.dtype(), DType::F32);
}

#[test]
fn big_endian_files_are_read() {
    // A big-endian int16 file made by hand: header fields and voxels byte-swapped.
    let header = Header::new(&[3, 1, 1], NiftiType::I16, &affine());
    let data = Tensor::from_vec(vec![1f32, -2.0, 300.0], &[1, 1, 3]).unwrap();
    let mut b = to_bytes(&header, &data).unwrap();
    let mut swap = |at: usize, n: usize| b[at..at + n].reverse();
    swap(0, 4);
    (40..56).step_by(2).chain([70, 72, 252, 254]).for_each(|at| swap(at, 2));
    (76..120)
        .step_by(4)
        .chain((256..328).step_by(4))
        .for_each(|at| swap(at, 4));
    (352..358).step_by(2).for_each(|at| swap(at, 2));
    let back = from_bytes(&b, "be").unwrap();
    assert!(!back.header.little_endian);
    assert_eq!(back.data.to_vec::<f32>().unwrap(), vec![1.0, -2.0, 300.0]);
    assert_eq!(back.affine(), affine());
}

#[test]
fn truncated_and_mismatched_files_are_errors() {
    let header = Header::new(&[4, 4, 4], NiftiType::F32, &affine());
    let bytes = to_bytes(&header, &ramp(&[4, 4, 4])).unwrap();
    let err = from_bytes(&bytes[..400], "cut.nii").unwrap_err().to_string();
    assert!(
        err.contains("cut.nii") && err.contains("need 256 bytes from offset 352, found 48"),
        "{err}"
    );
    write(tmp("cut.nii.gz"), &header, &ramp(&[4, 4, 4])).unwrap();
    let gz = std::fs::read(tmp("cut.nii.gz")).unwrap();
    let err = from_bytes(&gz[..gz.len() / 2], "cut.nii.gz").unwrap_err().to_string();
    assert!(err.contains("gzip"), "{err}");
    let err = read(tmp("missing.nii")).unwrap_err().to_string();
    assert!(err.contains("missing.nii"), "{err}");
    let err = to_bytes(&header, &ramp(&[4, 4, 3])).unwrap_err().to_string();
    assert!(err.contains("[4, 4, 4]") && err.contains("[4, 4, 3]"), "{err}");

    write(tmp("img.nii"), &header, &ramp(&[4, 4, 4])).unwrap();
    write(
        tmp("lab.nii"),
        &header.derive(&[4, 4, 3], NiftiType::U8),
        &Tensor::zeros(&[3, 4, 4], DType::U8),
    )
    .unwrap();
    let err = read_pair(tmp("img.nii"), tmp("lab.nii")).unwrap_err().to_string();
    assert!(
        err.contains("dimension mismatch") && err.contains("[4, 4, 4]") && err.contains("[4, 4, 3]"),
        "{err}"
    );
    write(
        tmp("lab.nii"),
        &header.derive(&[4, 4, 4], NiftiType::U8),
        &Tensor::zeros(&[4, 4, 4], DType::U8),
    )
    .unwrap();
    assert!(read_pair(tmp("img.nii"), tmp("lab.nii")).is_ok());
}
