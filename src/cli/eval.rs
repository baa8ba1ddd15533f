//! `seg eval`: Dice, IoU, HD95, ASSD and Betti-number errors per class between two NIfTI label maps.

use std::path::PathBuf;

use clap::Args;
use seg::data::nifti;
use seg::losses::metrics::mean_iou;
use seg::losses::topology::betti_numbers;
use seg::train::evaluate;
use seg::{DType, Error, Result, Tensor};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The predicted label map (.nii or .nii.gz).
    #[arg(long)]
    prediction: PathBuf,
    /// The ground-truth label map, on the same grid.
    #[arg(long)]
    truth: PathBuf,
    /// Also write the numbers as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Count only the axial slices START..END (tensor axis 0, the file's z), e.g. a held-out slab.
    #[arg(long)]
    slices: Option<String>,
}

/// `START..END` as a range.
fn parse_slices(text: &str) -> Result<std::ops::Range<usize>> {
    let bad = || Error::invalid("eval", format!("--slices needs START..END, found {text:?}"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a < b {
        Ok(a..b)
    } else {
        Err(bad())
    }
}

/// A label map as u8 class indices, with the largest class.
fn labels(image: &nifti::NiftiImage, path: &std::path::Path) -> Result<(Tensor, usize)> {
    let values = image.data.to_vec::<f32>()?;
    if let Some(bad) = values.iter().find(|v| v.fract() != 0.0 || !(0.0..=255.0).contains(*v)) {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!("a label map holds whole numbers 0..=255, found {bad}"),
        });
    }
    let max = values.iter().fold(0.0f32, |m, &v| m.max(v)) as usize;
    Ok((image.data.to_dtype(DType::U8)?, max))
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let (pred_image, truth_image) = (nifti::read(&args.prediction)?, nifti::read(&args.truth)?);
    nifti::check_same_grid(&truth_image.header, &args.truth, &pred_image.header, &args.prediction)?;
    let (pred, pmax) = labels(&pred_image, &args.prediction)?;
    let (truth, tmax) = labels(&truth_image, &args.truth)?;
    let (pred, truth) = match args.slices.as_deref().map(parse_slices).transpose()? {
        Some(r) if r.end <= truth.shape()[0] => (
            pred.narrow(0, r.start, r.len())?.contiguous()?,
            truth.narrow(0, r.start, r.len())?.contiguous()?,
        ),
        Some(r) => {
            return Err(Error::invalid(
                "eval",
                format!("--slices {r:?} outside the {} slices of the volume", truth.shape()[0]),
            ))
        }
        None => (pred, truth),
    };
    let classes = pmax.max(tmax) + 1;
    let spacing = truth_image.spacing();
    let metrics = evaluate(&pred, &truth, classes, spacing)?;
    let one_hot = |t: &Tensor| -> Result<Tensor> {
        t.to_dtype(DType::I64)?
            .one_hot(Some(classes), DType::F32)?
            .permute(&[3, 0, 1, 2])?
            .unsqueeze(0)
    };
    let iou = mean_iou(&one_hot(&pred)?, &one_hot(&truth)?, false, true)?.to_vec_f64();
    let mut rows = Vec::new();
    println!(
        "{:<6} {:>7} {:>7} {:>9} {:>9} {:>16}",
        "class", "Dice", "IoU", "HD95 mm", "ASSD mm", "Betti error b0,b1,b2"
    );
    for c in 1..classes {
        let mask = |t: &Tensor| t.eq(&Tensor::scalar(c as u8))?.to_dtype(DType::F32);
        let (bp, bt) = (betti_numbers(&mask(&pred)?)?, betti_numbers(&mask(&truth)?)?);
        let betti_error: Vec<usize> = bp.iter().zip(&bt).map(|(p, t)| p.abs_diff(*t)).collect();
        let i = c - 1;
        println!(
            "{c:<6} {:>7.3} {:>7.3} {:>9.2} {:>9.2} {:>16}",
            metrics.dice[i],
            iou[i],
            metrics.hd95[i],
            metrics.assd[i],
            format!("{betti_error:?}")
        );
        rows.push(serde_json::json!({
            "class": c, "dice": metrics.dice[i], "iou": iou[i], "hd95": metrics.hd95[i],
            "assd": metrics.assd[i], "betti_prediction": bp, "betti_truth": bt, "betti_error": betti_error,
        }));
    }
    if let Some(path) = &args.json {
        let text = serde_json::json!({ "classes": rows }).to_string();
        std::fs::write(path, text + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
