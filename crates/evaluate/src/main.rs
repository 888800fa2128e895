use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Real/bogus metrics of a set of predictions.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Predictions to score: CSV with a header and columns label,p_real[,snr].
    #[arg(long)]
    scores: PathBuf,
    /// Call a candidate real when p_real >= threshold.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Directory for metrics.json (default: artifacts/evaluate/<scores file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let stem = args
        .scores
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("artifacts/evaluate").join(stem));
    let r = evaluate::evaluate_scores_file(&args.scores, args.threshold, &out)?;
    println!(
        "{}: {} candidates, threshold {}",
        args.scores.display(),
        r.candidates,
        r.threshold
    );
    println!(
        "  accuracy {:.5}  precision {:.5}  recall {:.5}  F1 {:.5}  MCC {:.5}",
        r.accuracy, r.precision, r.recall, r.f1, r.mcc
    );
    println!(
        "  ROC AUC {:.5}  FNR@FPR=1e-3 {:.4}  FNR@FPR=1e-2 {:.4}  EER {:.4}",
        r.roc_auc, r.fnr_at_fpr_1e_3, r.fnr_at_fpr_1e_2, r.equal_error_rate
    );
    let c = r.confusion;
    println!(
        "  confusion: TP {} FP {} TN {} FN {}",
        c.true_positive, c.false_positive, c.true_negative, c.false_negative
    );
    for bin in r.snr_bins.iter().flatten() {
        println!(
            "  {:<18} n={:<6} error {:.4}  FNR {:.4}  FPR {:.4}",
            bin.bin,
            bin.candidates,
            bin.error_rate,
            bin.false_negative_rate,
            bin.false_positive_rate
        );
    }
    println!("wrote {}", out.join("metrics.json").display());
    Ok(())
}
