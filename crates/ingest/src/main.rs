use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hits_core::Pipeline;

/// Read and validate the candidate CSVs of every split, write Arrow IPC and reports.
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
    let dir = pipeline.stage_dir(ingest::STAGE);
    let inputs = ingest::input_files(&pipeline);
    if hits_core::stage::skip_if_up_to_date(&pipeline, ingest::STAGE, &dir, &inputs, args.force) {
        return Ok(());
    }
    for report in ingest::run(&pipeline)? {
        let balance = match &report.label_counts {
            Some(counts) => format!(", {} real / {} bogus", counts["real"], counts["bogus"]),
            None => ", unlabelled".to_string(),
        };
        println!(
            "ingest {}: {} candidates{balance} ({:.2} s)",
            report.split, report.rows, report.seconds
        );
    }
    Ok(())
}
