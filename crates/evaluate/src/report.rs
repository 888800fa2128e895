//! `report.md`: the evaluation as a person reads it.

use std::fmt::Write as _;

use features::StampSet;
use hits_core::config::ThresholdRule;

use crate::figures::{
    CONFUSION_PNG, DET_PNG, GALLERY_PNG, GALLERY_SIZE, RELIABILITY_PNG, ROC_PNG, SCORES_PNG,
};
use crate::{MISCLASSIFIED_FILE, ModelMetrics, Scores, ThresholdChoice};

fn rule_text(rule: ThresholdRule) -> String {
    match rule {
        ThresholdRule::Fixed { value } => format!("fixed at {value}"),
        ThresholdRule::TargetFpr { fpr } => {
            format!(
                "the lowest false-negative rate with a false-positive rate ≤ {fpr} on the validation set"
            )
        }
        ThresholdRule::EqualErrorRate => "the equal error rate on the validation set".into(),
    }
}

pub(crate) fn markdown(
    m: &ModelMetrics,
    choice: &ThresholdChoice,
    set: &StampSet,
    scores: &Scores,
    worst: &[usize],
    with_training_curves: bool,
) -> String {
    let r = &m.metrics;
    let c = r.confusion;
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation: {}\n", m.evaluated);
    let _ = writeln!(
        md,
        "Model: `{:?}` ({} parameters), {} candidates ({} real, {} bogus).\n",
        m.model,
        m.parameters,
        r.candidates,
        c.true_positive + c.false_negative,
        c.true_negative + c.false_positive
    );
    let _ = writeln!(
        md,
        "A candidate is called **real** when P(real) ≥ **{:.6}**: {} (chosen on {}; \
         there FPR {:.4}, FNR {:.4}). `submit` applies this threshold (`threshold.json`).\n",
        r.threshold,
        rule_text(m.threshold_rule),
        choice.chosen_on,
        choice.false_positive_rate,
        choice.false_negative_rate
    );
    let _ = writeln!(md, "## Metrics at the threshold\n");
    let _ = writeln!(md, "| metric | value |\n|---|---|");
    for (name, value) in [
        ("accuracy", r.accuracy),
        ("precision", r.precision),
        ("recall (1 − FNR)", r.recall),
        ("F1", r.f1),
        ("MCC", r.mcc),
        ("ROC AUC", r.roc_auc),
        ("FNR at FPR 1e-3", r.fnr_at_fpr_1e_3),
        ("FNR at FPR 1e-2", r.fnr_at_fpr_1e_2),
        ("equal error rate", r.equal_error_rate),
    ] {
        let _ = writeln!(md, "| {name} | {value:.5} |");
    }
    let _ = writeln!(md, "\n## Confusion matrix\n");
    let _ = writeln!(md, "| true \\ predicted | bogus | real |\n|---|---|---|");
    let _ = writeln!(md, "| bogus | {} | {} |", c.true_negative, c.false_positive);
    let _ = writeln!(md, "| real | {} | {} |", c.false_negative, c.true_positive);
    let _ = writeln!(md, "\n![confusion matrix]({CONFUSION_PNG})\n");
    if let Some(bins) = &r.snr_bins {
        let _ = writeln!(md, "## By |SNR| of the candidate's centre pixel\n");
        let _ = writeln!(
            md,
            "| bin | candidates | real | bogus | error | FNR | FPR |\n|---|---|---|---|---|---|---|"
        );
        for b in bins {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} |",
                b.bin,
                b.candidates,
                b.real,
                b.bogus,
                b.error_rate,
                b.false_negative_rate,
                b.false_positive_rate
            );
        }
    }
    if let Some(kinds) = &r.kinds {
        let _ = writeln!(md, "\n## By kind of candidate (`truth.csv`)\n");
        let _ = writeln!(
            md,
            "| kind | label | candidates | called real | recall / FPR |\n|---|---|---|---|---|"
        );
        for k in kinds {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} |",
                k.kind,
                if k.label == 1 { "real" } else { "bogus" },
                k.candidates,
                k.called_real,
                k.fraction_called_real
            );
        }
    }
    if let Some(calibration) = &r.calibration {
        let _ = writeln!(md, "\n## Calibration\n");
        match (&r.calibration_before_scaling, choice.temperature) {
            (Some(before), Some(t)) => {
                let _ = writeln!(
                    md,
                    "P(real) is temperature-scaled (T = {t:.4}, fitted on {}): ECE {:.4} → **{:.4}**, \
                     Brier score {:.4} → **{:.4}** (15 bins).\n",
                    choice.chosen_on, before.ece, calibration.ece, before.brier, calibration.brier
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "ECE **{:.4}**, Brier score **{:.4}** (15 bins; no temperature scaling).\n",
                    calibration.ece, calibration.brier
                );
            }
        }
        let _ = writeln!(md, "![reliability diagram]({RELIABILITY_PNG})");
    }
    let _ = writeln!(md, "\n## Curves\n");
    let _ = writeln!(
        md,
        "![ROC]({ROC_PNG})\n\n![DET: FNR against FPR, log axes]({DET_PNG})\n"
    );
    let _ = writeln!(md, "![P(real) by true class]({SCORES_PNG})\n");
    if with_training_curves {
        let _ = writeln!(
            md,
            "Training: ![loss](loss.png) ![accuracy](accuracy.png)\n"
        );
    }
    let _ = writeln!(
        md,
        "## Worst misclassified candidates\n\n{} misclassified in all (`{MISCLASSIFIED_FILE}`); \
         the {} most confidently wrong:\n",
        worst.len(),
        worst.len().min(GALLERY_SIZE)
    );
    let _ = writeln!(
        md,
        "| id | true | P(real) | centre SNR |\n|---|---|---|---|"
    );
    for &i in worst.iter().take(GALLERY_SIZE) {
        let label = if scores.labels[i] == 1 {
            "real"
        } else {
            "bogus"
        };
        let _ = writeln!(
            md,
            "| {} | {label} | {:.4} | {:.1} |",
            set.ids[i], scores.p_real[i], set.centre_snr[i]
        );
    }
    let _ = writeln!(md, "\n![worst misclassified]({GALLERY_PNG})");
    md
}
