//! `export --pipeline P [--split test] [--force]`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hits_core::Pipeline;

/// Write the trained model as ONNX (raw stamps in, P(real) out), checked with tract.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Pipeline configuration.
    #[arg(long, default_value = "pipelines/default.toml")]
    pipeline: PathBuf,
    /// The split whose every candidate the exported graph must score as the model does.
    #[arg(long, default_value = "test")]
    split: String,
    /// Run even when the inputs and settings are unchanged since the last run.
    #[arg(long)]
    force: bool,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let pipeline = Pipeline::load(&args.pipeline)?;
    let dir = pipeline.stage_dir(export::STAGE);
    let inputs = export::input_files(&pipeline, &args.split);
    if hits_core::stage::skip_if_up_to_date(&pipeline, export::STAGE, &dir, &inputs, args.force) {
        return Ok(());
    }
    let s = export::run(&pipeline, &args.split)?;
    println!(
        "export: {} ({} bytes, opset {}), input '{}' -> output '{}'; tract agrees with the model on {} candidates of split {} to {:.1e}",
        s.onnx.display(),
        s.bytes,
        s.opset,
        s.input.name,
        s.output.name,
        s.check.candidates,
        s.check.split,
        s.check.max_abs_difference
    );
    Ok(())
}
