//! The evaluation code reproduces Deep-HiTS' published test-set figures from its released
//! predictions (Cabrera-Vives et al. 2017): CNN accuracy 0.99469 and ROC AUC 0.99967,
//! random forest 0.98961 and 0.99914.

use std::path::PathBuf;

use evaluate::{Report, read_scores};

/// `../shared/deephits` beside the repository (CI lays it there), or `HITS_DEEPHITS_DIR`.
fn deephits(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HITS_DEEPHITS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/deephits")
        });
    let path = dir.join(file);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} not found (set HITS_DEEPHITS_DIR)",
            path.display()
        );
        None
    }
}

fn assert_close(name: &str, got: f64, published: f64) {
    assert!(
        (got - published).abs() < 5e-5,
        "{name}: computed {got:.6}, published {published}"
    );
}

#[test]
fn cnn_arch7_matches_the_paper() {
    let Some(path) = deephits("test_predictions_cnn_arch7.csv") else {
        return;
    };
    let scores = read_scores(&path).unwrap();
    assert_eq!(scores.labels.len(), 100_000);
    let report = Report::new(&scores, 0.5);
    assert_close("accuracy", report.accuracy, 0.99469);
    assert_close("roc_auc", report.roc_auc, 0.99967);
    let c = report.confusion;
    assert_eq!(c.true_positive + c.false_negative, 50_000);
    assert_eq!(c.false_positive + c.false_negative, 531);
    let bins = report.snr_bins.unwrap();
    assert_eq!(bins.iter().map(|b| b.candidates).sum::<usize>(), 100_000);
    // Errors concentrate at low SNR.
    assert!(bins[0].error_rate > bins[2].error_rate);
}

#[test]
fn random_forest_matches_the_paper() {
    let Some(path) = deephits("test_predictions_random_forest.csv") else {
        return;
    };
    let report = Report::new(&read_scores(&path).unwrap(), 0.5);
    assert_close("accuracy", report.accuracy, 0.98961);
    assert_close("roc_auc", report.roc_auc, 0.99914);
}
