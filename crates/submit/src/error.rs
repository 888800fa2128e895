use std::path::PathBuf;

use evaluate::EvaluateError;
use features::FeaturesError;
use hits_core::CoreError;
use ingest::IngestError;
use model::ModelError;

hits_core::stage_error! {
    pub enum SubmitError {
        upstream {
            Core(CoreError), Ingest(IngestError), Features(FeaturesError), Model(ModelError),
            Evaluate(EvaluateError),
        }
        /// A submission or answer key whose candidates do not match the other's.
        #[error("{path}: {message}")]
        Answers { path: PathBuf, message: String },
        /// An input directory or model that cannot be scored (layout, normalisation).
        #[error("{path}: {message}")]
        Input { path: PathBuf, message: String },
    }
}
