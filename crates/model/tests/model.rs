use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use hits_core::config::{ModelConfig, ModelKind};
use model::backend::Cpu;
use model::metadata::{self, InputSpec, ModelMetadata};
use model::rot_inv_cnn::rot90;
use model::seed_cnn::keras_same_pad_2x2;
use model::{Classifier, stamps_tensor};

type B = Cpu;

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

/// A model initialised from a seeded backend generator. The generator is global to the process,
/// so seeding and drawing happen under one lock: every test's weights are the same on every run.
fn init_seeded(config: &ModelConfig, seed: u64) -> Classifier<B> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _alone = RNG.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(&device(), seed);
    Classifier::<B>::init(config, &device())
}

fn init(config: &ModelConfig) -> Classifier<B> {
    init_seeded(config, 5)
}

fn config(kind: ModelKind) -> ModelConfig {
    ModelConfig::of_kind(kind)
}

/// Deterministic pseudo-random stamps.
fn stamps(n: usize, salt: u32) -> Vec<f32> {
    (0..n * hits_core::TENSOR_LEN)
        .map(|i| {
            let x = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(salt.wrapping_mul(40_503));
            (x >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

#[test]
fn seed_cnn_has_the_reference_parameter_count() {
    let m = init(&config(ModelKind::SeedCnn));
    assert_eq!(m.num_params(), 41_986);
}

#[test]
fn rot_inv_cnn_width_follows_its_filters() {
    // Convolutions (F, F, 2F, 2F, 2F) with biases, dense 72F -> 64, 64 -> 64, 64 -> 2.
    let params = |f: usize| {
        let convs =
            (4 * 16 + 1) * f + (9 * f + 1) * f + (9 * f + 1) * 2 * f + 2 * (18 * f + 1) * 2 * f;
        convs + (72 * f + 1) * 64 + 65 * 64 + 65 * 2
    };
    for filters in [32, 16, 5] {
        let config = ModelConfig::RotInvCnn {
            dropout: 0.5,
            filters,
        };
        let m = init(&config);
        assert_eq!(m.num_params(), params(filters), "{filters} filters");
    }
    assert_eq!(params(16), 104_578, "the figure the README quotes");
}

#[test]
fn output_shapes() {
    for kind in [ModelKind::SeedCnn, ModelKind::RotInvCnn] {
        let m = init(&config(kind));
        let x = stamps_tensor::<B>(&stamps(3, 1), &device());
        assert_eq!(m.forward(x.clone()).dims(), [3, 2], "{kind:?}");
        let p = values(m.p_real(x));
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{p:?}");
        assert_eq!(m.predict(&stamps(5, 2), 2, &device()).len(), 5);
    }
}

#[test]
fn keras_same_padding_of_a_2x2_kernel_pads_bottom_and_right() {
    let d = device();
    let mut conv = Conv2dConfig::new([1, 1], [2, 2]).init::<B>(&d);
    conv.weight = Param::from_tensor(Tensor::from_data([[[[1.0f32, 2.0], [3.0, 4.0]]]], &d));
    conv.bias = Some(Param::from_tensor(Tensor::zeros([1], &d)));
    let x = Tensor::<B, 4>::from_data(
        [[[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]],
        &d,
    );
    // By hand: y[i][j] = 1 x[i][j] + 2 x[i][j+1] + 3 x[i+1][j] + 4 x[i+1][j+1], zeros past the end.
    let expected = [37.0, 47.0, 21.0, 67.0, 77.0, 33.0, 23.0, 26.0, 9.0];
    let y = conv.forward(keras_same_pad_2x2(x));
    assert_eq!(y.dims(), [1, 1, 3, 3]);
    assert_eq!(values(y), expected);
}

#[test]
fn rot_inv_cnn_is_invariant_to_quarter_turns() {
    let d = device();
    let m = init(&config(ModelKind::RotInvCnn));
    let x = stamps_tensor::<B>(&stamps(4, 3), &d);
    let base = values(m.forward(x.clone()));
    let mut rotated = x.clone();
    for turn in 1..4 {
        rotated = rot90(rotated);
        let y = values(m.forward(rotated.clone()));
        for (a, b) in base.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5, "turn {turn}: {base:?} vs {y:?}");
        }
    }
    // Not trivially constant, and a mirror image is not a rotation.
    let other = values(m.forward(stamps_tensor::<B>(&stamps(4, 9), &d)));
    assert!(base.iter().zip(&other).any(|(a, b)| (a - b).abs() > 1e-6));
    // The seed CNN is not invariant, so the test above can tell.
    let s = init(&config(ModelKind::SeedCnn));
    let (a, b) = (values(s.forward(x.clone())), values(s.forward(rot90(x))));
    assert!(a.iter().zip(&b).any(|(a, b)| (a - b).abs() > 1e-6));
}

fn spec(normalisation: serde_json::Value) -> InputSpec {
    InputSpec {
        shape: [4, 21, 21],
        channels: hits_core::Channel::order_string(),
        normalisation,
    }
}

#[test]
fn save_load_gives_identical_predictions_and_mismatch_is_refused() {
    let d = device();
    let dir = tempfile::tempdir().unwrap();
    let narrow = ModelConfig::RotInvCnn {
        dropout: 0.5,
        filters: 8,
    };
    for model_config in [
        config(ModelKind::SeedCnn),
        config(ModelKind::RotInvCnn),
        narrow,
    ] {
        let m = init(&model_config);
        let input = spec(serde_json::json!({"kind": "minmax_per_stamp"}));
        let meta = ModelMetadata::new(&m, &model_config, input.clone(), "abc");
        metadata::save(&m, &meta, dir.path()).unwrap();
        let (loaded, loaded_meta) = metadata::load::<B>(dir.path(), &input, &d).unwrap();
        assert_eq!(loaded_meta, meta);
        let x = stamps(6, 4);
        let (p, q) = (m.predict(&x, 4, &d), loaded.predict(&x, 4, &d));
        assert_eq!(
            p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            q.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // A fresh model predicts differently, so equality above means something.
        let fresh = init_seeded(&model_config, 6).predict(&x, 4, &d);
        assert_ne!(p, fresh);

        let other = spec(
            serde_json::json!({"kind": "zscore", "mean": [0.0, 0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0, 1.0]}),
        );
        let err = metadata::load::<B>(dir.path(), &other, &d)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.json") && err.contains("normalisation") && !err.contains('\n'),
            "{err}"
        );
        let mut channels = input.clone();
        channels.channels = "science,template,difference,snr_difference".into();
        let err = metadata::load::<B>(dir.path(), &channels, &d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel order"), "{err}");
    }
}

#[test]
fn record_of_the_other_kind_is_refused() {
    let d = device();
    let dir = tempfile::tempdir().unwrap();
    let m = init(&config(ModelKind::SeedCnn));
    let input = spec(serde_json::json!({"kind": "none"}));
    let mut meta = ModelMetadata::new(&m, &config(ModelKind::SeedCnn), input.clone(), "abc");
    metadata::save(&m, &meta, dir.path()).unwrap();
    meta.config = config(ModelKind::RotInvCnn);
    meta.write(dir.path()).unwrap();
    let err = metadata::load::<B>(dir.path(), &input, &d)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.mpk") || err.contains("model.json"),
        "{err}"
    );
}
