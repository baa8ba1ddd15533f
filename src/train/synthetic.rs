//! A synthetic 3D segmentation task for tests and examples: spheres (class 1) and boxes (class 2) of
//! random sizes at random places, imaged with class-dependent intensity plus Gaussian noise.

use seg_data::augment::Augment;
use seg_data::Rng;

use super::{ModelKind, ModelSpec, OptimizerKind, TrainConfig, TrainData};
use crate::{Result, Tensor};

/// An image (f32) and its label map (u8), both `(size, size, size)`, with `objects` objects.
pub fn spheres_and_boxes(size: usize, objects: usize, noise: f64, seed: u64) -> Result<(Tensor, Tensor)> {
    let mut rng = Rng::new(seed);
    let mut labels = vec![0u8; size * size * size];
    let s = size as f64;
    for k in 0..objects {
        let class = 1 + (k % 2) as u8;
        let centre = [0; 3].map(|_| rng.range(0.15 * s, 0.85 * s));
        let radius = rng.range(0.15 * s, 0.25 * s);
        for z in 0..size {
            for y in 0..size {
                for x in 0..size {
                    let d = [z, y, x]
                        .map(|v| v as f64)
                        .iter()
                        .zip(&centre)
                        .map(|(v, c)| v - c)
                        .collect::<Vec<_>>();
                    let inside = if class == 1 {
                        d.iter().map(|d| d * d).sum::<f64>() < radius * radius
                    } else {
                        d.iter().all(|d| d.abs() < radius)
                    };
                    if inside {
                        labels[(z * size + y) * size + x] = class;
                    }
                }
            }
        }
    }
    let image: Vec<f32> = labels
        .iter()
        .map(|&l| (f64::from(l) + noise * rng.normal_pair().0) as f32)
        .collect();
    Ok((
        Tensor::from_vec(image, &[size, size, size])?,
        Tensor::from_vec(labels, &[size, size, size])?,
    ))
}

/// A small complete task: twelve training volumes and one validation volume of 32^3 with four
/// objects each (noise 0.15), a BasicUNet of features (8, 8, 16, 16, 32, 8), and SGD (nnU-Net's,
/// learning rate 0.02) for `epochs` epochs of 16 steps of batch 2, flips and mild noise as
/// augmentation.
pub fn small_task(epochs: usize) -> Result<(TrainData, ModelSpec, TrainConfig)> {
    let data = TrainData {
        train: (0..12)
            .map(|seed| spheres_and_boxes(32, 4, 0.15, seed))
            .collect::<Result<_>>()?,
        val: spheres_and_boxes(32, 4, 0.15, 99)?,
        spacing: [1.0; 3],
        class_names: vec!["sphere".into(), "box".into()],
    };
    let spec = ModelSpec {
        kind: ModelKind::UNet,
        in_channels: 1,
        classes: 3,
        features: [8, 8, 16, 16, 32, 8],
        patch: [32, 32, 32],
        spacing: data.spacing,
    };
    let config = TrainConfig {
        epochs,
        steps_per_epoch: 16,
        batch_size: 2,
        lr: 2e-2,
        optimizer: OptimizerKind::Sgd,
        patch: spec.patch,
        oversample: 0.33,
        augment: Augment {
            rotation_prob: 0.0,
            scale_prob: 0.0,
            gamma_prob: 0.0,
            ..Augment::default()
        },
        overlap: 0.25,
        seed: 0,
    };
    Ok((data, spec, config))
}
