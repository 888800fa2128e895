//! `export --pipeline P [--split test] [--force]`.

use anyhow::Result;
use clap::Parser;
use hits_core::stage::StageArgs;

/// Write the trained model as ONNX (raw stamps in, P(real) out), checked with tract.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The split whose every candidate the exported graph must score as the model does.
    #[arg(long, default_value = "test")]
    split: String,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let Some(pipeline) = args
        .stage
        .pipeline_to_run(export::STAGE, |p| export::input_files(p, &args.split))?
    else {
        return Ok(());
    };
    let s = export::run(&pipeline, &args.split)?;
    println!(
        "export: {} ({} bytes, opset {}), input '{}' -> output '{}'; tract agrees with the model on {} candidates of split {} to {:.1e}",
        s.onnx.display(),
        s.bytes,
        s.opset,
        s.input.name,
        s.output.name,
        s.check.candidates,
        s.check.split,
        s.check.max_abs_difference
    );
    Ok(())
}
