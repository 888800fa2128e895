//! `simulate`: write the simulated HiTS candidates (`generate`, the default) or render the
//! realism check against real HiTS 2015 stamps (`check`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hits_core::Pipeline;

#[derive(Parser)]
#[command(about = "HiTS stamp simulator calibrated to real HiTS 2015 observing conditions")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate the train and test splits of `[simulate]` (the default).
    Generate {
        #[arg(long, default_value = "pipelines/default.toml")]
        pipeline: PathBuf,
        /// Simulate even when `[simulate]` and the simulator are unchanged since the last run.
        #[arg(long)]
        force: bool,
    },
    /// Compare simulated science stamps with real ones: PNGs and a table of medians.
    Check {
        #[arg(long, default_value = "pipelines/default.toml")]
        pipeline: PathBuf,
        /// Real HiTS 2015 science stamps.
        #[arg(long, default_value = "data/hits2015/real_science_stamps.csv")]
        real: PathBuf,
        /// Output directory (default: `<artifacts>/sim-check`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulated candidates to compare.
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> anyhow::Result<()> {
    let command = Cli::parse().command.unwrap_or(Command::Generate {
        pipeline: "pipelines/default.toml".into(),
        force: false,
    });
    match command {
        Command::Generate { pipeline, force } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let out = &pipeline.simulate.out_dir;
            if hits_core::stage::skip_if_up_to_date(&pipeline, simulator::STAGE, out, &[], force) {
                return Ok(());
            }
            let summary = simulator::generate(&pipeline).context("simulation failed")?;
            for file in &summary.files {
                tracing::info!(file = %file.display(), "wrote");
            }
            println!(
                "simulated {} candidates in {:.2} s: {:.0} candidates/s (CSV writing excluded)",
                summary.candidates,
                summary.simulation_seconds,
                summary.candidates_per_second()
            );
        }
        Command::Check {
            pipeline,
            real,
            out,
            count,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let out = out.unwrap_or_else(|| pipeline.stage_dir("sim-check"));
            let report = simulator::check::run(&pipeline, &real, &out, count)
                .context("realism check failed")?;
            println!(
                "{:<20} {:>14} {:>14}",
                "median of", "simulated", "real HiTS 2015"
            );
            for c in &report.comparisons {
                println!(
                    "{:<20} {:>9.2} (n={:<4}) {:>7.2} (n={})",
                    c.quantity, c.simulated, c.simulated_n, c.real, c.real_n
                );
            }
            for file in &report.files {
                println!("wrote {}", file.display());
            }
        }
    }
    Ok(())
}
