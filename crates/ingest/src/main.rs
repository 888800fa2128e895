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
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let pipeline = Pipeline::load(&args.pipeline)?;
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
