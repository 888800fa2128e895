use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hits_core::Pipeline;

/// Stack and normalise the ingested stamps of every split into model-ready Arrow tensors.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Pipeline configuration.
    #[arg(long, default_value = "pipelines/default.toml")]
    pipeline: PathBuf,
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
    let dir = pipeline.stage_dir(features::STAGE);
    let inputs = features::input_files(&pipeline);
    if hits_core::stage::skip_if_up_to_date(&pipeline, features::STAGE, &dir, &inputs, args.force) {
        return Ok(());
    }
    for summary in features::run(&pipeline)? {
        println!(
            "features {}: {} stamps (4x21x21) -> {}",
            summary.split,
            summary.rows,
            summary.path.display()
        );
    }
    Ok(())
}
