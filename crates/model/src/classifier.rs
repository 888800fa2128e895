//! [`Classifier`]: either model, as the train, evaluate and submit stages handle them.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use hits_core::TENSOR_LEN;
use hits_core::config::{ModelConfig, ModelKind};

use crate::channels_last::ChannelsLastOps;
use crate::{CHANNELS, RotInvCnn, RotInvCnnConfig, SIDE, SeedCnn, SeedCnnConfig};

#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one model per process: size is irrelevant
pub enum Classifier<B: Backend> {
    Seed(SeedCnn<B>),
    RotInv(RotInvCnn<B>),
}

impl<B: Backend> Classifier<B> {
    /// A freshly initialised model of the configured kind (initialisation draws from the
    /// backend's RNG: seed it with `B::seed` first for reproducible weights).
    pub fn init(config: &ModelConfig, device: &B::Device) -> Self {
        match *config {
            ModelConfig::SeedCnn {} => Classifier::Seed(SeedCnnConfig::new().init(device)),
            ModelConfig::RotInvCnn { dropout, filters } => Classifier::RotInv(
                RotInvCnnConfig::new()
                    .with_dropout(dropout)
                    .with_filters(filters)
                    .init(device),
            ),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Classifier::Seed(_) => ModelKind::SeedCnn,
            Classifier::RotInv(_) => ModelKind::RotInvCnn,
        }
    }
}

impl<B: ChannelsLastOps> Classifier<B> {
    /// `(N, 4, 21, 21)` stamps -> `(N, 2)` logits (column 1: real).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            Classifier::Seed(m) => m.forward(x),
            Classifier::RotInv(m) => m.forward(x),
        }
    }

    /// `(N, 4, 21, 21)` stamps -> `(N)` probability of being real. Call it on a
    /// non-autodiff backend (e.g. `model.valid()`) so dropout is off.
    pub fn p_real(&self, x: Tensor<B, 4>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        softmax(self.forward(x), 1).slice([0..n, 1..2]).reshape([n])
    }

    /// P(real) of every stamp of a flat `(N, 4, 21, 21)` row-major buffer, `batch` at a time
    /// (at most [`PREDICT_TILE`] per forward pass). On the CPU the passes run in parallel,
    /// each on one thread: SeedCnn at batch 1024 about 20% faster than parallel blocks
    /// within each pass, whose dense layers and hand-offs between threads ran serially.
    pub fn predict(&self, stamps: &[f32], batch: usize, device: &B::Device) -> Vec<f32>
    where
        Self: Sync,
    {
        use rayon::prelude::*;
        let p_real = |chunk: &[f32]| {
            self.p_real(stamps_tensor(chunk, device))
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 probabilities")
        };
        let pass = batch.clamp(1, PREDICT_TILE) * TENSOR_LEN;
        if B::chains_blocks() {
            stamps.par_chunks(pass).flat_map_iter(p_real).collect()
        } else {
            stamps.chunks(pass).flat_map(p_real).collect()
        }
    }
}

/// Most candidates per forward pass in [`Classifier::predict`]. On the CPU each candidate
/// goes through all convolution blocks at once, so larger passes gain little; smaller ones
/// let short batches use both cores (measured on 2 cores at batch 1024: 32, 64 and 128 per
/// pass within noise, 256 slower).
pub const PREDICT_TILE: usize = 64;

/// A flat row-major buffer of whole stamps -> an `(N, 4, 21, 21)` tensor.
pub fn stamps_tensor<B: Backend>(stamps: &[f32], device: &B::Device) -> Tensor<B, 4> {
    assert_eq!(
        stamps.len() % TENSOR_LEN,
        0,
        "stamp buffer of {} values is not whole stamps",
        stamps.len()
    );
    let n = stamps.len() / TENSOR_LEN;
    Tensor::from_data(
        TensorData::new(stamps.to_vec(), [n, CHANNELS, SIDE, SIDE]),
        device,
    )
}
