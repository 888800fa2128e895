//! Classification metrics for real (1) / bogus (0) scores.
//!
//! A candidate is called real when `p_real >= threshold`. ROC AUC is the Mann–Whitney
//! statistic with ties counted as half, so it equals the area under the full ROC curve.

use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;

/// Labels, scores and (optionally) each candidate's centre SNR.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    pub labels: Vec<u8>,
    pub p_real: Vec<f64>,
    pub snr: Option<Vec<f64>>,
}

pub use hits_core::confusion::Confusion;

/// One point of the ROC / DET curve: calling real every score `>= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f64,
    pub false_positive_rate: f64,
    pub false_negative_rate: f64,
}

/// The ROC curve at every distinct score, from the highest threshold (nothing called real)
/// down to the lowest (everything called real).
pub fn roc_curve(labels: &[u8], p_real: &[f64]) -> Vec<CurvePoint> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| p_real[b].total_cmp(&p_real[a]));
    let positives = labels.iter().filter(|&&l| l == 1).count().max(1) as f64;
    let negatives = labels.iter().filter(|&&l| l != 1).count().max(1) as f64;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = vec![CurvePoint {
        threshold: f64::INFINITY,
        false_positive_rate: 0.0,
        false_negative_rate: 1.0,
    }];
    let mut i = 0;
    while i < order.len() {
        let threshold = p_real[order[i]];
        // All candidates with the same score change side together.
        while i < order.len() && p_real[order[i]] == threshold {
            if labels[order[i]] == 1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        curve.push(CurvePoint {
            threshold,
            false_positive_rate: fp as f64 / negatives,
            false_negative_rate: 1.0 - tp as f64 / positives,
        });
    }
    curve
}

/// Area under the ROC curve (trapezoids over the exact curve, so ties count half).
pub fn roc_auc(curve: &[CurvePoint]) -> f64 {
    curve
        .windows(2)
        .map(|w| {
            let width = w[1].false_positive_rate - w[0].false_positive_rate;
            let height = (1.0 - w[0].false_negative_rate + 1.0 - w[1].false_negative_rate) / 2.0;
            width * height
        })
        .sum()
}

/// The operating point with the lowest FNR whose FPR does not exceed `max_fpr`.
pub fn at_false_positive_rate(curve: &[CurvePoint], max_fpr: f64) -> CurvePoint {
    *curve
        .iter()
        .take_while(|p| p.false_positive_rate <= max_fpr)
        .last()
        .expect("the curve starts at FPR 0")
}

/// The operating point where FPR and FNR are closest (the equal error rate).
pub fn equal_error_point(curve: &[CurvePoint]) -> CurvePoint {
    *curve
        .iter()
        .min_by(|a, b| {
            (a.false_positive_rate - a.false_negative_rate)
                .abs()
                .total_cmp(&(b.false_positive_rate - b.false_negative_rate).abs())
        })
        .expect("the curve is never empty")
}

/// Errors in one |SNR| bin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnrBin {
    /// e.g. "|SNR| < 7".
    pub bin: String,
    pub candidates: usize,
    pub real: usize,
    pub bogus: usize,
    pub error_rate: f64,
    pub false_negative_rate: f64,
    pub false_positive_rate: f64,
}

/// The |SNR| bin edges used by Deep-HiTS: < 7, 7–15, ≥ 15.
pub const SNR_EDGES: [f64; 2] = [7.0, 15.0];

pub fn snr_bins(scores: &Scores, snr: &[f64], threshold: f64) -> Vec<SnrBin> {
    let names = [
        format!("|SNR| < {}", SNR_EDGES[0]),
        format!("{} <= |SNR| < {}", SNR_EDGES[0], SNR_EDGES[1]),
        format!("|SNR| >= {}", SNR_EDGES[1]),
    ];
    names
        .into_iter()
        .enumerate()
        .map(|(bin, name)| {
            let (labels, p_real): (Vec<u8>, Vec<f64>) = scores
                .labels
                .iter()
                .zip(&scores.p_real)
                .zip(snr)
                .filter(|&(_, s)| SNR_EDGES.iter().filter(|&&edge| s.abs() >= edge).count() == bin)
                .map(|((&l, &p), _)| (l, p))
                .unzip();
            let confusion = Confusion::at(&labels, &p_real, threshold);
            SnrBin {
                bin: name,
                candidates: confusion.total(),
                real: confusion.true_positive + confusion.false_negative,
                bogus: confusion.true_negative + confusion.false_positive,
                error_rate: 1.0 - confusion.accuracy(),
                false_negative_rate: confusion.false_negative_rate(),
                false_positive_rate: confusion.false_positive_rate(),
            }
        })
        .collect()
}

/// How the candidates of one kind (a split's `truth.csv` names each candidate's kind) were
/// called at the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRow {
    pub kind: String,
    pub label: u8,
    pub candidates: usize,
    pub called_real: usize,
    /// The recall of a real kind, the false-positive rate of a bogus one.
    pub fraction_called_real: f64,
}

/// One row per kind, real kinds first, each group by name.
pub fn by_kind(scores: &Scores, kinds: &[String], threshold: f64) -> Vec<KindRow> {
    let mut rows: std::collections::BTreeMap<(std::cmp::Reverse<u8>, &str), (usize, usize)> =
        std::collections::BTreeMap::new();
    for ((&label, &p), kind) in scores.labels.iter().zip(&scores.p_real).zip(kinds) {
        let row = rows
            .entry((std::cmp::Reverse(label), kind.as_str()))
            .or_default();
        row.0 += 1;
        row.1 += usize::from(p >= threshold);
    }
    rows.into_iter()
        .map(|((label, kind), (candidates, called_real))| KindRow {
            kind: kind.to_string(),
            label: label.0,
            candidates,
            called_real,
            fraction_called_real: called_real as f64 / candidates as f64,
        })
        .collect()
}

/// Everything `metrics.json` reports about one set of scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub candidates: usize,
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub mcc: f64,
    pub confusion: Confusion,
    pub roc_auc: f64,
    pub fnr_at_fpr_1e_3: f64,
    pub fnr_at_fpr_1e_2: f64,
    pub equal_error_rate: f64,
    pub snr_bins: Option<Vec<SnrBin>>,
    /// By kind of candidate, where the split's `truth.csv` names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<KindRow>>,
    /// ECE, Brier score and reliability curve of the scores (after temperature scaling,
    /// where the pipeline asks for it).
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// The same before temperature scaling, where it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_before_scaling: Option<Calibration>,
}

impl Report {
    pub fn new(scores: &Scores, threshold: f64) -> Self {
        let confusion = Confusion::at(&scores.labels, &scores.p_real, threshold);
        let curve = roc_curve(&scores.labels, &scores.p_real);
        let eer = equal_error_point(&curve);
        Report {
            candidates: scores.labels.len(),
            threshold,
            accuracy: confusion.accuracy(),
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            mcc: confusion.mcc(),
            confusion,
            roc_auc: roc_auc(&curve),
            fnr_at_fpr_1e_3: at_false_positive_rate(&curve, 1e-3).false_negative_rate,
            fnr_at_fpr_1e_2: at_false_positive_rate(&curve, 1e-2).false_negative_rate,
            equal_error_rate: (eer.false_positive_rate + eer.false_negative_rate) / 2.0,
            snr_bins: scores
                .snr
                .as_ref()
                .map(|snr| snr_bins(scores, snr, threshold)),
            kinds: None,
            calibration: Some(Calibration::of(&scores.labels, &scores.p_real)),
            calibration_before_scaling: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_and_derived_metrics_by_hand() {
        let labels = [1, 1, 1, 0, 0, 0, 0, 1];
        let p = [0.9, 0.6, 0.4, 0.2, 0.7, 0.1, 0.5, 0.5];
        let c = Confusion::at(&labels, &p, 0.5);
        assert_eq!(
            (
                c.true_positive,
                c.false_negative,
                c.false_positive,
                c.true_negative
            ),
            (3, 1, 2, 2)
        );
        assert_eq!(c.accuracy(), 5.0 / 8.0);
        assert_eq!(c.precision(), 3.0 / 5.0);
        assert_eq!(c.recall(), 3.0 / 4.0);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.mcc() - (6.0 - 2.0) / (5.0f64 * 4.0 * 4.0 * 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // One positive and one negative with equal scores: AUC 0.5; a perfect ranking: 1.
        assert_eq!(roc_auc(&roc_curve(&[1, 0], &[0.3, 0.3])), 0.5);
        assert_eq!(
            roc_auc(&roc_curve(&[1, 0, 1, 0], &[0.9, 0.1, 0.8, 0.2])),
            1.0
        );
        // Pairs (pos, neg): (0.8,0.7) ok, (0.8,0.9) no, (0.4,0.7) no, (0.4,0.9) no -> 1/4.
        assert_eq!(
            roc_auc(&roc_curve(&[1, 0, 1, 0], &[0.8, 0.7, 0.4, 0.9])),
            0.25
        );
    }

    #[test]
    fn operating_point_respects_the_fpr_limit() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1];
        let p = [0.95, 0.3, 0.2, 0.1, 0.9, 0.8, 0.7, 0.05];
        let curve = roc_curve(&labels, &p);
        let strict = at_false_positive_rate(&curve, 0.0);
        assert_eq!(
            (strict.false_positive_rate, strict.false_negative_rate),
            (0.0, 1.0)
        );
        let loose = at_false_positive_rate(&curve, 0.25);
        assert_eq!(
            (loose.false_positive_rate, loose.false_negative_rate),
            (0.25, 0.25)
        );
    }

    #[test]
    fn kinds_are_counted_at_the_threshold_real_first() {
        let scores = Scores {
            labels: vec![0, 1, 1, 0, 1],
            p_real: vec![0.7, 0.9, 0.2, 0.1, 0.6],
            snr: None,
        };
        let kinds: Vec<String> = ["star", "sn", "sn", "star", "injected"]
            .map(String::from)
            .to_vec();
        let rows = by_kind(&scores, &kinds, 0.5);
        let summary: Vec<(&str, u8, usize, usize)> = rows
            .iter()
            .map(|r| (r.kind.as_str(), r.label, r.candidates, r.called_real))
            .collect();
        assert_eq!(
            summary,
            [("injected", 1, 1, 1), ("sn", 1, 2, 1), ("star", 0, 2, 1)]
        );
        assert_eq!(rows[1].fraction_called_real, 0.5);
    }

    #[test]
    fn snr_bins_split_by_absolute_snr() {
        let scores = Scores {
            labels: vec![1, 0, 1, 0],
            p_real: vec![0.9, 0.8, 0.2, 0.1],
            snr: None,
        };
        let bins = snr_bins(&scores, &[5.0, -8.0, 20.0, -15.0], 0.5);
        assert_eq!(
            bins.iter().map(|b| b.candidates).collect::<Vec<_>>(),
            [1, 1, 2]
        );
        assert_eq!(bins[1].false_positive_rate, 1.0);
        assert_eq!(bins[2].false_negative_rate, 1.0);
        assert_eq!(bins[2].error_rate, 0.5);
    }
}
