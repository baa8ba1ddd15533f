//! The `seg` command-line program.

use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use clap::{Parser, Subcommand};
use seg::conformance::{self, Outcome};

#[derive(Parser)]
#[command(name = "seg", version, about = "3D medical image segmentation in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a 3D segmentation network on the bundled MNI152 brain MRI (grey/white matter) or your own
    /// NIfTI data.
    Train(cli::train::TrainArgs),
    /// Segment a NIfTI image with a trained checkpoint.
    Infer(cli::infer::InferArgs),
    /// Compare two NIfTI label maps: Dice, IoU, HD95, ASSD, Betti-number errors.
    Eval(cli::eval::EvalArgs),
    /// Check every op against the PyTorch/MONAI reference cases (*.safetensors) in DIR.
    Conformance {
        /// Directory of fixture files.
        dir: PathBuf,
        /// Where the ops run: `cpu`, `cuda` (device 0) or `cuda:N`.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Print the build, the CPU features detected and the thread count.
    Info,
}

fn main() -> ExitCode {
    seg_tensor::retain_freed_memory();
    match Cli::parse().command {
        Command::Train(args) => report(cli::train::run(&args)),
        Command::Infer(args) => report(cli::infer::run(&args)),
        Command::Eval(args) => report(cli::eval::run(&args)),
        Command::Conformance { dir, device } => match seg::Device::parse(&device) {
            Ok(device) => run_conformance(&dir, device),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Info => {
            println!("seg {}", env!("CARGO_PKG_VERSION"));
            println!("threads: {}", available_threads());
            println!("cpu features: {}", cpu_features().join(" "));
            ExitCode::SUCCESS
        }
    }
}

/// Exit status of a job: errors are printed, never panics.
fn report(result: seg::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_conformance(dir: &std::path::Path, device: seg::Device) -> ExitCode {
    let reports = match conformance::run_dir_on(dir, device, |r| println!("{r}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read fixtures in {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let passed = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass { .. }))
        .count();
    let failed = reports.len() - passed;
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push("avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            found.push("fma");
        }
    }
    #[cfg(target_arch = "aarch64")]
    found.push("neon");
    found
}
