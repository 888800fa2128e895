use std::path::PathBuf;

use hits_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    /// An input or features file whose columns or metadata are not what the pipeline writes.
    #[error("{path}: {message}")]
    Schema { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl FeaturesError {
    pub(crate) fn schema(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        FeaturesError::Schema {
            path: path.into(),
            message: message.into(),
        }
    }
}
