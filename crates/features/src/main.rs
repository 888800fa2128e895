use anyhow::Result;
use clap::Parser;
use hits_core::stage::StageArgs;

/// Stack and normalise the ingested stamps of every split into model-ready Arrow tensors.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let Some(pipeline) = args
        .stage
        .pipeline_to_run(features::STAGE, features::input_files)?
    else {
        return Ok(());
    };
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
