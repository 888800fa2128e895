//! `evaluate --pipeline P [--split NAME] [--force]`, or `evaluate --scores FILE.csv`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use evaluate::Report;
use hits_core::Pipeline;
use hits_core::stage::StageArgs;

/// Real/bogus metrics, threshold, report and plots of the trained model (or of a predictions file).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Evaluate this whole labelled split at the chosen threshold (default: the validation
    /// candidates `train` held out, which also chooses the threshold).
    #[arg(long, conflicts_with = "labelled_splits")]
    split: Option<String>,
    /// Evaluate every labelled split besides the training one (e.g. `real_holdout`), each at
    /// the chosen threshold into artifacts/evaluate/<split>/; nothing to do if there is none.
    #[arg(long)]
    labelled_splits: bool,
    /// Score external predictions instead: CSV with a header and columns label,p_real[,snr].
    #[arg(long)]
    scores: Option<PathBuf>,
    /// With --scores: call a candidate real when p_real >= threshold.
    #[arg(long, default_value_t = 0.5, requires = "scores")]
    threshold: f64,
    /// With --scores: output directory (default: artifacts/evaluate/<scores file stem>).
    #[arg(long, requires = "scores")]
    out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    if let Some(scores) = &args.scores {
        let stem = scores.file_stem().unwrap_or_default().to_string_lossy();
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("artifacts/evaluate").join(&*stem));
        let report = evaluate::evaluate_scores_file(scores, args.threshold, &out)?;
        print_report(&scores.display().to_string(), &report);
        println!("wrote {}", out.display());
        return Ok(());
    }
    let pipeline = args.stage.load()?;
    if args.labelled_splits {
        for split in evaluate::other_labelled_splits(&pipeline) {
            evaluate_one(&pipeline, Some(&split), args.stage.force)?;
        }
        return Ok(());
    }
    evaluate_one(&pipeline, args.split.as_deref(), args.stage.force)
}

fn evaluate_one(pipeline: &Pipeline, split: Option<&str>, force: bool) -> Result<()> {
    let dir = evaluate::out_dir(pipeline, split);
    let inputs = evaluate::input_files(pipeline, split);
    if hits_core::stage::skip_if_up_to_date(pipeline, evaluate::STAGE, &dir, &inputs, force) {
        return Ok(());
    }
    let result = evaluate::run(pipeline, split)?;
    print_report(&result.evaluated, &result.metrics);
    println!(
        "wrote {} (metrics.json, PNGs, misclassified.csv)",
        dir.join(evaluate::REPORT_FILE).display()
    );
    Ok(())
}

fn print_report(what: &str, r: &Report) {
    println!(
        "{what}: {} candidates, threshold {}",
        r.candidates, r.threshold
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
    if let Some(c) = &r.calibration {
        let before = r
            .calibration_before_scaling
            .as_ref()
            .map(|b| {
                format!(
                    " (before temperature scaling: ECE {:.4}, Brier {:.4})",
                    b.ece, b.brier
                )
            })
            .unwrap_or_default();
        println!("  ECE {:.4}  Brier {:.4}{before}", c.ece, c.brier);
    }
    for k in r.kinds.iter().flatten() {
        println!(
            "  {:<24} {} n={:<6} called real {:.4}",
            k.kind,
            if k.label == 1 { "real " } else { "bogus" },
            k.candidates,
            k.fraction_called_real
        );
    }
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
}
