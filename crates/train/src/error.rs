use std::path::PathBuf;

use features::FeaturesError;
use hits_core::CoreError;
use model::ModelError;
use plots::PlotError;

hits_core::stage_error! {
    pub enum TrainError {
        upstream { Core(CoreError), Features(FeaturesError), Model(ModelError), Plot(PlotError) }
        /// Data unfit for training (no labels, one class only, ...).
        #[error("{path}: {message}")]
        Data { path: PathBuf, message: String },
        /// A checkpoint that cannot be resumed.
        #[error("{path}: {message}")]
        Checkpoint { path: PathBuf, message: String },
    }
}
