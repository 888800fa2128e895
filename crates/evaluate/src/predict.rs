//! Batch prediction with a saved model on the best backend available (as `train` picks it).

use std::path::Path;

use features::StampSet;
use indicatif::{ProgressBar, ProgressStyle};
use model::ModelMetadata;
use model::backend::BackendTask;
use model::channels_last::TrainBackend;

use crate::EvaluateError;

/// Candidates per forward pass.
const BATCH: usize = 1024;

/// P(real) of every candidate of `set` by the model saved in `model_dir`, which must have
/// been trained on features like `set`'s (same shape, channels and normalisation), with a
/// progress bar on a terminal.
pub fn predict(
    model_dir: &Path,
    set: &StampSet,
) -> Result<(Vec<f64>, ModelMetadata), EvaluateError> {
    let bar = ProgressBar::new(set.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("predict [{bar:30}] {pos}/{len} candidates, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let out = predict_with_progress(model_dir, set, &bar);
    bar.finish_and_clear();
    out
}

/// [`predict`], counting the candidates on `bar` (for a caller that feeds a long input in
/// parts and shows one bar for all of them).
pub fn predict_with_progress(
    model_dir: &Path,
    set: &StampSet,
    bar: &ProgressBar,
) -> Result<(Vec<f64>, ModelMetadata), EvaluateError> {
    model::backend::dispatch(Predict {
        model_dir,
        set,
        bar,
    })
}

struct Predict<'a> {
    model_dir: &'a Path,
    set: &'a StampSet,
    bar: &'a ProgressBar,
}

impl BackendTask for Predict<'_> {
    type Output = Result<(Vec<f64>, ModelMetadata), EvaluateError>;

    fn run<B: TrainBackend>(self, device: B::Device, _backend: &'static str) -> Self::Output {
        let input = train::input_spec(self.set);
        let (model, metadata) =
            model::metadata::load::<B::InnerBackend>(self.model_dir, &input, &device)?;
        let mut p_real = Vec::with_capacity(self.set.len());
        for start in (0..self.set.len()).step_by(BATCH) {
            let stamps = self
                .set
                .stamps
                .range(start..(start + BATCH).min(self.set.len()))?;
            let p = model.predict(&stamps, BATCH, &device);
            self.bar.inc(p.len() as u64);
            p_real.extend(p.into_iter().map(f64::from));
        }
        Ok((p_real, metadata))
    }
}
