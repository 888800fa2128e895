//! Stage 4, `evaluate`: the metrics survey teams use to judge a real/bogus classifier —
//! accuracy, precision, recall, F1, MCC and the confusion matrix at a threshold; ROC AUC;
//! FNR at FPR 1e-3 and 1e-2 (points of the DET curve); the equal error rate; and errors per
//! |SNR| bin (< 7, 7–15, ≥ 15, as Deep-HiTS).
//!
//! `evaluate --scores FILE.csv` scores external predictions (`label,p_real[,snr]`); the tests
//! reproduce Deep-HiTS' published test-set figures from its released predictions.

mod error;
pub mod metrics;
mod scores;

use std::path::Path;

pub use error::EvaluateError;
pub use metrics::{Confusion, Report, Scores};
pub use scores::read_scores;

pub const STAGE: &str = "evaluate";

/// Score a predictions file and write `<out_dir>/metrics.json`.
pub fn evaluate_scores_file(
    path: &Path,
    threshold: f64,
    out_dir: &Path,
) -> Result<Report, EvaluateError> {
    let scores = read_scores(path)?;
    let report = Report::new(&scores, threshold);
    hits_core::io::write_json_atomic(&out_dir.join("metrics.json"), &report)?;
    Ok(report)
}
