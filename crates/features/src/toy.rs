//! A tiny separable feature set for the tests of later stages (`toy` cargo feature): train,
//! evaluate and submit tests write it instead of running the simulator, ingest and features.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt8Array};
use hits_core::arrow_io::{f32_list_array, write_ipc};
use hits_core::config::{
    CalibrationMethod, ModelConfig, OptimiserConfig, REAL_HOLDOUT_SPLIT, ThresholdRule,
};
use hits_core::manifest::Manifest;
use hits_core::{CoreError, Pipeline, STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};

use crate::{FeatureMeta, NormalisationSpec, STAGE};

/// Candidate `i`: real ones (odd `i`) have a bright centre in the difference channels, bogus
/// ones a dark one, on a deterministic ripple.
pub fn stamp(i: usize) -> Vec<f32> {
    let sign = if i % 2 == 1 { 1.0 } else { -1.0 };
    let mut stamp = Vec::with_capacity(TENSOR_LEN);
    for channel in 0..4 {
        for p in 0..STAMP_PIXELS {
            let (r, c) = ((p / STAMP_SIDE) as i32 - 10, (p % STAMP_SIDE) as i32 - 10);
            let ripple = 0.2 * ((p * 7 + i * 13) % 11) as f32 / 11.0;
            let blob = if channel >= 2 && r * r + c * c <= 9 {
                0.6 * sign
            } else {
                0.0
            };
            stamp.push(0.3 + ripple + blob);
        }
    }
    stamp
}

/// Write `<artifacts>/features/<split>.arrow` for each (split, rows, labelled) — ids
/// `<split>-000`, labels alternating 0, 1 — and the features manifest.
pub fn write_features(pipeline: &Pipeline, splits: &[(&str, usize, bool)]) {
    write_features_as(pipeline, splits, NormalisationSpec::None);
}

/// [`write_features`], with files that claim `normalisation` (the values stay the same).
pub fn write_features_as(
    pipeline: &Pipeline,
    splits: &[(&str, usize, bool)],
    normalisation: NormalisationSpec,
) {
    let dir = pipeline.stage_dir(STAGE);
    let meta = FeatureMeta::new(normalisation, "ingest-hash".into());
    let mut manifest = Manifest::new(STAGE, "toy", pipeline);
    for &(split, rows, labelled) in splits {
        let labels: Vec<Option<u8>> = (0..rows)
            .map(|i| labelled.then_some((i % 2) as u8))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("{split}-{i:03}")),
            )),
            Arc::new(UInt8Array::from(labels)),
            Arc::new(f32_list_array(
                (0..rows).flat_map(stamp).collect(),
                TENSOR_LEN,
            )),
            Arc::new(Float32Array::from_iter_values(
                (0..rows).map(|i| i as f32 % 20.0),
            )),
        ];
        let batch = RecordBatch::try_new(meta.schema(), columns).expect("toy columns");
        let path = dir.join(format!("{split}.arrow"));
        manifest.add_output_digest(
            write_ipc::<CoreError>(&path, meta.schema(), [Ok(batch)]).expect("write toy features"),
        );
    }
    manifest.write(&dir, 0.0).expect("write toy manifest");
}

/// The notebook's recipe on the default pipeline's splits but the real-pixel one, artifacts
/// under `root/artifacts`: SeedCnn, Keras' RMSprop, no augmentation, no early stopping, the
/// model's own P(real) at a fixed 0.5. Predictable for tests: every setting they rely on is
/// set here, not taken from the default pipeline's recipe.
pub fn toy_pipeline(root: &Path) -> Pipeline {
    let mut pipeline = Pipeline {
        artifacts: root.join("artifacts"),
        ..Pipeline::default()
    };
    // The toy data has no real pixels.
    pipeline.data.splits.remove(REAL_HOLDOUT_SPLIT);
    pipeline.model = ModelConfig::SeedCnn {};
    pipeline.train.optimiser = OptimiserConfig::keras_rmsprop();
    pipeline.train.augment = false;
    pipeline.train.early_stopping_patience = None;
    pipeline.evaluate.threshold = ThresholdRule::Fixed { value: 0.5 };
    pipeline.evaluate.calibration = CalibrationMethod::None;
    pipeline
}

/// A fast pipeline for binary tests: [`toy_pipeline`] with batch 16 and `epochs` epochs,
/// changed by `edit`, saved as `root/p.toml`, with `rows` labelled toy train candidates.
pub fn seed_pipeline(
    root: &Path,
    epochs: usize,
    rows: usize,
    edit: impl FnOnce(&mut Pipeline),
) -> (Pipeline, PathBuf) {
    let mut pipeline = toy_pipeline(root);
    pipeline.train.epochs = epochs;
    pipeline.train.batch_size = 16;
    edit(&mut pipeline);
    let path = root.join("p.toml");
    std::fs::write(&path, pipeline.to_toml()).expect("write toy pipeline");
    write_features(&pipeline, &[("train", rows, true)]);
    (pipeline, path)
}

/// Whether a finished process succeeded, and its stdout and stderr together.
pub fn outcome(out: std::process::Output) -> (bool, String) {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Run a stage `binary` (e.g. `env!("CARGO_BIN_EXE_submit")`) with `args` then
/// `--pipeline pipeline_file`: [`outcome`].
pub fn run_stage(binary: &str, pipeline_file: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(binary)
        .args(args)
        .arg("--pipeline")
        .arg(pipeline_file)
        .output()
        .expect("the stage binary starts");
    outcome(out)
}
