//! `model.json`: what a saved model expects of its input, written beside its record.
//!
//! A model is saved as `<dir>/model.mpk` (burn's named MessagePack record, full precision)
//! plus `<dir>/model.json`. [`load`] refuses a model whose metadata disagrees with the
//! features it is asked to run on (shape, channel order, normalisation and its statistics),
//! naming the file and what differs.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use hits_core::config::ModelConfig;
use hits_core::io::{read_json, write_bytes_atomic, write_json_atomic};
use serde::{Deserialize, Serialize};

use crate::{Classifier, ModelError};

pub const RECORD_FILE: &str = "model.mpk";
pub const METADATA_FILE: &str = "model.json";

/// What the features a model sees look like. `normalisation` is the features' normalisation
/// spec as JSON (e.g. `{"kind": "zscore", "mean": [...], "std": [...]}`), kept opaque here
/// so this crate does not depend on the features crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Comma-separated channel order.
    pub channels: String,
    pub normalisation: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The model's kind (`config.kind`) and its settings.
    pub config: ModelConfig,
    pub parameters: usize,
    /// Version of the `model` crate that wrote the record.
    pub crate_version: String,
    pub input: InputSpec,
    /// BLAKE3 of the feature file the model was trained on.
    pub training_features_hash: String,
    /// P(real) at or above which a candidate is called real (0.5 until `evaluate` picks one).
    pub threshold: f64,
    /// Where `evaluate` fitted one: P(real) is the model's with its log-odds divided by this
    /// temperature, before the threshold applies.
    #[serde(default)]
    pub temperature: Option<f64>,
}

impl ModelMetadata {
    pub fn new<B: Backend>(
        model: &Classifier<B>,
        config: &ModelConfig,
        input: InputSpec,
        features_hash: &str,
    ) -> Self {
        ModelMetadata {
            config: config.clone(),
            parameters: model.num_params(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            input,
            training_features_hash: features_hash.to_string(),
            threshold: 0.5,
            temperature: None,
        }
    }

    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(METADATA_FILE);
        if !path.exists() {
            return Err(ModelError::Mismatch {
                path,
                message: "missing: train a model first".into(),
            });
        }
        Ok(read_json(&path)?)
    }

    /// Write `<dir>/model.json` atomically (e.g. after `evaluate` chose a threshold).
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ModelError> {
        let path = dir.join(METADATA_FILE);
        write_json_atomic(&path, self)?;
        Ok(path)
    }

    /// Refuse features that differ from those the model was trained on.
    pub fn check_input(&self, dir: &Path, input: &InputSpec) -> Result<(), ModelError> {
        let mismatch = |what: &str, model: String, features: String| ModelError::Mismatch {
            path: dir.join(METADATA_FILE),
            message: format!(
                "{what} differs: the model was trained on {model} but the features have {features}"
            ),
        };
        if self.input.shape != input.shape {
            return Err(mismatch(
                "stamp shape",
                format!("{:?}", self.input.shape),
                format!("{:?}", input.shape),
            ));
        }
        if self.input.channels != input.channels {
            return Err(mismatch(
                "channel order",
                self.input.channels.clone(),
                input.channels.clone(),
            ));
        }
        if self.input.normalisation != input.normalisation {
            return Err(mismatch(
                "normalisation",
                self.input.normalisation.to_string(),
                input.normalisation.to_string(),
            ));
        }
        Ok(())
    }
}

/// Write `<dir>/model.mpk` then `<dir>/model.json`, each atomically.
pub fn save<B: Backend>(
    model: &Classifier<B>,
    metadata: &ModelMetadata,
    dir: &Path,
) -> Result<(), ModelError> {
    let path = dir.join(RECORD_FILE);
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .record(model.clone().into_record(), ())
        .map_err(|e| ModelError::Record {
            path: path.clone(),
            message: e.to_string(),
        })?;
    write_bytes_atomic(&path, &bytes)?;
    metadata.write(dir)?;
    Ok(())
}

/// Load the model saved in `dir`, refusing it unless its metadata fits `input`.
pub fn load<B: Backend>(
    dir: &Path,
    input: &InputSpec,
    device: &B::Device,
) -> Result<(Classifier<B>, ModelMetadata), ModelError> {
    let metadata = ModelMetadata::read(dir)?;
    metadata.check_input(dir, input)?;
    let model = load_record::<B>(dir, &metadata, device)?;
    Ok((model, metadata))
}

/// Load the record in `dir` into a model of the kind `metadata` names (no input check).
pub fn load_record<B: Backend>(
    dir: &Path,
    metadata: &ModelMetadata,
    device: &B::Device,
) -> Result<Classifier<B>, ModelError> {
    let path = dir.join(RECORD_FILE);
    let record_error = |message: String| ModelError::Record {
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(&path).map_err(|e| hits_core::CoreError::io(&path, e))?;
    let model = Classifier::<B>::init(&metadata.config, device);
    let record = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        NamedMpkBytesRecorder::<FullPrecisionSettings>::new().load(bytes, device)
    }))
    .map_err(|_| record_error("corrupt or not a model record".into()))?
    .map_err(|e| record_error(e.to_string()))?;
    let model =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.load_record(record)))
            .map_err(|_| {
                record_error(format!("does not fit a {:?} model", metadata.config.kind()))
            })?;
    if model.num_params() != metadata.parameters {
        return Err(ModelError::Mismatch {
            path: dir.join(METADATA_FILE),
            message: format!(
                "records {} parameters but {} holds {}",
                metadata.parameters,
                RECORD_FILE,
                model.num_params()
            ),
        });
    }
    Ok(model)
}
