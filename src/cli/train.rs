//! `seg train`: a 3D segmentation network trained on the bundled MNI152 brain MRI (grey and white
//! matter, a held-out axial slab) or on a folder of the user's NIfTI images and label maps.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use seg::data::augment::Augment;
use seg::data::nifti::{self, NiftiImage, NiftiType};
use seg::data::patch::AxialSplit;
use seg::data::picture::{learning_curve, overlay};
use seg::data::preprocess;
use seg::data::{dataset, mni, pipeline};
use seg::nn::checkpoint::{load_checkpoint, save_checkpoint};
use seg::train::{
    evaluate, fit, segment_volume, EpochReport, Model, ModelKind, ModelSpec, Observer, OptimizerKind, TrainConfig,
    TrainData,
};
use seg::{Error, Result, Tensor};

use super::{metrics_table, parse_triple};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Network: unet (MONAI BasicUNet), plain-unet (nnU-Net), swin-unetr (MONAI), mamba-unet (U-Mamba's UMambaBot),
    /// segmamba (SegMamba; the patch sizes must be multiples of 16).
    #[arg(long, default_value = "unet")]
    model: String,
    /// Where the network trains: cpu, cuda (GPU 0) or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    #[arg(long, default_value_t = 25)]
    steps_per_epoch: usize,
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    /// Patch size: one number or D,H,W.
    #[arg(long, default_value = "64")]
    patch: String,
    /// Voxel spacing (mm) the data is resampled to: one number or D,H,W.
    #[arg(long, default_value = "1.5")]
    spacing: String,
    /// Learning rate (default: 0.01 for sgd, 0.002 for adamw).
    #[arg(long)]
    lr: Option<f64>,
    /// sgd (nnU-Net's: momentum 0.99, Nesterov, poly schedule) or adamw (warmup + cosine).
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// BasicUNet features: six numbers (swin-unetr: its feature size, a multiple of 12, default 24; segmamba:
    /// its first stage's channels, default 24, then doubling, the bottleneck 16 times it).
    #[arg(long)]
    features: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A folder of your own data: imagesTr/ + labelsTr/ (nnU-Net) or images/ + labels/. Default: the
    /// bundled MNI152 template.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the checkpoints, log and pictures go.
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
}

/// Where a run's files go.
struct RunFiles {
    dir: PathBuf,
}

impl RunFiles {
    fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    fn last(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
}

/// The progress bar of each epoch, the log, and the best checkpoint.
struct Progress {
    bar: ProgressBar,
    steps: usize,
    epochs: usize,
    started: Instant,
    files: RunFiles,
    spec: ModelSpec,
    log: File,
    best: f64,
    class_names: Vec<String>,
}

impl Progress {
    fn new_bar(&self, epoch: usize) -> ProgressBar {
        let bar = ProgressBar::new(self.steps as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        bar
    }
}

impl Observer for Progress {
    fn step(&mut self, _epoch: usize, step: usize, loss: f64, lr: f64) {
        if step == 0 {
            self.started = Instant::now();
        }
        let per_step = self.started.elapsed().as_secs_f64() / (step + 1) as f64;
        self.bar
            .set_message(format!("loss {loss:.3} lr {lr:.1e} {per_step:.2} s/step"));
        self.bar.inc(1);
    }

    fn epoch(&mut self, r: &EpochReport, model: &Model) -> Result<()> {
        self.bar.finish_and_clear();
        let dice: Vec<String> = self
            .class_names
            .iter()
            .zip(&r.val.dice)
            .map(|(name, d)| format!("{name} {d:.3}"))
            .collect();
        let mean = r.val.mean_dice();
        let improved = mean > self.best || self.best.is_nan();
        println!(
            "epoch {:>3}: loss {:.4}  val Dice {} (mean {mean:.3}){}  {:.0} s + {:.0} s val, {:.2} Mvox/s",
            r.epoch + 1,
            r.train_loss,
            dice.join(", "),
            if improved { " *" } else { "" },
            r.train_seconds,
            r.val_seconds,
            r.voxels_per_second / 1e6
        );
        let line = serde_json::json!({
            "epoch": r.epoch + 1, "train_loss": r.train_loss, "lr": r.lr, "val_dice": r.val.dice,
            "val_hd95": r.val.hd95, "val_assd": r.val.assd, "train_seconds": r.train_seconds,
            "val_seconds": r.val_seconds, "voxels_per_second": r.voxels_per_second,
        });
        writeln!(self.log, "{line}")?;
        let meta = self.spec.to_metadata();
        save_checkpoint(model.module(), &self.files.last(), &meta)?;
        if improved {
            self.best = mean;
            save_checkpoint(model.module(), &self.files.best(), &meta)?;
        }
        self.bar = self.new_bar(r.epoch + 1);
        Ok(())
    }
}

/// A volume on its own grid: the image (with its header, for the affine and spacing) and its labels.
struct Source {
    image: NiftiImage,
    labels: Tensor,
}

impl Source {
    /// Cropped, z-scored and resampled to `spacing`, as the network sees it, with the crop box.
    fn prepared(&self, spacing: [f64; 3]) -> Result<(Tensor, Tensor, preprocess::BoundingBox)> {
        let p = pipeline::prepare(
            &self.image.data,
            Some(&self.labels),
            self.image.spacing(),
            Some(spacing),
        )?;
        Ok((p.image, p.labels.expect("labels were given"), p.bbox))
    }
}

/// What the network trains on, what it is validated on each epoch, and where its final result is
/// computed: the held-out volume on its own grid, counting only the axial slices `region` when the
/// held-out part is a slab of the one training volume.
struct Split {
    train: Vec<(Tensor, Tensor)>,
    val: (Tensor, Tensor),
    held_out: Source,
    region: Option<Range<usize>>,
    class_names: Vec<String>,
}

/// The MNI152 template with an axial slab of its brain held out (slices 55% to 75% of the brain's
/// extent: never left against right), or the user's folder (the last case held out, or an axial
/// slab of a single case). A single volume is prepared whole (one z-score for all of it, as
/// `seg infer` prepares it) and cut into slabs after.
fn load_split(data: Option<&Path>, spacing: [f64; 3]) -> Result<Split> {
    let (mut cases, class_names) = match data {
        None => {
            let m = mni::load(mni::default_dir())?;
            let source = Source {
                image: m.t1,
                labels: m.labels,
            };
            (vec![source], vec!["GM".to_string(), "WM".to_string()])
        }
        Some(dir) => {
            let cases = dataset::load_folder(dir)?;
            let mut classes = 1;
            for c in &cases {
                let max = c
                    .labels
                    .to_dtype(seg::DType::F32)?
                    .to_vec::<f32>()?
                    .into_iter()
                    .fold(0.0f32, f32::max);
                classes = classes.max(max as usize);
            }
            let names = (1..=classes).map(|c| format!("class {c}")).collect();
            let sources = cases
                .into_iter()
                .map(|c| Source {
                    image: c.image,
                    labels: c.labels,
                })
                .collect();
            (sources, names)
        }
    };
    if cases.len() > 1 {
        let held_out = cases.pop().expect("two or more cases");
        let prepared = |s: &Source| s.prepared(spacing).map(|(i, l, _)| (i, l));
        return Ok(Split {
            train: cases.iter().map(prepared).collect::<Result<_>>()?,
            val: prepared(&held_out)?,
            held_out,
            region: None,
            class_names,
        });
    }
    let source = cases.pop().expect("one case");
    let (image, labels, bbox) = source.prepared(spacing)?;
    // The held-out slab in the original grid, and the prepared slices it became.
    let brain = bbox[0].clone();
    let split = AxialSplit::new(brain.len(), 0.55, 0.2)?;
    let region = brain.start + split.val.start..brain.start + split.val.end;
    let scale = source.image.spacing()[0] / spacing[0];
    let depth = image.shape()[0];
    let to_prepared = |z: usize| (((z - brain.start) as f64 * scale).round() as usize).min(depth);
    let val = to_prepared(region.start)..to_prepared(region.end).max(to_prepared(region.start) + 1);
    let slab = |r: &Range<usize>| Ok((AxialSplit::slab(&image, r)?, AxialSplit::slab(&labels, r)?));
    let train = [0..val.start, val.end..depth]
        .iter()
        .filter(|r| !r.is_empty())
        .map(slab)
        .collect::<Result<Vec<_>>>()?;
    Ok(Split {
        train,
        val: slab(&val)?,
        held_out: source,
        region: Some(region),
        class_names,
    })
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let device = seg::Device::parse(&args.device)?;
    let kind = ModelKind::parse(&args.model)?;
    let optimizer = OptimizerKind::parse(&args.optimizer)?;
    let patch = parse_triple::<usize>("patch", &args.patch)?;
    let spacing = parse_triple::<f64>("spacing", &args.spacing)?;
    let features_text = args.features.clone().unwrap_or_else(|| match kind {
        ModelKind::SwinUNETR | ModelKind::SegMamba => "24".into(),
        _ => "16,16,32,64,128,16".into(),
    });
    let numbers: Vec<usize> = features_text
        .split(',')
        .map(|f| f.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("train", format!("--features needs numbers, found {features_text:?}")))?;
    let features: [usize; 6] = match numbers[..] {
        [f] if matches!(kind, ModelKind::SwinUNETR | ModelKind::SegMamba) => [f; 6],
        _ => numbers.try_into().map_err(|_| {
            Error::invalid(
                "train",
                format!("--features needs six numbers, found {features_text:?}"),
            )
        })?,
    };
    if args.epochs == 0 || args.steps_per_epoch == 0 || args.batch_size == 0 {
        return Err(Error::invalid(
            "train",
            "epochs, steps per epoch and batch size must be positive",
        ));
    }

    let loading = Instant::now();
    let split = load_split(args.data.as_deref(), spacing)?;
    let data = TrainData {
        train: split.train,
        val: split.val,
        spacing,
        class_names: split.class_names,
    };
    let (held_out, region) = (split.held_out, split.region);
    let classes = data.class_names.len() + 1;
    println!(
        "data: {} training volume(s) {:?}, held-out {:?} at {spacing:?} mm ({:.1} s)",
        data.train.len(),
        data.train.iter().map(|t| t.0.shape().to_vec()).collect::<Vec<_>>(),
        data.val.0.shape(),
        loading.elapsed().as_secs_f64()
    );
    let spec = ModelSpec {
        kind,
        in_channels: 1,
        classes,
        features,
        patch,
        spacing,
    };
    let mut model = Model::new(&spec, args.seed)?;
    model.to_device(device)?;
    println!(
        "model: {} with {} parameters on {device}; {} epochs of {} steps, batch {}, patch {patch:?}, {:?}",
        kind.name(),
        model.module().num_parameters(),
        args.epochs,
        args.steps_per_epoch,
        args.batch_size,
        optimizer
    );
    let config = TrainConfig {
        epochs: args.epochs,
        steps_per_epoch: args.steps_per_epoch,
        batch_size: args.batch_size,
        lr: args.lr.unwrap_or(match optimizer {
            OptimizerKind::Sgd => 1e-2,
            OptimizerKind::AdamW => 2e-3,
        }),
        optimizer,
        patch,
        oversample: 0.33,
        // Left-right flips only: the brain's left-right mirror is anatomically plausible.
        augment: Augment {
            flip_axes: [false, false, true],
            ..Augment::default()
        },
        overlap: 0.25,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out)?;
    let files = RunFiles { dir: args.out.clone() };
    let mut progress = Progress {
        bar: ProgressBar::hidden(),
        steps: args.steps_per_epoch,
        epochs: args.epochs,
        started: Instant::now(),
        files,
        spec: spec.clone(),
        log: File::create(args.out.join("log.jsonl"))?,
        best: f64::NAN,
        class_names: data.class_names.clone(),
    };
    progress.bar = progress.new_bar(0);
    let started = Instant::now();
    let reports = fit(&mut model, &data, &config, &mut progress)?;
    progress.bar.finish_and_clear();
    println!("trained in {:.0} s", started.elapsed().as_secs_f64());

    // The held-out result of the best checkpoint on the held-out volume's own grid, computed as
    // `seg infer --tta` and `seg eval` compute it (the commands are printed below).
    load_checkpoint(model.module_mut(), &progress.files.best(), true)?;
    let image = &held_out.image;
    let prediction = segment_volume(&model, &spec, &image.data, image.spacing(), 0.5, true)?;
    let counted = |t: &Tensor| match &region {
        Some(r) => AxialSplit::slab(t, r),
        None => Ok(t.clone()),
    };
    let metrics = evaluate(
        &counted(&prediction)?,
        &counted(&held_out.labels)?,
        classes,
        image.spacing(),
    )?;
    let u8_header = |t: &Tensor| image.header.derive(t.shape(), NiftiType::U8);
    nifti::write(args.out.join("heldout_image.nii.gz"), &image.header, &image.data)?;
    nifti::write(
        args.out.join("heldout_labels.nii.gz"),
        &u8_header(&held_out.labels),
        &held_out.labels,
    )?;
    nifti::write(
        args.out.join("heldout_prediction.nii.gz"),
        &u8_header(&prediction),
        &prediction,
    )?;
    let loss: Vec<f64> = reports.iter().map(|r| r.train_loss).collect();
    let dice: Vec<f64> = reports.iter().map(|r| r.val.mean_dice()).collect();
    learning_curve(&loss, &dice)?.save(args.out.join("learning_curve.png"))?;
    let names: Vec<&str> = data.class_names.iter().map(String::as_str).collect();
    overlay(
        &counted(&image.data)?,
        &counted(&held_out.labels)?,
        Some(&counted(&prediction)?),
        &names,
    )?
    .save(args.out.join("overlay.png"))?;
    println!(
        "wrote {} (best and last checkpoints, log.jsonl, learning_curve.png, overlay.png, heldout_image, \
         heldout_labels and heldout_prediction .nii.gz)",
        args.out.display()
    );
    let slices = region
        .as_ref()
        .map_or(String::new(), |r| format!(" --slices {}..{}", r.start, r.end));
    println!(
        "the same with: seg infer --checkpoint {0}/best.safetensors --input {0}/heldout_image.nii.gz --output \
         {0}/p.nii.gz --tta && seg eval --prediction {0}/p.nii.gz --truth {0}/heldout_labels.nii.gz{slices}",
        args.out.display()
    );
    println!("held-out mean Dice ({}): {:.3}", names.join(", "), metrics.mean_dice());
    print!("{}", metrics_table(&names, &metrics));
    Ok(())
}
