//! `submit [predict] --pipeline P [--split test]`, `submit score --answers FILE`,
//! `submit summary`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use hits_core::Pipeline;

/// Predict a split at the chosen threshold, score a submission, or summarise the pipeline.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Predict a split and write submission.csv and predictions.csv (the default).
    Predict {
        #[arg(long, default_value = "pipelines/default.toml")]
        pipeline: PathBuf,
        /// The split to predict.
        #[arg(long, default_value = "test")]
        split: String,
        /// Run even when the inputs and settings are unchanged since the last run.
        #[arg(long)]
        force: bool,
    },
    /// Accuracy and F1 of the submission against an answer key (id,label); writes score.json.
    Score {
        #[arg(long, default_value = "pipelines/default.toml")]
        pipeline: PathBuf,
        #[arg(long, default_value = "data/sim/test_labels.csv")]
        answers: PathBuf,
        /// Another submission file to score (default: the pipeline's submission.csv).
        #[arg(long)]
        submission: Option<PathBuf>,
    },
    /// Validation and test figures, time per stage, and where the report is.
    Summary {
        #[arg(long, default_value = "pipelines/default.toml")]
        pipeline: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let command = Cli::parse().command.unwrap_or(Command::Predict {
        pipeline: "pipelines/default.toml".into(),
        split: "test".into(),
        force: false,
    });
    match command {
        Command::Predict {
            pipeline,
            split,
            force,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let dir = pipeline.stage_dir(submit::STAGE);
            let inputs = submit::input_files(&pipeline, &split);
            if hits_core::stage::skip_if_up_to_date(&pipeline, submit::STAGE, &dir, &inputs, force)
            {
                return Ok(());
            }
            let s = submit::run(&pipeline, &split)?;
            println!(
                "submit {split}: {} candidates, {} called real at threshold {} -> {}",
                s.candidates,
                s.called_real,
                s.threshold,
                s.dir.join(submit::SUBMISSION_FILE).display()
            );
        }
        Command::Score {
            pipeline,
            answers,
            submission,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let score = submit::score_pipeline(&pipeline, &answers, submission.as_deref())?;
            println!(
                "{} against {}: {} candidates, {}",
                score.submission.display(),
                score.answers.display(),
                score.candidates,
                score.headline()
            );
        }
        Command::Summary { pipeline } => {
            print!("{}", submit::summary(&Pipeline::load(&pipeline)?)?);
        }
    }
    Ok(())
}
