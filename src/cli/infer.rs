//! `seg infer`: a checkpoint of `seg train` applied to a NIfTI image, written as a NIfTI label map
//! on the input's grid and affine.

use std::path::PathBuf;

use clap::Args;
use seg::data::nifti::{self, NiftiType};
use seg::data::picture::overlay;
use seg::nn::checkpoint::read_safetensors;
use seg::train::{segment_volume, Model, ModelSpec};
use seg::Result;

#[derive(Args, Debug)]
pub struct InferArgs {
    /// A checkpoint written by seg train (best.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The image (.nii or .nii.gz).
    #[arg(long)]
    input: PathBuf,
    /// The label map to write (.nii or .nii.gz).
    #[arg(long)]
    output: PathBuf,
    /// Also write a PNG of the mid-slices with the predicted contours.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Average the predictions of the image flipped along each axis.
    #[arg(long)]
    tta: bool,
    /// Overlap of the sliding windows.
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// Where the network runs: cpu, cuda (GPU 0) or cuda:N (windows are blended on the host).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: &InferArgs) -> Result<()> {
    let device = seg::Device::parse(&args.device)?;
    let (tensors, meta) = read_safetensors(&args.checkpoint)?;
    let spec = ModelSpec::from_metadata(&meta)?;
    let mut model = Model::new(&spec, 0)?;
    seg::nn::load_parameters(model.module_mut(), &tensors, true)?;
    model.to_device(device)?;
    let image = nifti::read(&args.input)?;
    let restored = segment_volume(&model, &spec, &image.data, image.spacing(), args.overlap, args.tta)?;
    let header = image.header.derive(restored.shape(), NiftiType::U8);
    nifti::write(&args.output, &header, &restored)?;
    println!(
        "wrote {} ({:?}, classes 0..{})",
        args.output.display(),
        restored.shape(),
        spec.classes - 1
    );
    if let Some(png) = &args.png {
        let names: Vec<String> = (1..spec.classes).map(|c| format!("class {c}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        overlay(&image.data, &restored, None, &names)?.save(png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
