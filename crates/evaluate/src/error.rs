use std::path::PathBuf;

use features::FeaturesError;
use hits_core::CoreError;
use model::ModelError;
use plots::PlotError;
use train::TrainError;

hits_core::stage_error! {
    pub enum EvaluateError {
        upstream {
            Core(CoreError), Features(FeaturesError), Model(ModelError), Train(TrainError),
            Plot(PlotError),
        }
        /// Inputs that do not fit together (unlabelled candidates, a split of other features, a
        /// threshold chosen for another model, ...).
        #[error("{path}: {message}")]
        Mismatch { path: PathBuf, message: String },
    }
}

impl EvaluateError {
    pub(crate) fn mismatch(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvaluateError::Mismatch {
            path: path.into(),
            message: message.into(),
        }
    }
}
