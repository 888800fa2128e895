//! Stage 6, `export`: the pipeline's trained model as `artifacts/export/model.onnx`, which
//! any ONNX runtime (onnxruntime from Python, tract from Rust, the runtimes inside alert
//! brokers) runs on raw stamps: the features' normalisation and `evaluate`'s temperature are
//! inside the graph, the threshold in its metadata ([`onnx`] has the graph).
//!
//! Before the file is put in place, tract runs it on every candidate of a split (the test
//! split unless told otherwise) and the stage refuses a graph whose P(real) differs from the
//! project's own inference by more than [`check::TOLERANCE`].
//!
//! Outputs in `artifacts/export/`: `model.onnx`, `export.json` (what the graph takes and
//! returns, the threshold, the check), `pipeline.toml`, `manifest.json`.

pub mod check;
pub mod error;
pub mod onnx;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use evaluate::ThresholdChoice;
use features::NormalisationSpec;
use hits_core::Stage;
use hits_core::config::ModelKind;
use hits_core::io::{write_bytes_atomic, write_json_atomic};
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline};
use model::backend::Cpu;
use model::metadata::METADATA_FILE;
use model::{Classifier, ModelMetadata};
use serde::Serialize;

pub use error::ExportError;

use crate::check::{Comparison, OnnxRunner, TOLERANCE};
use crate::onnx::GraphSpec;

pub const STAGE: Stage = Stage::Export;
pub const ONNX_FILE: &str = "model.onnx";
pub const SUMMARY_FILE: &str = "export.json";
/// `id,p_real` of the check split by the project's own inference: what any runtime running
/// `model.onnx` on that split's CSVs must reproduce (`just export-check`).
pub const CHECK_FILE: &str = "check.csv";

/// The files [`run`] reads: what decides whether the export is up to date.
pub fn input_files(pipeline: &Pipeline, split: &str) -> Vec<PathBuf> {
    let mut files = evaluate::model_files(pipeline);
    files.push(ingest::split_path(pipeline, split));
    files
}

/// `export.json`: what was exported and how well the graph agrees with the model.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub onnx: PathBuf,
    pub bytes: usize,
    pub model_kind: ModelKind,
    pub parameters: usize,
    pub opset: i64,
    pub input: Port,
    pub output: Port,
    /// Applied inside the graph to the raw stamps.
    pub normalisation: NormalisationSpec,
    /// Applied inside the graph to the log-odds; null without calibration.
    pub temperature: Option<f64>,
    /// Call a candidate real when `p_real >= threshold` (also in the model's metadata).
    pub threshold: f64,
    pub check: CheckSummary,
}

/// A graph input or output.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    pub name: String,
    pub doc: String,
}

/// The graph run by tract against the project's own inference.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub runtime: String,
    pub split: String,
    /// The split's CSV directory, as the pipeline names it.
    pub input: PathBuf,
    /// [`CHECK_FILE`].
    pub predictions: PathBuf,
    pub candidates: usize,
    pub max_abs_difference: f64,
    pub tolerance: f64,
}

/// Export the pipeline's trained model, checked on `split`.
pub fn run(pipeline: &Pipeline, split: &str) -> Result<ExportSummary, ExportError> {
    let train_dir = pipeline.stage_dir(Stage::Train);
    let choice = evaluate::verified_choice(pipeline)?;
    let metadata = ModelMetadata::read(&train_dir)?;
    let model = model::metadata::load_record::<Cpu>(&train_dir, &metadata, &Default::default())?;
    let normalisation: NormalisationSpec =
        serde_json::from_value(metadata.input.normalisation.clone()).map_err(|e| {
            ExportError::Unsupported(format!(
                "{}: normalisation {} is not one this version knows: {e}",
                train_dir.join(METADATA_FILE).display(),
                metadata.input.normalisation
            ))
        })?;

    let spec = GraphSpec {
        normalisation,
        temperature: choice.temperature,
        metadata: metadata_props(&metadata, &choice),
    };
    let bytes = onnx::encode(&model, &spec)?;

    let dir = pipeline.stage_dir(STAGE);
    let onnx_path = dir.join(ONNX_FILE);
    let raw_path = ingest::split_path(pipeline, split);
    // As `features` does: refuse an ingest file changed since ingest wrote it.
    Manifest::read(&pipeline.stage_dir(ingest::STAGE))?.verify_output(&raw_path)?;
    let (ids, raw) = features::read_ingest_stamps(&raw_path)?;
    let (max_abs_difference, ours) =
        check_graph(&onnx_path, &bytes, &model, &spec, split, &ids, &raw)?;
    let check_path = dir.join(CHECK_FILE);
    let mut check_csv = String::from("id,p_real\n");
    for (id, p) in ids.iter().zip(&ours) {
        let _ = writeln!(check_csv, "{id},{p}");
    }
    let check = CheckSummary {
        runtime: check::RUNTIME.into(),
        split: split.into(),
        input: pipeline
            .data
            .splits
            .get(split)
            .map(|s| s.dir.clone())
            .unwrap_or_default(),
        predictions: check_path.clone(),
        candidates: ids.len(),
        max_abs_difference,
        tolerance: TOLERANCE,
    };

    write_bytes_atomic(&check_path, check_csv.as_bytes())?;
    write_bytes_atomic(&onnx_path, &bytes)?;
    let summary = ExportSummary {
        onnx: onnx_path.clone(),
        bytes: bytes.len(),
        model_kind: metadata.config.kind(),
        parameters: metadata.parameters,
        opset: onnx::OPSET,
        input: Port {
            name: onnx::INPUT.into(),
            doc: onnx::input_doc(),
        },
        output: Port {
            name: onnx::OUTPUT.into(),
            doc: onnx::output_doc(choice.temperature),
        },
        normalisation: spec.normalisation,
        temperature: choice.temperature,
        threshold: choice.threshold,
        check,
    };
    let summary_path = dir.join(SUMMARY_FILE);
    write_json_atomic(&summary_path, &summary)?;
    let used = pipeline.write_used(&dir)?;
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    manifest.add_inputs(&input_files(pipeline, split), &[])?;
    for path in [onnx_path, check_path, summary_path, used] {
        manifest.add_output(&path)?;
    }
    manifest.write(&dir, hits_core::stage::elapsed_seconds())?;
    Ok(summary)
}

/// The model's `metadata_props`: what a user of the file alone needs.
fn metadata_props(metadata: &ModelMetadata, choice: &ThresholdChoice) -> Vec<(String, String)> {
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
    let mut props = vec![
        ("threshold".to_string(), choice.threshold.to_string()),
        ("threshold_rule".into(), json_text(&choice.rule)),
        ("threshold_chosen_on".into(), choice.chosen_on.clone()),
        ("channels".into(), channels.join(",")),
        ("input_layout".into(), "NHWC".into()),
        (
            "normalisation".into(),
            metadata.input.normalisation.to_string(),
        ),
        ("normalisation_in_graph".into(), "true".into()),
        ("model_kind".into(), json_text(&metadata.config.kind())),
        ("parameters".into(), metadata.parameters.to_string()),
        (
            "training_features_blake3".into(),
            metadata.training_features_hash.clone(),
        ),
        ("model_mpk_blake3".into(), choice.model_mpk_blake3.clone()),
    ];
    if let Some(t) = choice.temperature {
        props.push(("temperature".into(), t.to_string()));
    }
    props
}

/// `value` as JSON, without the quotes of a plain string (`seed_cnn`, not `"seed_cnn"`).
fn json_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Run the graph `bytes` with tract on `raw` stamps and refuse it unless it agrees with the
/// model to [`TOLERANCE`]; returns the largest difference and the model's own P(real).
fn check_graph(
    path: &Path,
    bytes: &[u8],
    model: &Classifier<Cpu>,
    spec: &GraphSpec,
    split: &str,
    ids: &[String],
    raw: &[f32],
) -> Result<(f64, Vec<f64>), ExportError> {
    let runner = OnnxRunner::new(path, bytes)?;
    let comparison = Comparison::run(
        &runner,
        path,
        model,
        raw,
        &spec.normalisation,
        spec.temperature,
    )?;
    let (max_abs_difference, row) = comparison.max_difference();
    // NaN (a graph that produced one) fails too.
    if max_abs_difference.is_nan() || max_abs_difference > TOLERANCE {
        return Err(ExportError::Disagrees {
            path: path.to_path_buf(),
            split: split.into(),
            id: ids.get(row).cloned().unwrap_or_default(),
            onnx: comparison.onnx[row],
            ours: comparison.ours[row],
            tolerance: TOLERANCE,
        });
    }
    Ok((max_abs_difference, comparison.ours))
}
