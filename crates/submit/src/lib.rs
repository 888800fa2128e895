//! Stage 5, `submit`: predict a split (default `test`) with the trained model at the
//! threshold `evaluate` chose, and write `<artifacts>/submit/`: `submission.csv` (`id,label`,
//! 1 = real), `predictions.csv` (`id,p_real,label`) and `model.json`, the model metadata
//! actually used with its `threshold` filled in. [`score`] compares a submission with an
//! answer key (`id,label`) as the course assistant scored the reference; [`summary`] is the
//! closing summary of `just all`.

pub mod directory;
mod error;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use evaluate::Confusion;
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::io::{hash_file, read_json, write_bytes_atomic, write_json_atomic};
use hits_core::manifest::Manifest;
use hits_core::table::Table;
use serde::{Deserialize, Serialize};

pub use error::SubmitError;

pub const STAGE: Stage = Stage::Submit;
pub const SUBMISSION_FILE: &str = "submission.csv";
pub const PREDICTIONS_FILE: &str = "predictions.csv";
pub const SCORE_FILE: &str = "score.json";

/// The files [`run`] reads: what decides whether the submission is up to date.
pub fn input_files(pipeline: &Pipeline, split: &str) -> Vec<PathBuf> {
    let mut files = evaluate::model_files(pipeline);
    files.push(features::split_path(pipeline, split));
    files
}

/// What [`run`] wrote.
#[derive(Debug, Clone)]
pub struct Submission {
    pub candidates: usize,
    pub called_real: usize,
    pub threshold: f64,
    pub dir: PathBuf,
}

/// Predict `split` and write the submission.
pub fn run(pipeline: &Pipeline, split: &str) -> Result<Submission, SubmitError> {
    let train_dir = pipeline.stage_dir(Stage::Train);
    let choice = evaluate::verified_choice(pipeline)?;
    let set = features::open_split(pipeline, split)?;
    tracing::info!("split {split}: {} candidates", set.len());
    let (model_p_real, mut metadata) = evaluate::predict(&train_dir, &set)?;
    let p_real = choice.calibrated(&model_p_real);
    metadata.threshold = choice.threshold;
    metadata.temperature = choice.temperature;

    let mut submission = String::from("id,label\n");
    let mut predictions = String::from("id,p_real,label\n");
    let mut called_real = 0;
    for (id, &p) in set.ids.iter().zip(&p_real) {
        let label = u8::from(p >= choice.threshold);
        called_real += usize::from(label);
        let _ = writeln!(submission, "{id},{label}");
        let _ = writeln!(predictions, "{id},{p},{label}");
    }
    let dir = pipeline.stage_dir(STAGE);
    let submission_path = dir.join(SUBMISSION_FILE);
    let predictions_path = dir.join(PREDICTIONS_FILE);
    write_bytes_atomic(&submission_path, submission.as_bytes())?;
    write_bytes_atomic(&predictions_path, predictions.as_bytes())?;
    let metadata_path = metadata.write(&dir)?;
    let used = pipeline.write_used(&dir)?;
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    // The features file was hashed when it was read.
    let features_path = features::split_path(pipeline, split);
    manifest.add_inputs(
        &input_files(pipeline, split),
        &[set.digest(&features_path)?],
    )?;
    for path in [submission_path, predictions_path, metadata_path, used] {
        manifest.add_output(&path)?;
    }
    manifest.write(&dir, hits_core::stage::elapsed_seconds())?;
    Ok(Submission {
        candidates: set.len(),
        called_real,
        threshold: choice.threshold,
        dir,
    })
}

/// `score.json`: a submission compared with an answer key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub submission: PathBuf,
    pub submission_blake3: String,
    pub answers: PathBuf,
    pub answers_blake3: String,
    pub candidates: usize,
    pub accuracy: f64,
    /// F1 of the real class (label 1), as scikit-learn's `f1_score`.
    pub f1: f64,
    pub confusion: Confusion,
}

impl Score {
    /// "accuracy 0.988, F1 0.9879": rounded to 4 decimals and printed as Python prints a
    /// rounded float, as the course assistant reported the reference.
    pub fn headline(&self) -> String {
        format!(
            "accuracy {}, F1 {}",
            python_round4(self.accuracy),
            python_round4(self.f1)
        )
    }
}

fn python_round4(x: f64) -> String {
    let text = format!("{x:.4}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// `id,label` rows of `path`, refusing duplicate ids.
fn read_labels(path: &Path) -> Result<(Table, Vec<String>, Vec<u8>), SubmitError> {
    let table = Table::read(path)?;
    let ids = table.texts("id")?;
    let labels = table.labels("label")?;
    let mut seen = HashMap::new();
    for (row, id) in ids.iter().enumerate() {
        if let Some(first) = seen.insert(id.as_str(), row) {
            let message = format!("duplicate id {id} (first in row {})", first + 1);
            return Err(table.cell_error(row, "id", message).into());
        }
    }
    Ok((table, ids, labels))
}

/// Compare `submission` with the answer key `answers` (both `id,label`): every candidate must
/// be in both, once.
pub fn score(submission: &Path, answers: &Path) -> Result<Score, SubmitError> {
    let (_, ids, predicted) = read_labels(submission)?;
    let labels = answers_for(&ids, submission, answers)?;
    let predicted: Vec<f64> = predicted.iter().map(|&l| f64::from(l)).collect();
    let confusion = Confusion::at(&labels, &predicted, 0.5);
    Ok(Score {
        submission: submission.to_path_buf(),
        submission_blake3: hash_file(submission)?,
        answers: answers.to_path_buf(),
        answers_blake3: hash_file(answers)?,
        candidates: ids.len(),
        accuracy: confusion.accuracy(),
        f1: confusion.f1(),
        confusion,
    })
}

/// The true labels of the candidates `ids` (read from `source`) in the answer key `answers`
/// (`id,label`); every candidate must be in both, once.
pub fn answers_for(ids: &[String], source: &Path, answers: &Path) -> Result<Vec<u8>, SubmitError> {
    let (key, key_ids, truth) = read_labels(answers)?;
    let answer: HashMap<&str, u8> = key_ids.iter().map(String::as_str).zip(truth).collect();
    let mismatch = |message: String| SubmitError::Answers {
        path: answers.to_path_buf(),
        message,
    };
    let mut labels = Vec::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        let label = answer.get(id.as_str()).ok_or_else(|| {
            mismatch(format!(
                "no answer for candidate {id} (row {} of {})",
                row + 1,
                source.display()
            ))
        })?;
        labels.push(*label);
    }
    if key.len() > ids.len() {
        let submitted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let (row, extra) = key_ids
            .iter()
            .enumerate()
            .find(|(_, id)| !submitted.contains(id.as_str()))
            .expect("more answers than submitted ids, all distinct");
        return Err(mismatch(format!(
            "candidate {extra} (row {}) is missing from {} ({} answers, {} submitted)",
            row + 1,
            source.display(),
            key.len(),
            ids.len()
        )));
    }
    Ok(labels)
}

/// Score the pipeline's submission (checked against the submit manifest) or `submission`,
/// and write `<artifacts>/submit/score.json`.
pub fn score_pipeline(
    pipeline: &Pipeline,
    answers: &Path,
    submission: Option<&Path>,
) -> Result<Score, SubmitError> {
    let dir = pipeline.stage_dir(STAGE);
    let own = dir.join(SUBMISSION_FILE);
    let submission = match submission {
        Some(path) => path.to_path_buf(),
        None => {
            Manifest::read(&dir)?.verify_output(&own)?;
            own
        }
    };
    let result = score(&submission, answers)?;
    write_json_atomic(&dir.join(SCORE_FILE), &result)?;
    Ok(result)
}

/// The closing summary of `just all`: validation metrics, the test score, time per stage and
/// where the report and plots are.
/// `  ECE x (y before temperature scaling)`, where the report has it.
fn ece_text(m: &evaluate::Report) -> String {
    let Some(c) = &m.calibration else {
        return String::new();
    };
    match &m.calibration_before_scaling {
        Some(before) => format!("  ECE {:.4} ({:.4} unscaled)", c.ece, before.ece),
        None => format!("  ECE {:.4}", c.ece),
    }
}

pub fn summary(pipeline: &Pipeline) -> Result<String, SubmitError> {
    let evaluate_dir = pipeline.stage_dir(evaluate::STAGE);
    let metrics: evaluate::ModelMetrics = read_json(&evaluate_dir.join(evaluate::METRICS_FILE))?;
    let m = &metrics.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "pipeline '{}': summary", pipeline.name);
    let _ = writeln!(
        out,
        "  validation ({}, {} candidates, threshold {:.4}): accuracy {:.4}  F1 {:.4}  ROC AUC {:.4}  FNR@FPR=1e-2 {:.4}{}",
        metrics.evaluated,
        m.candidates,
        m.threshold,
        m.accuracy,
        m.f1,
        m.roc_auc,
        m.fnr_at_fpr_1e_2,
        ece_text(m)
    );
    for split in evaluate::other_labelled_splits(pipeline) {
        let path = evaluate::out_dir(pipeline, Some(&split)).join(evaluate::METRICS_FILE);
        let Ok(metrics) = read_json::<evaluate::ModelMetrics>(&path) else {
            let _ = writeln!(
                out,
                "  {split}: not evaluated (`just evaluate {} --labelled-splits`)",
                pipeline.name
            );
            continue;
        };
        let m = &metrics.metrics;
        let c = m.confusion;
        let bright = m
            .snr_bins
            .iter()
            .flatten()
            .last()
            .map(|b| format!("  recall at {} {:.4}", b.bin, 1.0 - b.false_negative_rate))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {split} ({} candidates: {} real, {} bogus): accuracy {:.4}  F1 {:.4}  ROC AUC {:.4}  recall {:.4}{bright}  FPR {:.4}{}",
            m.candidates,
            c.true_positive + c.false_negative,
            c.true_negative + c.false_positive,
            m.accuracy,
            m.f1,
            m.roc_auc,
            m.recall,
            c.false_positive_rate(),
            ece_text(m)
        );
        if let Some(kinds) = &m.kinds {
            let rows: Vec<String> = kinds
                .iter()
                .map(|k| {
                    format!(
                        "{} {:.3} of {}",
                        k.kind, k.fraction_called_real, k.candidates
                    )
                })
                .collect();
            let _ = writeln!(out, "    called real, by kind: {}", rows.join(", "));
        }
    }
    let submit_dir = pipeline.stage_dir(STAGE);
    let score_path = submit_dir.join(SCORE_FILE);
    if score_path.exists() {
        let score: Score = read_json(&score_path)?;
        let stale = hash_file(&score.submission).map_or(true, |h| h != score.submission_blake3);
        let _ = writeln!(
            out,
            "  test ({} candidates vs {}): {}{}",
            score.candidates,
            score.answers.display(),
            score.headline(),
            if stale {
                " (stale: the submission changed since, re-run `just score`)"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(out, "  test: not scored (`just score` with an answer key)");
    }
    // The simulator writes its manifest beside the data it makes, not under `artifacts/`.
    let stages = Stage::PIPELINE.map(|stage| match stage {
        Stage::Simulate => (stage, pipeline.simulate.out_dir.clone()),
        _ => (stage, pipeline.stage_dir(stage)),
    });
    let mut times = Vec::new();
    let mut total = 0.0;
    for (stage, dir) in stages {
        match Manifest::read(&dir) {
            // 0: written before manifests recorded their time.
            Ok(manifest) if manifest.seconds > 0.0 => {
                total += manifest.seconds;
                times.push(format!("{stage} {:.1} s", manifest.seconds));
            }
            Ok(_) => times.push(format!("{stage} (not timed)")),
            Err(_) => times.push(format!("{stage} -")),
        }
    }
    let _ = writeln!(
        out,
        "  time per stage: {} (total {total:.1} s)",
        times.join(", ")
    );
    let _ = writeln!(
        out,
        "  report: {}; plots: {}/*.png; submission: {}",
        evaluate_dir.join(evaluate::REPORT_FILE).display(),
        evaluate_dir.display(),
        submit_dir.join(SUBMISSION_FILE).display()
    );
    Ok(out)
}
