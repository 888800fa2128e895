use std::path::PathBuf;

use evaluate::EvaluateError;
use features::FeaturesError;
use hits_core::CoreError;
use model::ModelError;

hits_core::stage_error! {
    pub enum ExportError {
        upstream {
            Core(CoreError), Features(FeaturesError), Model(ModelError), Evaluate(EvaluateError),
        }
        /// A model or setting the ONNX graph cannot express.
        #[error("cannot export: {0}")]
        Unsupported(String),
        /// The ONNX runtime refused the graph or failed to run it.
        #[error("{path}: ONNX runtime (tract): {message}")]
        Runtime { path: PathBuf, message: String },
        /// The exported graph computes other probabilities than the model.
        #[error(
            "{path}: the exported graph disagrees with the model on split {split}: candidate {id} has P(real) {onnx} in ONNX against {ours} (tolerance {tolerance})"
        )]
        Disagrees {
            path: PathBuf,
            split: String,
            id: String,
            onnx: f32,
            ours: f64,
            tolerance: f64,
        },
    }
}
