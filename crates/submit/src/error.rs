use std::path::PathBuf;

use hits_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Features(#[from] features::FeaturesError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Evaluate(#[from] evaluate::EvaluateError),
    /// A submission or answer key whose candidates do not match the other's.
    #[error("{path}: {message}")]
    Answers { path: PathBuf, message: String },
    /// An input directory or model that cannot be scored (layout, normalisation).
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
}
