//! The data pipeline on the bundled MNI152 template, timed step by step: load, label map, crop, z-score,
//! resample, the held-out axial slab, patches, augmentation; writes the label map as NIfTI, the overlay
//! of the held-out slab (truth, and a "prediction" that is the truth resampled to 2 mm and back) and a
//! learning curve as PNG.
//!
//! `cargo run --release -p seg-data --example mni152 -- [OUT_DIR]` (default `target/mni152`).

use std::time::Instant;

use seg_data::augment::Augment;
use seg_data::nifti::{self, NiftiType};
use seg_data::patch::{stack, AxialSplit, PatchSampler};
use seg_data::picture::{learning_curve, overlay, overlay_at};
use seg_data::{mni, preprocess, Rng};

fn main() -> seg_tensor::Result<()> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/mni152".into()));
    std::fs::create_dir_all(&out)?;
    let mut clock = Instant::now();
    let mut lap = |what: &str| {
        println!("{what:<42} {:>8.1} ms", clock.elapsed().as_secs_f64() * 1e3);
        clock = Instant::now();
    };

    let data = mni::load(mni::default_dir())?;
    lap("load 3 volumes (.nii.gz) + label map");
    let (image, labels, bbox) = preprocess::crop_to_nonzero(&data.t1.data, &data.labels)?;
    lap("crop to the nonzero box");
    let image = preprocess::zscore_foreground(&image, None)?;
    lap("z-score on the foreground");
    let spacing = data.t1.spacing();
    let coarse = preprocess::resample_image(&image, spacing, [1.5; 3])?;
    let coarse_labels = preprocess::resample_labels(&labels, spacing, [1.5; 3])?;
    assert_eq!(coarse.shape(), coarse_labels.shape());
    lap("resample image + labels to 1.5 mm");
    println!(
        "  {:?} at 1 mm, box {bbox:?} -> {:?} at 1.5 mm",
        image.shape(),
        coarse.shape()
    );

    let split = AxialSplit::new(image.shape()[0], 0.55, 0.2)?;
    let train: Vec<_> = split
        .train
        .iter()
        .map(|r| Ok((AxialSplit::slab(&image, r)?, AxialSplit::slab(&labels, r)?)))
        .collect::<seg_tensor::Result<_>>()?;
    let mut sampler = PatchSampler::new(&train, [96, 96, 96], 0.33, 0)?;
    lap("split + sampler (foreground index)");
    let patches = sampler.batch(8)?;
    lap("8 patches of 96^3");
    let augment = Augment {
        flip_axes: [true, true, false],
        rotation_prob: 1.0,
        scale_prob: 1.0,
        ..Augment::default()
    };
    let mut rng = Rng::new(0);
    let augmented = patches
        .iter()
        .map(|p| {
            let (image, labels) = augment.apply(&p.image, &p.labels, &mut rng)?;
            Ok(seg_data::patch::Patch {
                image,
                labels,
                ..p.clone()
            })
        })
        .collect::<seg_tensor::Result<Vec<_>>>()?;
    lap("augment 8 patches (all rotated and scaled)");
    let (batch, _) = stack(&augmented)?;
    println!("  batch {:?}", batch.shape());

    let header = data.t1.header.derive(&data.t1.header.dim, NiftiType::U8);
    nifti::write(out.join("labels.nii.gz"), &header, &data.labels)?;
    lap("write the label map (.nii.gz)");
    let val_image = AxialSplit::slab(&image, &split.val)?;
    let val_labels = AxialSplit::slab(&labels, &split.val)?;
    let blurred = preprocess::resample_labels(&val_labels, [1.0; 3], [2.0; 3])?;
    let back = preprocess::resample_labels(&blurred, [2.0; 3], [1.0; 3])?;
    let back = preprocess::crop(
        &back,
        &[
            0..val_labels.shape()[0],
            0..val_labels.shape()[1],
            0..val_labels.shape()[2],
        ],
    )?;
    overlay(&val_image, &val_labels, Some(&back), &["GM", "WM"])?.save(out.join("overlay.png"))?;
    let [d, h, w] = [0, 1, 2].map(|a| image.shape()[a]);
    let full = overlay_at(&image, &labels, None, &["GM", "WM"], [d / 2, h / 2, w / 2 + w / 6])?;
    full.save(out.join("overlay_full.png"))?;
    let loss: Vec<f64> = (0..30).map(|e| 0.2 + 0.9 * (-(e as f64) / 6.0).exp()).collect();
    let dice: Vec<f64> = (0..30).map(|e| 0.93 - 0.7 * (-(e as f64) / 5.0).exp()).collect();
    learning_curve(&loss, &dice)?.save(out.join("curve.png"))?;
    lap("overlays + curve (PNG)");
    println!("wrote {}", out.display());
    Ok(())
}
