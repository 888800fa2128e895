use anyhow::Result;
use clap::Parser;
use hits_core::config::DuplicatePolicy;
use hits_core::stage::StageArgs;

/// Read and validate the candidate CSVs of every split, write Arrow IPC and reports.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Duplicate candidates (identical stamps in all four channels): refuse the split, or keep
    /// the first and drop the others, listing them (default: the pipeline's `[data] duplicates`).
    #[arg(long, value_name = "refuse|drop")]
    duplicates: Option<DuplicatePolicy>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let mut pipeline = args.stage.load()?;
    if let Some(duplicates) = args.duplicates {
        pipeline.data.duplicates = duplicates;
    }
    if args
        .stage
        .skip(&pipeline, ingest::STAGE, &ingest::input_files(&pipeline))
    {
        return Ok(());
    }
    for report in ingest::run(&pipeline)? {
        let balance = match &report.label_counts {
            Some(counts) => format!(", {} real / {} bogus", counts["real"], counts["bogus"]),
            None => ", unlabelled".to_string(),
        };
        for d in &report.dropped_duplicates {
            eprintln!(
                "ingest {}: dropped duplicate candidate '{}' (row {}): identical to '{}' (row {}), which is kept",
                report.split, d.id, d.row, d.twin_id, d.twin_row
            );
        }
        let dropped = match report.dropped_duplicates.len() {
            0 => String::new(),
            n => format!(", {n} duplicates dropped"),
        };
        println!(
            "ingest {}: {} candidates{balance}{dropped} ({:.2} s)",
            report.split, report.rows, report.seconds
        );
    }
    Ok(())
}
