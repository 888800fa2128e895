//! The evaluation PNGs: confusion matrix, ROC and DET curves, score histograms per class,
//! the reliability diagram, and the gallery of the worst misclassified candidates.

use std::path::{Path, PathBuf};

use features::StampSet;
use hits_core::{Channel, STAMP_PIXELS};
use plots::StampPanel;

use crate::calibration::Calibration;
use crate::metrics::roc_curve;
use crate::{EvaluateError, Report, Scores};

pub const CONFUSION_PNG: &str = "confusion.png";
pub const ROC_PNG: &str = "roc.png";
pub const DET_PNG: &str = "det.png";
pub const SCORES_PNG: &str = "scores.png";
pub const GALLERY_PNG: &str = "misclassified.png";
pub const RELIABILITY_PNG: &str = "reliability.png";

/// Candidates shown in the gallery.
pub const GALLERY_SIZE: usize = 12;

/// The plots any set of scores gets; returns the files written.
pub fn score_plots(
    dir: &Path,
    what: &str,
    scores: &Scores,
    report: &Report,
) -> Result<Vec<PathBuf>, EvaluateError> {
    let c = report.confusion;
    let confusion = dir.join(CONFUSION_PNG);
    plots::confusion_matrix(
        &confusion,
        &format!("{what}: threshold {:.4}", report.threshold),
        ["bogus", "real"],
        [
            [c.true_negative, c.false_positive],
            [c.false_negative, c.true_positive],
        ],
    )?;

    let curve = roc_curve(&scores.labels, &scores.p_real);
    let roc: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| (p.false_positive_rate, 1.0 - p.false_negative_rate))
        .collect();
    let roc_path = dir.join(ROC_PNG);
    plots::line_chart(
        &roc_path,
        &format!("{what}: ROC (AUC {:.5})", report.roc_auc),
        "false-positive rate",
        "true-positive rate",
        &[("model", &roc), ("chance", &[(0.0, 0.0), (1.0, 1.0)])],
        false,
        false,
    )?;

    // Log axes cannot show a rate of 0: draw it at half of one candidate of the class.
    let real = c.true_positive + c.false_negative;
    let bogus = c.true_negative + c.false_positive;
    let (fpr_floor, fnr_floor) = (0.5 / bogus.max(1) as f64, 0.5 / real.max(1) as f64);
    let det: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| {
            (
                p.false_positive_rate.max(fpr_floor),
                p.false_negative_rate.max(fnr_floor),
            )
        })
        .collect();
    let det_path = dir.join(DET_PNG);
    plots::line_chart(
        &det_path,
        &format!(
            "{what}: DET (FNR {:.4} at FPR 1e-2, {:.4} at 1e-3)",
            report.fnr_at_fpr_1e_2, report.fnr_at_fpr_1e_3
        ),
        "false-positive rate (log)",
        "false-negative rate (log)",
        &[("model", &det)],
        true,
        true,
    )?;

    let by_class = |class: u8| -> Vec<f64> {
        scores
            .labels
            .iter()
            .zip(&scores.p_real)
            .filter(|(l, _)| **l == class)
            .map(|(_, &p)| p)
            .collect()
    };
    let histogram = dir.join(SCORES_PNG);
    plots::histograms(
        &histogram,
        &format!("{what}: P(real) by true class"),
        "P(real)",
        &[("bogus", &by_class(0)), ("real", &by_class(1))],
        50,
        true,
    )?;
    let mut written = vec![confusion, roc_path, det_path, histogram];
    if let Some(calibration) = &report.calibration {
        let curve = |c: &Calibration| -> Vec<(f64, f64)> {
            c.bins
                .iter()
                .filter(|b| b.candidates > 0)
                .map(|b| (b.mean_p_real, b.fraction_real))
                .collect()
        };
        let after = curve(calibration);
        let before = report.calibration_before_scaling.as_ref().map(curve);
        let mut series: Vec<(&str, &[(f64, f64)])> = vec![("model", &after)];
        if let Some(before) = &before {
            series = vec![("temperature-scaled", &after), ("before scaling", before)];
        }
        series.push(("perfect", &[(0.0, 0.0), (1.0, 1.0)]));
        let path = dir.join(RELIABILITY_PNG);
        plots::line_chart(
            &path,
            &format!(
                "{what}: reliability (ECE {:.4}, Brier {:.4}, {} bins)",
                calibration.ece,
                calibration.brier,
                crate::calibration::CALIBRATION_BINS
            ),
            "mean P(real) in bin",
            "fraction real in bin",
            &series,
            false,
            false,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Misclassified candidates of `set` (indices), the most confidently wrong first.
pub fn misclassified(labels: &[u8], p_real: &[f64], threshold: f64) -> Vec<usize> {
    let wrongness = |i: usize| (f64::from(labels[i]) - p_real[i]).abs();
    let mut wrong: Vec<usize> = (0..labels.len())
        .filter(|&i| (labels[i] == 1) != (p_real[i] >= threshold))
        .collect();
    wrong.sort_by(|&a, &b| wrongness(b).total_cmp(&wrongness(a)));
    wrong
}

/// All four channels of the worst misclassified candidates (`shown`, of `misclassified` in
/// all), captioned with id, label and score, each with its occlusion map (`maps`, as
/// [`crate::explain::occlusion_map`]) in the row under it.
pub fn gallery(
    path: &Path,
    set: &StampSet,
    labels: &[u8],
    p_real: &[f64],
    shown: &[usize],
    misclassified: usize,
    maps: &[Vec<f32>],
) -> Result<(), EvaluateError> {
    let captions: Vec<String> = shown
        .iter()
        .map(|&i| {
            format!(
                "{}   true {}   P(real) {:.3}   centre SNR {:.1}",
                set.ids[i],
                if labels[i] == 1 { "real" } else { "bogus" },
                p_real[i],
                set.centre_snr[i]
            )
        })
        .collect();
    let title = if shown.is_empty() {
        "no misclassified candidates".to_string()
    } else {
        format!("worst {} of {misclassified} misclassified", shown.len())
    };
    explained_gallery(path, &title, set, shown, &captions, maps)
}

/// Rows `shown` of `set`, each captioned and, where `maps` has one, with its occlusion map in
/// the row under it.
pub fn explained_gallery(
    path: &Path,
    title: &str,
    set: &StampSet,
    shown: &[usize],
    captions: &[String],
    maps: &[Vec<f32>],
) -> Result<(), EvaluateError> {
    let split = |values: &[f32]| -> [Vec<f32>; 4] {
        std::array::from_fn(|c| values[c * STAMP_PIXELS..(c + 1) * STAMP_PIXELS].to_vec())
    };
    let mut panels = Vec::with_capacity(2 * shown.len());
    for (k, (&i, caption)) in shown.iter().zip(captions).enumerate() {
        panels.push(StampPanel {
            caption: caption.clone(),
            channels: split(&set.stamps.get(i)?),
        });
        if let Some(map) = maps.get(k) {
            let strongest = map.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            panels.push(StampPanel {
                caption: format!(
                    "  occlusion: fall of P(real) when each 3x3 patch is masked (bright: raised it; largest {strongest:.3})"
                ),
                channels: split(map),
            });
        }
    }
    plots::stamp_gallery(path, title, Channel::ALL.map(|c| c.name()), &panels)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misclassified_are_sorted_most_confident_first() {
        let labels = [1, 0, 1, 0, 1];
        let p = [0.4, 0.9, 0.05, 0.2, 0.8];
        assert_eq!(misclassified(&labels, &p, 0.5), [2, 1, 0]);
        assert_eq!(misclassified(&labels, &p, 0.3), [2, 1]);
    }
}
