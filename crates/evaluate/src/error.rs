use std::path::PathBuf;

use hits_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Features(#[from] features::FeaturesError),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    /// Inputs that do not fit together (unlabelled candidates, a split of other features, a
    /// threshold chosen for another model, ...).
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
}

impl EvaluateError {
    pub(crate) fn mismatch(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvaluateError::Mismatch {
            path: path.into(),
            message: message.into(),
        }
    }
}
