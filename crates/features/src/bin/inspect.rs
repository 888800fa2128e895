use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Show the schema, size and label balance of an ingest or features Arrow file, and render one
/// candidate's four channels in the terminal and as a PNG.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// An Arrow IPC file written by `ingest` or `features`.
    file: PathBuf,
    /// Which candidate to render (0-based row).
    #[arg(long, default_value_t = 0)]
    row: usize,
    /// Where to write the PNG (default: artifacts/inspect/<file stem>-row<N>.png).
    #[arg(long)]
    png: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let inspection = features::inspect::inspect(&args.file, args.row)?;
    print!("{}", inspection.summary(&args.file));
    println!(
        "\ncandidate row {}: id {}, label {:?}",
        args.row, inspection.id, inspection.label
    );
    print!("{}", features::inspect::render_text(&inspection.stamp));
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let png = args
        .png
        .unwrap_or_else(|| PathBuf::from(format!("artifacts/inspect/{stem}-row{}.png", args.row)));
    inspection.write_png(&png)?;
    println!("wrote {}", png.display());
    Ok(())
}
