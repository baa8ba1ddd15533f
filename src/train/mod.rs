//! Training a segmentation network on 3D volumes, as `seg train` does: patches sampled with
//! foreground oversampling, augmented, Dice + cross-entropy, validation on a held-out volume by
//! sliding windows each epoch.

mod evaluate;
mod model;
pub mod synthetic;

pub use evaluate::{evaluate, labels_of, predict_logits, segment_volume, ClassMetrics};
pub use model::{Model, ModelKind, ModelSpec};

use std::time::Instant;

use seg_data::augment::Augment;
use seg_data::patch::{stack, Patch, PatchSampler};
use seg_data::Rng;
use seg_losses::{DiceCELoss, DiceLoss};
use seg_nn::optim::{Adam, CosineWarmup, Optimizer, ParamGrads, PolyLr, Sgd};

use crate::{no_grad, DType, Error, Result, Tensor};

/// Training volumes (f32 images and u8 label maps `(D, H, W)`), a held-out validation volume, and the
/// voxel spacing of all of them.
pub struct TrainData {
    pub train: Vec<(Tensor, Tensor)>,
    pub val: (Tensor, Tensor),
    pub spacing: [f64; 3],
    /// Names of the foreground classes `1..`.
    pub class_names: Vec<String>,
}

/// The optimizer and its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// nnU-Net's: SGD, momentum 0.99, Nesterov, weight decay 3e-5, poly schedule.
    Sgd,
    /// AdamW (weight decay 0.01) with a linear warmup over the first 5% of steps, then cosine decay.
    AdamW,
}

impl OptimizerKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Self::Sgd),
            "adamw" => Ok(Self::AdamW),
            other => Err(Error::invalid(
                "optimizer",
                format!("unknown optimizer {other:?}: sgd or adamw"),
            )),
        }
    }
}

/// Hyper-parameters of a run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub patch: [usize; 3],
    /// Fraction of patches centred on foreground (nnU-Net: 0.33).
    pub oversample: f64,
    pub augment: Augment,
    /// Overlap of the validation's sliding windows.
    pub overlap: f64,
    pub seed: u64,
}

/// What one epoch came to.
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub lr: f64,
    pub val: ClassMetrics,
    pub train_seconds: f64,
    pub val_seconds: f64,
    /// Training voxels (patch voxels times batch) per second.
    pub voxels_per_second: f64,
}

/// Called as training goes: after each step and each epoch (the model as it is then).
pub trait Observer {
    fn step(&mut self, epoch: usize, step: usize, loss: f64, lr: f64);
    fn epoch(&mut self, report: &EpochReport, model: &Model) -> Result<()>;
}

/// The learning rate at `step` of `total`.
fn schedule(config: &TrainConfig, step: usize, total: usize) -> f64 {
    match config.optimizer {
        OptimizerKind::Sgd => PolyLr::new(config.lr, total).lr(step),
        OptimizerKind::AdamW => CosineWarmup {
            base_lr: config.lr,
            warmup_steps: total / 20,
            total_steps: total,
            min_lr: config.lr * 0.01,
        }
        .lr(step),
    }
}

fn optimizer(config: &TrainConfig) -> Box<dyn Optimizer> {
    match config.optimizer {
        OptimizerKind::Sgd => {
            let mut sgd = Sgd::with_momentum(config.lr, 0.99, true);
            sgd.weight_decay = 3e-5;
            Box::new(sgd)
        }
        OptimizerKind::AdamW => Box::new(Adam::adamw(config.lr)),
    }
}

/// Augments every patch of a batch.
fn augmented(patches: Vec<Patch>, augment: &Augment, rng: &mut Rng) -> Result<Vec<Patch>> {
    patches
        .into_iter()
        .map(|p| {
            let (image, labels) = augment.apply(&p.image, &p.labels, rng)?;
            Ok(Patch { image, labels, ..p })
        })
        .collect()
}

/// Trains `model` on `data` on the model's device (batches are moved there; validation windows too,
/// blended and measured on the host); returns one report per epoch.
pub fn fit(
    model: &mut Model,
    data: &TrainData,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochReport>> {
    let classes = data.class_names.len() + 1;
    let mut sampler = PatchSampler::new(&data.train, config.patch, config.oversample, config.seed)?;
    let mut rng = Rng::new(config.seed ^ 0xa5a5);
    let loss_fn = DiceCELoss {
        dice: DiceLoss {
            to_onehot_y: true,
            softmax: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut opt = optimizer(config);
    let total = config.epochs * config.steps_per_epoch;
    let patch_voxels: usize = config.patch.iter().product();
    let mut reports = Vec::new();
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let mut loss_sum = 0.0;
        for step in 0..config.steps_per_epoch {
            let lr = schedule(config, epoch * config.steps_per_epoch + step, total);
            opt.set_lr(lr);
            let patches = augmented(sampler.batch(config.batch_size)?, &config.augment, &mut rng)?;
            let (x, y) = stack(&patches)?;
            let device = model.device();
            let (x, y) = (x.to_device(device)?, y.to_device(device)?.to_dtype(DType::F32)?);
            let loss = loss_fn.forward(&model.forward(&x)?, &y)?;
            let value = loss.item()?;
            if !value.is_finite() {
                return Err(Error::invalid(
                    "train",
                    format!("the loss became {value} at epoch {epoch}, step {step}"),
                ));
            }
            let grads = ParamGrads::from_backward(model.module(), &loss.backward()?)?;
            opt.step(model.module_mut(), &grads)?;
            loss_sum += value;
            observer.step(epoch, step, value, lr);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let val = no_grad(|| {
            let logits = predict_logits(model, &data.val.0, config.patch, config.overlap, false)?;
            evaluate(&labels_of(&logits)?, &data.val.1, classes, data.spacing)
        })?;
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / config.steps_per_epoch.max(1) as f64,
            lr: opt.lr(),
            val,
            train_seconds,
            val_seconds: started.elapsed().as_secs_f64(),
            voxels_per_second: (config.steps_per_epoch * config.batch_size * patch_voxels) as f64 / train_seconds,
        };
        observer.epoch(&report, model)?;
        reports.push(report);
    }
    Ok(reports)
}
