//! `submit [predict] --pipeline P [--split test]`, `submit score --answers FILE`,
//! `submit summary`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use hits_core::Pipeline;
use hits_core::stage::{DEFAULT_PIPELINE, StageArgs};

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
        #[command(flatten)]
        stage: StageArgs,
        /// The split to predict.
        #[arg(long, default_value = "test")]
        split: String,
    },
    /// Accuracy and F1 of the submission against an answer key (id,label); writes score.json.
    Score {
        #[arg(long, default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// The answer key (default: the simulator's, `<[simulate] out_dir>/test_labels.csv`;
        /// where there is none, as for your own CSVs, scoring is skipped and says so).
        #[arg(long)]
        answers: Option<PathBuf>,
        /// Another submission file to score (default: the pipeline's submission.csv).
        #[arg(long)]
        submission: Option<PathBuf>,
    },
    /// Validation and test figures, time per stage, and where the report is.
    Summary {
        #[arg(long, default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let command = Cli::parse().command.unwrap_or(Command::Predict {
        stage: StageArgs::default(),
        split: "test".into(),
    });
    match command {
        Command::Predict { stage, split } => {
            let Some(pipeline) =
                stage.pipeline_to_run(submit::STAGE, |p| submit::input_files(p, &split))?
            else {
                return Ok(());
            };
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
            let answers = match answers {
                Some(answers) => answers,
                None => {
                    let key = pipeline.simulate.answer_key();
                    if !key.exists() {
                        println!(
                            "score: no answer key at {} (pass --answers FILE): skipped",
                            key.display()
                        );
                        return Ok(());
                    }
                    key
                }
            };
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
