//! The exported graph run by a real ONNX runtime (tract) on raw stamps, against the
//! project's own inference on the same stamps normalised as the features are.

use std::path::Path;

use features::NormalisationSpec;
use hits_core::{STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
use model::Classifier;
use model::backend::Cpu;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::ExportError;

/// Largest |P(real)| difference accepted between the graph and the model.
pub const TOLERANCE: f64 = 1e-5;

/// The runtime that checks the export (the version Cargo.lock pins).
pub const RUNTIME: &str = "tract-onnx 0.23";

/// Candidates per run of either side.
const BATCH: usize = 1024;

/// An exported graph, optimised by tract for any batch size.
pub struct OnnxRunner {
    plan: Arc<TypedRunnableModel>,
}

impl OnnxRunner {
    /// Load the ONNX model `bytes` (read from `path`, for messages).
    pub fn new(path: &Path, bytes: &[u8]) -> Result<Self, ExportError> {
        let runtime = |e: TractError| ExportError::Runtime {
            path: path.to_path_buf(),
            message: format!("{e:#}").replace('\n', " "),
        };
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(runtime)?;
        Ok(OnnxRunner { plan })
    }

    /// P(real) of `n` raw channels-last stamps `(n, 21, 21, 4)`.
    pub fn p_real(&self, path: &Path, stamps: &[f32]) -> Result<Vec<f32>, ExportError> {
        let n = stamps.len() / TENSOR_LEN;
        let runtime = |message: String| ExportError::Runtime {
            path: path.to_path_buf(),
            message,
        };
        let input = Tensor::from_shape(&[n, STAMP_SIDE, STAMP_SIDE, 4], stamps)
            .map_err(|e| runtime(e.to_string()))?;
        let output = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| runtime(format!("{e:#}")))?;
        let p = output[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| runtime(e.to_string()))?;
        Ok(p.iter().copied().collect())
    }
}

/// Channel-major `(n, 4, 21, 21)` stamps as channels-last `(n, 21, 21, 4)`.
pub fn channels_last(stamps: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; stamps.len()];
    for (stamp, target) in stamps
        .chunks_exact(TENSOR_LEN)
        .zip(out.chunks_exact_mut(TENSOR_LEN))
    {
        for (c, plane) in stamp.chunks_exact(STAMP_PIXELS).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                target[p * 4 + c] = v;
            }
        }
    }
    out
}

/// The project's own P(real) of raw channel-major stamps: normalised as the features are,
/// scored by `model`, through the temperature if there is one.
pub fn reference_p_real(
    model: &Classifier<Cpu>,
    raw: &[f32],
    normalisation: &NormalisationSpec,
    temperature: Option<f64>,
) -> Vec<f64> {
    let mut stamps = raw.to_vec();
    stamps
        .chunks_exact_mut(TENSOR_LEN)
        .for_each(|s| normalisation.apply(s));
    let p: Vec<f64> = model
        .predict(&stamps, BATCH, &Default::default())
        .into_iter()
        .map(f64::from)
        .collect();
    evaluate::threshold::calibrated(&p, temperature)
}

/// The graph's and the model's P(real) on the same raw stamps.
pub struct Comparison {
    pub onnx: Vec<f32>,
    pub ours: Vec<f64>,
}

impl Comparison {
    /// Score `raw` channel-major stamps both ways, `BATCH` at a time.
    pub fn run(
        runner: &OnnxRunner,
        path: &Path,
        model: &Classifier<Cpu>,
        raw: &[f32],
        normalisation: &NormalisationSpec,
        temperature: Option<f64>,
    ) -> Result<Self, ExportError> {
        let mut onnx = Vec::new();
        for chunk in raw.chunks(BATCH * TENSOR_LEN) {
            onnx.extend(runner.p_real(path, &channels_last(chunk))?);
        }
        let ours = reference_p_real(model, raw, normalisation, temperature);
        Ok(Comparison { onnx, ours })
    }

    /// The largest difference and the candidate (row) where it is.
    pub fn max_difference(&self) -> (f64, usize) {
        self.onnx
            .iter()
            .zip(&self.ours)
            .map(|(&a, &b)| (f64::from(a) - b).abs())
            .enumerate()
            .fold((0.0, 0), |(best, at), (i, d)| {
                if d > best || d.is_nan() {
                    (d, i)
                } else {
                    (best, at)
                }
            })
    }
}
