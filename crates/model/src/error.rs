use std::path::PathBuf;

use hits_core::CoreError;

/// Errors of saving and loading models. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The burn record could not be written or read.
    #[error("{path}: model record: {message}")]
    Record { path: PathBuf, message: String },
    /// The saved model does not fit the features it is asked to run on.
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
}
