//! `predict INPUT [--model DIR]`: score a directory of candidate CSVs with a trained model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hits_core::config::{DuplicatePolicy, Layout};
use submit::directory::{DirectoryJob, predict_directory};

/// Score every candidate of a directory (template/science/difference/snr_difference.csv, in
/// either layout; with labels.csv also the metrics), or of a NumPy file (.npy of shape
/// (N, 21, 21, 4), channels last; .npz with `stamps` and optional `ids`, `labels`), with a
/// trained model at its threshold.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The directory of channel CSVs, or a .npy/.npz file.
    input: PathBuf,
    /// The artifacts directory of the model's pipeline (its train/ and evaluate/).
    #[arg(long, default_value = "artifacts")]
    model: PathBuf,
    /// The CSV layout (default: detected from template.csv).
    #[arg(long, value_name = "id_header|plain")]
    layout: Option<Layout>,
    /// Duplicate candidates: refuse the directory, or keep the first and drop the others.
    #[arg(long, value_name = "refuse|drop", default_value = "refuse")]
    duplicates: DuplicatePolicy,
    /// Output directory (default: <model>/predict/<input directory name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Explain these candidates (ids, comma-separated): each with its occlusion map, in
    /// explain.png (for NumPy input without ids, the ids are the row numbers from 0).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    explain: Vec<String>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let name = args
        .input
        .file_name()
        .map_or_else(|| "input".into(), |n| n.to_string_lossy().replace('.', "_"));
    let job = DirectoryJob {
        out_dir: args
            .out
            .unwrap_or_else(|| args.model.join("predict").join(name)),
        model_dir: args.model.join("train"),
        evaluate_dir: args.model.join("evaluate"),
        layout: args.layout,
        duplicates: args.duplicates,
        explain: args.explain,
        input: args.input,
    };
    let summary = predict_directory(&job)?;
    println!(
        "predict {}: {} candidates ({}), {} called real at threshold {:.4}{}",
        summary.input.display(),
        summary.candidates,
        summary
            .layout
            .map_or_else(|| "NumPy".to_string(), |l| format!("{l:?} layout")),
        summary.called_real,
        summary.threshold,
        match summary.dropped_duplicates {
            0 => String::new(),
            n => format!(", {n} duplicates dropped"),
        }
    );
    if let Some(m) = &summary.metrics {
        println!(
            "  labels: accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  ROC AUC {:.4}",
            m.accuracy, m.precision, m.recall, m.f1, m.roc_auc
        );
    }
    println!(
        "wrote {} (predictions.csv, summary.json, p_real.png{})",
        job.out_dir.display(),
        if summary.metrics.is_some() {
            ", metrics.json and plots"
        } else {
            ""
        }
    );
    Ok(())
}
