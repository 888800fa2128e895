//! `train --pipeline pipelines/default.toml [--resume]`

use anyhow::Context;
use clap::Parser;
use hits_core::stage::StageArgs;

/// Stage 3: train a CNN on the feature cache, with checkpoints, resume and curves.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Continue from the last complete epoch of an interrupted run.
    #[arg(long)]
    resume: bool,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let pipeline = args.stage.load()?;
    if !args.resume
        && args
            .stage
            .skip(&pipeline, train::STAGE, &[train::features_path(&pipeline)])
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
