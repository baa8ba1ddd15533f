//! The `seg` program's jobs end with a clear error on bad input, and infer and eval round-trip real
//! NIfTI files.

use std::path::{Path, PathBuf};
use std::process::Command;

use seg::data::nifti::{self, Header, NiftiType};
use seg::nn::checkpoint::save_checkpoint;
use seg::train::synthetic::spheres_and_boxes;
use seg::train::{Model, ModelKind, ModelSpec};
use seg::DType;

fn seg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seg"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seg-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn identity() -> [[f64; 4]; 4] {
    std::array::from_fn(|i| std::array::from_fn(|j| f64::from(u8::from(i == j))))
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for args in [
        &["train", "--device", "cuda"][..],
        &["train", "--model", "resnet"],
        &["train", "--patch", "64,64"],
        &["train", "--epochs", "0"],
        &["train", "--data", "/nonexistent"],
        &[
            "infer",
            "--checkpoint",
            "/nonexistent.safetensors",
            "--input",
            "a.nii",
            "--output",
            "b.nii",
        ],
    ] {
        let out = seg().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

fn write_labels(path: &Path, labels: &seg::Tensor) {
    let header = Header::new(labels.shape(), NiftiType::U8, &identity());
    nifti::write(path, &header, labels).unwrap();
}

#[test]
fn eval_reports_every_class_and_writes_json() {
    let dir = scratch("eval");
    let (_, truth) = spheres_and_boxes(24, 4, 0.0, 3).unwrap();
    let shifted = truth.roll(&[1], &[0]).unwrap().contiguous().unwrap();
    write_labels(&dir.join("truth.nii.gz"), &truth);
    write_labels(&dir.join("pred.nii.gz"), &shifted);
    let out = seg()
        .args(["eval", "--prediction"])
        .arg(dir.join("pred.nii.gz"))
        .arg("--truth")
        .arg(dir.join("truth.nii.gz"))
        .arg("--json")
        .arg(dir.join("m.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with('1') || l.starts_with('2'))
            .count(),
        2,
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("m.json")).unwrap()).unwrap();
    let dice = json["classes"][0]["dice"].as_f64().unwrap();
    assert!(dice > 0.5 && dice < 1.0, "{dice}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn infer_writes_a_label_map_on_the_input_grid() {
    let dir = scratch("infer");
    let spec = ModelSpec {
        kind: ModelKind::UNet,
        in_channels: 1,
        classes: 3,
        features: [2, 2, 2, 2, 2, 2],
        patch: [32, 32, 32],
        spacing: [1.5, 1.5, 1.5],
    };
    let model = Model::new(&spec, 1).unwrap();
    save_checkpoint(model.module(), &dir.join("model.safetensors"), &spec.to_metadata()).unwrap();
    let (image, _) = spheres_and_boxes(20, 3, 0.1, 5).unwrap();
    let image = image.add_scalar(1.0).unwrap(); // nonzero everywhere
    let header = Header::new(image.shape(), NiftiType::F32, &identity());
    nifti::write(dir.join("image.nii.gz"), &header, &image).unwrap();
    let out = seg()
        .arg("infer")
        .arg("--checkpoint")
        .arg(dir.join("model.safetensors"))
        .arg("--input")
        .arg(dir.join("image.nii.gz"))
        .arg("--output")
        .arg(dir.join("labels.nii.gz"))
        .arg("--png")
        .arg(dir.join("labels.png"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels = nifti::read(dir.join("labels.nii.gz")).unwrap();
    assert_eq!(labels.data.shape(), image.shape());
    assert_eq!(labels.affine(), identity());
    let max = labels
        .data
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec_f64()
        .into_iter()
        .fold(0.0, f64::max);
    assert!(max <= 2.0);
    assert!(dir.join("labels.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_two_epoch_tiny_training_run_writes_its_files_and_the_held_out_line() {
    let dir = scratch("train");
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let (image, labels) = spheres_and_boxes(32, 4, 0.1, i as u64).unwrap();
        let image = image.add_scalar(1.0).unwrap(); // nonzero everywhere: the crop keeps it whole
        for (sub, file, t, dtype) in [
            ("imagesTr", format!("{name}_0000.nii.gz"), &image, NiftiType::F32),
            ("labelsTr", format!("{name}.nii.gz"), &labels, NiftiType::U8),
        ] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            nifti::write(dir.join(sub).join(file), &Header::new(t.shape(), dtype, &identity()), t).unwrap();
        }
    }
    let run = dir.join("run");
    let out = seg()
        .args([
            "train",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "1",
            "--patch",
            "32",
        ])
        .args(["--spacing", "1", "--features", "2,2,2,2,2,2", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("held-out mean Dice (class 1, class 2): "), "{stdout}");
    for file in [
        "best.safetensors",
        "last.safetensors",
        "log.jsonl",
        "learning_curve.png",
        "overlay.png",
    ] {
        assert!(run.join(file).exists(), "{file}");
    }
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
