use std::path::PathBuf;

use hits_core::CoreError;

/// Everything that can be wrong with a split's CSVs. Each message is one line naming the
/// file, and the row and column where there is one.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A problem with a whole file (missing, empty, wrong header, wrong row count).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A problem with one cell is a [`CoreError::Cell`], as the other stages' are.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A [`crate::scan_split`] sink stopped the scan for a reason of its own.
    #[error("stopped by the reader of the candidates")]
    Stopped,
}

impl IngestError {
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        IngestError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}
