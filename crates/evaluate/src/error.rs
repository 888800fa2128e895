use std::path::PathBuf;

use hits_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// `row` counts data rows from 1; `line` is the file line.
    #[error("{path}: row {row} (line {line}), column {column}: {message}")]
    Cell {
        path: PathBuf,
        row: usize,
        line: usize,
        column: String,
        message: String,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
}
