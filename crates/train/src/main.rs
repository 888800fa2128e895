//! `train --pipeline pipelines/default.toml [--resume]`

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Stage 3: train a CNN on the feature cache, with checkpoints, resume and curves.
#[derive(Parser)]
struct Args {
    /// The pipeline configuration.
    #[arg(long, default_value = "pipelines/default.toml")]
    pipeline: PathBuf,
    /// Continue from the last complete epoch of an interrupted run.
    #[arg(long)]
    resume: bool,
    /// Run even when the features and settings are unchanged since the last run.
    #[arg(long)]
    force: bool,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let pipeline = hits_core::Pipeline::load(&args.pipeline)?;
    let inputs = [train::features_path(&pipeline)];
    let dir = pipeline.stage_dir(train::STAGE);
    if !args.resume
        && hits_core::stage::skip_if_up_to_date(&pipeline, train::STAGE, &dir, &inputs, args.force)
    {
        return Ok(());
    }
    let report = train::run(&pipeline, args.resume).context("train failed")?;
    if let Some(last) = report.history.iter().find(|r| r.epoch == report.kept_epoch) {
        tracing::info!(
            "done on {}: kept epoch {} (val loss {:.4}, val accuracy {:.4}){}",
            report.backend,
            report.kept_epoch,
            last.val_loss,
            last.val_accuracy,
            if report.stopped_early {
                ", stopped early"
            } else {
                ""
            }
        );
    }
    Ok(())
}
