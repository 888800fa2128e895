//! Inference throughput of a model on the CPU backend, in process.

use std::time::Instant;

use hits_core::TENSOR_LEN;
use hits_core::config::{ModelConfig, ModelKind};
use model::Classifier;
use model::backend::Cpu;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub model: ModelKind,
    pub batch: usize,
    pub candidates_per_second: f64,
}

/// Candidates/s of `Classifier::predict` at each batch size, on `stamps` (whole (4, 21, 21)
/// stamps, reused cyclically), each measured for at least `min_seconds` after a warm-up call.
/// Weights do not change the arithmetic, so a freshly initialised model times the same as a
/// trained one.
pub fn measure(
    kind: ModelKind,
    stamps: &[f32],
    batches: &[usize],
    min_seconds: f64,
) -> Vec<Throughput> {
    let device = Default::default();
    let config = ModelConfig::of_kind(kind);
    let model = Classifier::<Cpu>::init(&config, &device);
    let available = stamps.len() / TENSOR_LEN;
    batches
        .iter()
        .map(|&batch| {
            let input: Vec<f32> = (0..batch)
                .flat_map(|i| {
                    let row = i % available;
                    stamps[row * TENSOR_LEN..(row + 1) * TENSOR_LEN]
                        .iter()
                        .copied()
                })
                .collect();
            model.predict(&input, batch, &device);
            let started = Instant::now();
            let mut candidates = 0;
            while candidates == 0 || started.elapsed().as_secs_f64() < min_seconds {
                model.predict(&input, batch, &device);
                candidates += batch;
            }
            Throughput {
                model: kind,
                batch,
                candidates_per_second: candidates as f64 / started.elapsed().as_secs_f64(),
            }
        })
        .collect()
}
