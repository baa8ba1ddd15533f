//! Trains a small 3D U-Net (MONAI's BasicUNet) on a synthetic task, spheres and boxes in noise, and
//! prints the validation Dice per epoch: the training loop of `seg train` on data made up here.
//!
//!     cargo run --release --example train_synthetic

use seg::train::synthetic::small_task;
use seg::train::{fit, EpochReport, Model, Observer};

struct Print;

impl Observer for Print {
    fn step(&mut self, _epoch: usize, _step: usize, _loss: f64, _lr: f64) {}
    fn epoch(&mut self, r: &EpochReport, _model: &Model) -> seg::Result<()> {
        println!(
            "epoch {}: loss {:.3}, validation Dice (sphere, box) {:.3} {:.3}",
            r.epoch, r.train_loss, r.val.dice[0], r.val.dice[1]
        );
        Ok(())
    }
}

fn main() -> seg::Result<()> {
    let (data, spec, config) = small_task(12)?;
    let mut model = Model::new(&spec, 0)?;
    let reports = fit(&mut model, &data, &config, &mut Print)?;
    let last = reports.last().expect("at least one epoch");
    println!("final mean Dice {:.3}", last.val.mean_dice());
    Ok(())
}
