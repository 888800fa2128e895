use std::path::PathBuf;

use hits_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Features(#[from] features::FeaturesError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    /// Data unfit for training (no labels, one class only, ...).
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    /// A checkpoint that cannot be resumed.
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
}
