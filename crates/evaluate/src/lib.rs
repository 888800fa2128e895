//! Stage 4, `evaluate`: the metrics survey teams use to judge a real/bogus classifier —
//! accuracy, precision, recall, F1, MCC and the confusion matrix at a threshold; ROC AUC;
//! FNR at FPR 1e-3 and 1e-2 (points of the DET curve); the equal error rate; and errors per
//! |SNR| bin (< 7, 7–15, ≥ 15, as Deep-HiTS).
//!
//! [`run`] scores the trained model on the validation candidates `train` held out (ids in
//! `split.json`), chooses the threshold `[evaluate] threshold` asks for and records it in
//! `threshold.json` for `submit`; with a split name it scores that whole labelled split at the
//! chosen threshold. Outputs: `metrics.json`, `report.md`, `misclassified.csv` and PNGs.
//! `evaluate --scores FILE.csv` scores external predictions (`label,p_real[,snr]`); the tests
//! reproduce Deep-HiTS' published test-set figures from its released predictions.

pub mod calibration;
mod error;
pub mod explain;
pub mod figures;
pub mod metrics;
mod predict;
mod report;
mod scores;
pub mod threshold;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use features::StampSet;
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::config::{CalibrationMethod, ModelKind, TRUTH_FILE, ThresholdRule};
use hits_core::io::{write_bytes_atomic, write_json_atomic};
use hits_core::manifest::Manifest;
use model::metadata::{METADATA_FILE, RECORD_FILE};
use serde::{Deserialize, Serialize};

pub use error::EvaluateError;
pub use metrics::{Confusion, Report, Scores};
pub use predict::{predict, predict_with_progress};
pub use scores::read_scores;
pub use threshold::{THRESHOLD_FILE, ThresholdChoice};

pub const STAGE: Stage = Stage::Evaluate;
pub const METRICS_FILE: &str = "metrics.json";
pub const MISCLASSIFIED_FILE: &str = "misclassified.csv";
pub const REPORT_FILE: &str = "report.md";

/// The files that make a trained and evaluated model: `train`'s record and metadata, and the
/// threshold (and temperature) `evaluate` chose for it. What `submit` and `export` read.
pub fn model_files(pipeline: &Pipeline) -> Vec<PathBuf> {
    let train_dir = pipeline.stage_dir(train::STAGE);
    vec![
        train_dir.join(RECORD_FILE),
        train_dir.join(METADATA_FILE),
        pipeline.stage_dir(STAGE).join(THRESHOLD_FILE),
    ]
}

/// The threshold choice for the model now in `artifacts/train/`, after checking that
/// [`model_files`] are intact (against their stages' manifests) and that the choice was made
/// for this model.
pub fn verified_choice(pipeline: &Pipeline) -> Result<ThresholdChoice, EvaluateError> {
    let train_dir = pipeline.stage_dir(train::STAGE);
    let evaluate_dir = pipeline.stage_dir(STAGE);
    let train_manifest = Manifest::read(&train_dir)?;
    for name in [RECORD_FILE, METADATA_FILE] {
        train_manifest.verify_output(&train_dir.join(name))?;
    }
    Manifest::read(&evaluate_dir)?.verify_output(&evaluate_dir.join(THRESHOLD_FILE))?;
    ThresholdChoice::read_for_model(&evaluate_dir, &train_dir)
}

/// `metrics.json` of a model evaluation: the [`Report`] at the chosen threshold, and what
/// was evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// e.g. "validation ids of split train" or "split night-42".
    pub evaluated: String,
    pub model: ModelKind,
    pub parameters: usize,
    pub threshold_rule: ThresholdRule,
    #[serde(flatten)]
    pub metrics: Report,
}

/// Score a predictions file and write `<out_dir>/metrics.json` and its plots.
pub fn evaluate_scores_file(
    path: &Path,
    threshold: f64,
    out_dir: &Path,
) -> Result<Report, EvaluateError> {
    let scores = read_scores(path)?;
    let report = Report::new(&scores, threshold);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    figures::score_plots(out_dir, &name, &scores, &report)?;
    write_json_atomic(&out_dir.join(METRICS_FILE), &report)?;
    Ok(report)
}

/// Where [`run`] writes: `<artifacts>/evaluate/`, or `<artifacts>/evaluate/<split>/`.
pub fn out_dir(pipeline: &Pipeline, split: Option<&str>) -> PathBuf {
    let dir = pipeline.stage_dir(STAGE);
    match split {
        None => dir,
        Some(split) => dir.join(split),
    }
}

/// The files [`run`] reads: what decides whether an evaluation is up to date.
pub fn input_files(pipeline: &Pipeline, split: Option<&str>) -> Vec<PathBuf> {
    let train_dir = pipeline.stage_dir(train::STAGE);
    let mut files = vec![train_dir.join(RECORD_FILE), train_dir.join(METADATA_FILE)];
    match split {
        None => {
            files.push(train_dir.join(train::split::SPLIT_FILE));
            files.extend(train::CURVE_PNGS.map(|name| train_dir.join(name)));
            files.push(train::features_path(pipeline));
        }
        Some(split) => {
            files.push(features::split_path(pipeline, split));
            files.push(pipeline.stage_dir(STAGE).join(THRESHOLD_FILE));
        }
    }
    // The kinds of candidates, where the simulator wrote them.
    let split = split.unwrap_or(&pipeline.train.split);
    if let Ok(truth) = truth_path(pipeline, split)
        && truth.exists()
    {
        files.push(truth);
    }
    files
}

/// The labelled splits besides the one `train` learns from (e.g. the held-out real-pixel
/// split), which `evaluate --labelled-splits` scores one by one.
pub fn other_labelled_splits(pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .data
        .splits
        .iter()
        .filter(|(name, split)| split.labelled && **name != pipeline.train.split)
        .map(|(name, _)| name.clone())
        .collect()
}

/// Evaluate the trained model on the validation candidates (`split` = None; chooses and
/// records the threshold) or on the whole labelled `split` (at the threshold chosen before).
pub fn run(pipeline: &Pipeline, split: Option<&str>) -> Result<ModelMetrics, EvaluateError> {
    let train_dir = pipeline.stage_dir(train::STAGE);
    let train_manifest = Manifest::read(&train_dir)?;
    for path in input_files(pipeline, split) {
        if path.starts_with(&train_dir) {
            train_manifest.verify_output(&path)?;
        }
    }
    let (set, features_path, evaluated) = match split {
        None => (
            validation_set(pipeline, &train_dir)?,
            train::features_path(pipeline),
            format!("validation ids of split {}", pipeline.train.split),
        ),
        Some(split) => (
            features::open_split(pipeline, split)?,
            features::split_path(pipeline, split),
            format!("split {split}"),
        ),
    };
    let labels = labels_of(&set, &features_path)?;
    tracing::info!("{evaluated}: {} candidates", set.len());
    let (model_p_real, metadata) = predict(&train_dir, &set)?;

    let stage_dir = pipeline.stage_dir(STAGE);
    let choice = match split {
        None => {
            let temperature = match pipeline.evaluate.calibration {
                CalibrationMethod::None => None,
                CalibrationMethod::Temperature => {
                    Some(calibration::fit_temperature(&labels, &model_p_real))
                }
            };
            let p_real = threshold::calibrated(&model_p_real, temperature);
            let rule = pipeline.evaluate.threshold;
            let threshold = threshold::choose(rule, &labels, &p_real);
            let at = Confusion::at(&labels, &p_real, threshold);
            let chosen_on = format!("{evaluated} ({} candidates)", set.len());
            let rates = (at.false_positive_rate(), at.false_negative_rate());
            ThresholdChoice::new(threshold, rule, chosen_on, rates, temperature, &train_dir)?
        }
        Some(_) => {
            Manifest::read(&stage_dir)?.verify_output(&stage_dir.join(THRESHOLD_FILE))?;
            ThresholdChoice::read_for_model(&stage_dir, &train_dir)?
        }
    };
    let scores = Scores {
        p_real: choice.calibrated(&model_p_real),
        labels,
        snr: Some(set.centre_snr.iter().map(|&s| f64::from(s)).collect()),
    };
    let mut metrics = Report::new(&scores, choice.threshold);
    if choice.temperature.is_some() {
        metrics.calibration_before_scaling =
            Some(calibration::Calibration::of(&scores.labels, &model_p_real));
    }
    let truth = truth_path(pipeline, split.unwrap_or(&pipeline.train.split))?;
    if let Some(kinds) = kinds_of(&truth, &set.ids)? {
        metrics.kinds = Some(metrics::by_kind(&scores, &kinds, choice.threshold));
    }
    let result = ModelMetrics {
        evaluated,
        model: metadata.config.kind(),
        parameters: metadata.parameters,
        threshold_rule: choice.rule,
        metrics,
    };

    let dir = out_dir(pipeline, split);
    let mut outputs = figures::score_plots(&dir, &result.evaluated, &scores, &result.metrics)?;
    let worst = figures::misclassified(&scores.labels, &scores.p_real, choice.threshold);
    let gallery = dir.join(figures::GALLERY_PNG);
    let shown: Vec<usize> = worst.iter().copied().take(figures::GALLERY_SIZE).collect();
    let maps = explain::occlusion_maps(&train_dir, &set, &shown)?;
    figures::gallery(
        &gallery,
        &set,
        &scores.labels,
        &scores.p_real,
        &shown,
        worst.len(),
        &maps,
    )?;
    outputs.push(gallery);
    if split.is_none() {
        outputs.push(choice.write(&dir)?);
        for name in train::CURVE_PNGS {
            let from = train_dir.join(name);
            let bytes = std::fs::read(&from).map_err(|e| hits_core::CoreError::io(&from, e))?;
            write_bytes_atomic(&dir.join(name), &bytes)?;
            outputs.push(dir.join(name));
        }
    }
    let misclassified_path = dir.join(MISCLASSIFIED_FILE);
    write_bytes_atomic(
        &misclassified_path,
        misclassified_csv(&set, &scores, &worst).as_bytes(),
    )?;
    let metrics_path = dir.join(METRICS_FILE);
    write_json_atomic(&metrics_path, &result)?;
    let report_path = dir.join(REPORT_FILE);
    let markdown = report::markdown(&result, &choice, &set, &scores, &worst, split.is_none());
    write_bytes_atomic(&report_path, markdown.as_bytes())?;
    outputs.extend([misclassified_path, metrics_path, report_path]);
    outputs.push(pipeline.write_used(&dir)?);

    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    // The features file was hashed when it was read.
    manifest.add_inputs(
        &input_files(pipeline, split),
        &[set.digest(&features_path)?],
    )?;
    for path in &outputs {
        manifest.add_output(path)?;
    }
    manifest.write(&dir, hits_core::stage::elapsed_seconds())?;
    Ok(result)
}

/// `truth.csv` beside the split's CSVs: the simulator writes it, with each candidate's kind.
fn truth_path(pipeline: &Pipeline, split: &str) -> Result<PathBuf, EvaluateError> {
    Ok(pipeline.split(split)?.dir.join(TRUTH_FILE))
}

/// The kind of every candidate of `ids`, if `path` exists and names them all (a truth file
/// of other candidates is ignored with a warning: the split's CSVs were replaced).
fn kinds_of(path: &Path, ids: &[String]) -> Result<Option<Vec<String>>, EvaluateError> {
    if !path.exists() {
        return Ok(None);
    }
    let table = hits_core::table::Table::read(path)?;
    let kind_of: std::collections::HashMap<String, String> = table
        .texts("id")?
        .into_iter()
        .zip(table.texts("kind")?)
        .collect();
    let kinds: Option<Vec<String>> = ids.iter().map(|id| kind_of.get(id).cloned()).collect();
    if kinds.is_none() {
        tracing::warn!(path = %path.display(), "does not name every evaluated candidate; no per-kind figures");
    }
    Ok(kinds)
}

/// The validation candidates `train` held out, checked against the features they index.
fn validation_set(pipeline: &Pipeline, train_dir: &Path) -> Result<StampSet, EvaluateError> {
    let set = features::open_split(pipeline, &pipeline.train.split)?;
    let split = train::ValidationSplit::read(train_dir)?;
    let split_path = train_dir.join(train::split::SPLIT_FILE);
    if split.features_hash != set.file_hash {
        return Err(EvaluateError::mismatch(
            &split_path,
            "indexes another features file than the current one: re-run `just train`",
        ));
    }
    for (&row, id) in split.validation_rows.iter().zip(&split.validation_ids) {
        if set.ids.get(row) != Some(id) {
            return Err(EvaluateError::mismatch(
                &split_path,
                format!("validation row {row} should be candidate {id}: re-run `just train`"),
            ));
        }
    }
    Ok(set.select(&split.validation_rows))
}

/// Every label of `set`, refusing unlabelled candidates.
fn labels_of(set: &StampSet, path: &Path) -> Result<Vec<u8>, EvaluateError> {
    set.labels
        .iter()
        .zip(&set.ids)
        .map(|(label, id)| {
            label.ok_or_else(|| {
                EvaluateError::mismatch(
                    path,
                    format!("candidate {id} has no label: evaluate needs a labelled split (`submit` predicts unlabelled ones)"),
                )
            })
        })
        .collect()
}

/// `id,label,p_real,centre_snr` of the misclassified candidates, the most confident first.
fn misclassified_csv(set: &StampSet, scores: &Scores, worst: &[usize]) -> String {
    let mut csv = String::from("id,label,p_real,centre_snr\n");
    for &i in worst {
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            set.ids[i], scores.labels[i], scores.p_real[i], set.centre_snr[i]
        );
    }
    csv
}
