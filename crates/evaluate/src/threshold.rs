//! Choosing the P(real) threshold `submit` applies, and `threshold.json`, which ties it to the
//! model it was chosen for. The trained `model.json` is never rewritten (the train manifest
//! hashes it); `submit` reads the threshold from here instead.

use std::path::{Path, PathBuf};

use hits_core::config::ThresholdRule;
use hits_core::io::{hash_file, read_json, write_json_atomic};
use model::metadata::{METADATA_FILE, RECORD_FILE};
use serde::{Deserialize, Serialize};

use crate::EvaluateError;
use crate::calibration::apply_temperature;
use crate::metrics::{CurvePoint, at_false_positive_rate, equal_error_point, roc_curve};

pub const THRESHOLD_FILE: &str = "threshold.json";

/// The threshold `evaluate` chose, how, and for which model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdChoice {
    /// A candidate is called real when `p_real >= threshold`.
    pub threshold: f64,
    pub rule: ThresholdRule,
    /// The candidates it was chosen on, e.g. "validation ids of split train (1342 candidates)".
    pub chosen_on: String,
    /// Rates at the threshold on those candidates.
    pub false_positive_rate: f64,
    pub false_negative_rate: f64,
    /// BLAKE3 of the `model.json` and `model.mpk` it was chosen for.
    pub model_json_blake3: String,
    pub model_mpk_blake3: String,
    /// Temperature fitted on the same candidates (`[evaluate] calibration = "temperature"`):
    /// P(real) is calibrated with it before the threshold applies.
    #[serde(default)]
    pub temperature: Option<f64>,
}

/// BLAKE3 of `<model_dir>/model.json` and `<model_dir>/model.mpk`.
fn model_hashes(model_dir: &Path) -> Result<(String, String), EvaluateError> {
    Ok((
        hash_file(&model_dir.join(METADATA_FILE))?,
        hash_file(&model_dir.join(RECORD_FILE))?,
    ))
}

/// `p_real` through `temperature`, or unchanged without one.
pub fn calibrated(p_real: &[f64], temperature: Option<f64>) -> Vec<f64> {
    match temperature {
        Some(t) => p_real.iter().map(|&p| apply_temperature(p, t)).collect(),
        None => p_real.to_vec(),
    }
}

/// The threshold `rule` picks for these validation scores.
pub fn choose(rule: ThresholdRule, labels: &[u8], p_real: &[f64]) -> f64 {
    let curve = roc_curve(labels, p_real);
    let point: CurvePoint = match rule {
        ThresholdRule::Fixed { value } => return value,
        ThresholdRule::TargetFpr { fpr } => at_false_positive_rate(&curve, fpr),
        ThresholdRule::EqualErrorRate => equal_error_point(&curve),
    };
    if point.threshold.is_finite() {
        point.threshold
    } else {
        // "Nothing is real" (even the top score is bogus): just above the highest score, so the
        // threshold stays a number in JSON.
        p_real.iter().copied().fold(0.0, f64::max).next_up()
    }
}

impl ThresholdChoice {
    /// Record `threshold` as chosen for the model saved in `model_dir`.
    pub fn new(
        threshold: f64,
        rule: ThresholdRule,
        chosen_on: String,
        at: (f64, f64),
        temperature: Option<f64>,
        model_dir: &Path,
    ) -> Result<Self, EvaluateError> {
        let (model_json_blake3, model_mpk_blake3) = model_hashes(model_dir)?;
        Ok(ThresholdChoice {
            threshold,
            rule,
            chosen_on,
            false_positive_rate: at.0,
            false_negative_rate: at.1,
            model_json_blake3,
            model_mpk_blake3,
            temperature,
        })
    }

    /// The model's P(real) as this choice reads it: through its temperature, if it has one.
    pub fn calibrated(&self, p_real: &[f64]) -> Vec<f64> {
        calibrated(p_real, self.temperature)
    }

    pub fn write(&self, dir: &Path) -> Result<PathBuf, EvaluateError> {
        let path = dir.join(THRESHOLD_FILE);
        write_json_atomic(&path, self)?;
        Ok(path)
    }

    /// Read `<dir>/threshold.json` and refuse it unless it was chosen for the model now in
    /// `model_dir` (a retrained model needs its own threshold).
    pub fn read_for_model(dir: &Path, model_dir: &Path) -> Result<Self, EvaluateError> {
        let path = dir.join(THRESHOLD_FILE);
        if !path.exists() {
            return Err(EvaluateError::mismatch(
                &path,
                "missing: run `just evaluate` first (it chooses the threshold)",
            ));
        }
        let choice: ThresholdChoice = read_json(&path)?;
        let (json, mpk) = model_hashes(model_dir)?;
        for (name, recorded, now) in [
            (METADATA_FILE, &choice.model_json_blake3, json),
            (RECORD_FILE, &choice.model_mpk_blake3, mpk),
        ] {
            if *recorded != now {
                return Err(EvaluateError::mismatch(
                    &path,
                    format!(
                        "chosen for another model ({} changed since evaluate ran): re-run `just evaluate`",
                        model_dir.join(name).display()
                    ),
                ));
            }
        }
        Ok(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bogus scores 0.05..0.95 step 0.1 (10), real scores 0.5..0.95 step 0.05 (10).
    fn scores() -> (Vec<u8>, Vec<f64>) {
        let bogus = (0..10).map(|i| 0.05 + 0.1 * i as f64);
        let real = (0..10).map(|i| 0.51 + 0.05 * i as f64);
        let labels = [0u8; 10].into_iter().chain([1; 10]).collect();
        (labels, bogus.chain(real).collect())
    }

    #[test]
    fn each_rule_picks_its_threshold() {
        let (labels, p) = scores();
        let fixed = ThresholdRule::Fixed { value: 0.3 };
        assert_eq!(choose(fixed, &labels, &p), 0.3);
        // FPR <= 0.1 allows one bogus above the threshold (0.95): the lowest such threshold
        // is the smallest score above the second-highest bogus score 0.85.
        let t = choose(ThresholdRule::TargetFpr { fpr: 0.1 }, &labels, &p);
        assert!((t - 0.86).abs() < 1e-12, "{t}");
        // No bogus may pass: just above 0.95, the highest bogus score (a real one is 0.96).
        let t = choose(ThresholdRule::TargetFpr { fpr: 0.01 }, &labels, &p);
        assert!((t - 0.96).abs() < 1e-12, "{t}");
        let t = choose(ThresholdRule::EqualErrorRate, &labels, &p);
        let c = crate::Confusion::at(&labels, &p, t);
        assert_eq!(
            c.false_positive_rate(),
            c.false_negative_rate(),
            "at {t}: {c:?}"
        );
        assert!((t - 0.66).abs() < 1e-12, "{t}");
    }

    #[test]
    fn nothing_real_gives_a_threshold_above_every_score() {
        let t = choose(ThresholdRule::TargetFpr { fpr: 0.01 }, &[0, 1], &[1.0, 0.2]);
        assert!(t > 1.0 && t.is_finite());
    }

    #[test]
    fn threshold_of_another_model_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (model_dir, eval_dir) = (root.path().join("train"), root.path().join("evaluate"));
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(model_dir.join(METADATA_FILE), "{}").unwrap();
        std::fs::write(model_dir.join(RECORD_FILE), "weights").unwrap();
        let rule = ThresholdRule::EqualErrorRate;
        let choice =
            ThresholdChoice::new(0.4, rule, "test".into(), (0.1, 0.1), Some(2.0), &model_dir)
                .unwrap();
        choice.write(&eval_dir).unwrap();
        let read = ThresholdChoice::read_for_model(&eval_dir, &model_dir).unwrap();
        assert_eq!(read, choice);
        // The temperature travels with the threshold: log-odds halved.
        let p = read.calibrated(&[0.9, 0.5]);
        assert!(
            (p[0] - 0.75).abs() < 1e-9 && (p[1] - 0.5).abs() < 1e-12,
            "{p:?}"
        );

        std::fs::write(model_dir.join(RECORD_FILE), "retrained").unwrap();
        let err = ThresholdChoice::read_for_model(&eval_dir, &model_dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("threshold.json") && err.contains("model.mpk changed since evaluate ran"),
            "{err}"
        );
        let err = ThresholdChoice::read_for_model(&root.path().join("none"), &model_dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing: run `just evaluate` first"), "{err}");
    }
}
