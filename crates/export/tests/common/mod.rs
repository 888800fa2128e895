//! Shared by the export tests: a model with spread-out P(real), raw stamps, normalisations.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::sync::Mutex;

use burn::module::Param;
use burn::prelude::*;
use features::NormalisationSpec;
use hits_core::config::{ModelConfig, ModelKind};
use hits_core::{STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
use model::Classifier;
use model::backend::Cpu;

/// Candidates the tests score.
pub const STAMPS: usize = 40;

/// A freshly initialised model whose log-odds of real on [`raw`]`(STAMPS)` normalised by
/// `normalisation` have mean 0 and standard deviation 0.5 (a fresh network gives nearly the same
/// P(real) to every stamp, which would make any two graphs agree).
pub fn spread_model(kind: ModelKind, normalisation: &NormalisationSpec) -> Classifier<Cpu> {
    let device = Default::default();
    let config = match kind {
        ModelKind::SeedCnn => ModelConfig::SeedCnn {},
        ModelKind::RotInvCnn => ModelConfig::RotInvCnn {
            dropout: 0.5,
            filters: 4,
        },
    };
    // The backend's generator is global: seed and draw with no other test drawing between.
    static INIT: Mutex<()> = Mutex::new(());
    let mut model = {
        let _alone = INIT.lock().unwrap_or_else(|e| e.into_inner());
        Cpu::seed(&device, 7);
        Classifier::<Cpu>::init(&config, &device)
    };
    // Freshly initialised layers barely tell stamps apart: steepen them, so that the spread
    // comes from the network rather than from a large gain on rounding noise.
    let steepen = |layer: &mut Param<Tensor<Cpu, 4>>, factor: f32| {
        *layer = Param::from_tensor(layer.val() * factor);
    };
    match &mut model {
        Classifier::Seed(m) => {
            for dense in &mut m.dense {
                dense.weight = Param::from_tensor(dense.weight.val() * 10.0);
            }
        }
        Classifier::RotInv(m) => {
            for conv in [
                &mut m.conv1,
                &mut m.conv2,
                &mut m.conv3,
                &mut m.conv4,
                &mut m.conv5,
            ] {
                steepen(&mut conv.weight, 3.0);
            }
        }
    }
    let mut stamps = raw(STAMPS);
    stamps
        .chunks_exact_mut(TENSOR_LEN)
        .for_each(|s| normalisation.apply(s));
    let logits = model
        .forward(model::stamps_tensor(&stamps, &device))
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap();
    let log_odds: Vec<f32> = logits.chunks_exact(2).map(|l| l[1] - l[0]).collect();
    let n = log_odds.len() as f32;
    let mean = log_odds.iter().sum::<f32>() / n;
    let std = (log_odds.iter().map(|d| (d - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(std > 0.0, "{kind:?} gives every stamp the same P(real)");
    let gain = 0.5 / std;
    let output = match &mut model {
        Classifier::Seed(m) => &mut m.output,
        Classifier::RotInv(m) => &mut m.output,
    };
    output.weight = Param::from_tensor(output.weight.val() * gain);
    let bias = output
        .bias
        .as_ref()
        .expect("the logits layer has a bias")
        .val();
    let shift = Tensor::<Cpu, 1>::from_floats([0.0, -gain * mean], &device);
    output.bias = Some(Param::from_tensor(bias * gain + shift));
    model
}

/// `n` raw channel-major stamps: sky at varied levels and scales, a source at varied places,
/// and stamp 0 with a flat template (which min-max normalisation maps to 0).
pub fn raw(n: usize) -> Vec<f32> {
    let mut stamps = Vec::with_capacity(n * TENSOR_LEN);
    let mut state = 0x2545_f491_u32;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32 - 0.5
    };
    for i in 0..n {
        let (sx, sy) = ((i * 5) % STAMP_SIDE, (i * 3 + 4) % STAMP_SIDE);
        for c in 0..4 {
            let level = [1.0, 1.2, 0.0, 0.0][c] + 0.02 * i as f32;
            let scale = [0.3, 0.35, 0.4, 0.5][c];
            for p in 0..STAMP_PIXELS {
                let (x, y) = (p % STAMP_SIDE, p / STAMP_SIDE);
                let r2 = (x as f32 - sx as f32).powi(2) + (y as f32 - sy as f32).powi(2);
                let source = if c == 0 { 0.0 } else { 4.0 * (-r2 / 4.0).exp() };
                let value = if i == 0 && c == 0 {
                    level
                } else {
                    level + scale * (noise() + source)
                };
                stamps.push(value);
            }
        }
    }
    stamps
}

pub fn zscore() -> NormalisationSpec {
    NormalisationSpec::Zscore {
        mean: [1.3, 1.5, 0.2, 0.1],
        // A zero standard deviation is kept as scale 1, as the features do.
        std: [0.4, 0.45, 0.0, 0.6],
    }
}
