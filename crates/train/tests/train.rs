use std::path::Path;

use features::toy::toy_pipeline;
use features::{FeatureMeta, NormalisationSpec, StampSet};
use hits_core::Stage;
use hits_core::config::{ModelConfig, ModelKind, OptimiserConfig, TrainConfig};
use hits_core::{STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
use model::backend::{Cpu, CpuAutodiff};
use train::{EpochRow, Examples, FitOptions, fit};

/// A separable toy set: real candidates have a positive blob at the centre of the difference
/// channels, bogus ones a negative blob, on deterministic noise.
fn toy(n: usize, salt: u64) -> Examples {
    let mut state = salt.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut noise = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 0.4
    };
    let mut stamps = Vec::with_capacity(n * TENSOR_LEN);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u8;
        for channel in 0..4 {
            for p in 0..STAMP_PIXELS {
                let (r, c) = ((p / STAMP_SIDE) as i32 - 10, (p % STAMP_SIDE) as i32 - 10);
                let blob = if channel >= 2 && r * r + c * c <= 9 {
                    if label == 1 { 0.6 } else { -0.6 }
                } else {
                    0.0
                };
                stamps.push(0.3 + noise() + blob);
            }
        }
        labels.push(label);
    }
    Examples {
        stamps: stamps.into(),
        labels,
    }
}

fn options(
    kind: ModelKind,
    epochs: usize,
    optimiser: OptimiserConfig,
    augment: bool,
) -> FitOptions {
    FitOptions {
        model: ModelConfig::of_kind(kind),
        train: TrainConfig {
            epochs,
            batch_size: 16,
            optimiser,
            augment,
            class_weights: true,
            early_stopping_patience: None,
            ..TrainConfig::default()
        },
        seed: 11,
        progress: false,
        fingerprint: "test".into(),
        interrupt_after: None,
    }
}

fn rmsprop() -> OptimiserConfig {
    OptimiserConfig::Rmsprop {
        learning_rate: 1e-3,
        rho: 0.9,
        epsilon: 1e-7,
    }
}

fn bits(p: &[f32]) -> Vec<u32> {
    p.iter().map(|v| v.to_bits()).collect()
}

/// History without the wall-clock column.
fn curves(history: &[EpochRow]) -> Vec<[u64; 6]> {
    history
        .iter()
        .map(|r| {
            [
                r.epoch as u64,
                r.train_loss.to_bits(),
                r.train_accuracy.to_bits(),
                r.val_loss.to_bits(),
                r.val_accuracy.to_bits(),
                r.learning_rate.to_bits(),
            ]
        })
        .collect()
}

#[test]
fn seed_cnn_learns_a_separable_toy_set() {
    let (train, val) = (toy(192, 1), toy(64, 2));
    let dir = tempfile::tempdir().unwrap();
    let fitted = fit::<CpuAutodiff>(
        &Default::default(),
        &options(ModelKind::SeedCnn, 6, rmsprop(), false),
        &train,
        &val,
        dir.path(),
        false,
    )
    .unwrap();
    let h = &fitted.history;
    assert_eq!(h.len(), 6);
    let (first, last) = (&h[0], h.last().unwrap());
    assert!(
        last.train_loss < first.train_loss * 0.8,
        "loss did not fall: {h:?}"
    );
    assert!(
        last.val_accuracy > 0.9,
        "validation accuracy {}: {h:?}",
        last.val_accuracy
    );
    let scores =
        train::validation_scores::<Cpu>(&fitted.model, &val, 32, &Default::default()).unwrap();
    assert_eq!(scores.accuracy, last.val_accuracy);
    assert!(scores.f1 > 0.9, "{scores:?}");
    validation_scores_are_the_models_predictions(&fitted.model, val);
}

/// Validation scores, whose batches run in parallel, are those of the model's own
/// predictions, candidate by candidate, whatever the batch size and the threads.
fn validation_scores_are_the_models_predictions(model: &model::Classifier<Cpu>, mut val: Examples) {
    // Labels that differ from batch to batch and from the model's (trained on i % 2): a
    // batch's predictions paired with another batch's labels would score differently.
    let n = val.labels.len();
    val.labels = (0..n).map(|i| u8::from(i % 3 == 0 || i > 40)).collect();
    let device = Default::default();
    let p_real = model.predict(&val.stamps.range(0..n).unwrap(), n, &device);
    let right = |(p, &l): (&f32, &u8)| (*p > 0.5) == (l == 1);
    let accuracy = p_real.iter().zip(&val.labels).filter(|&c| right(c)).count() as f64 / n as f64;
    let loss = p_real
        .iter()
        .zip(&val.labels)
        .map(|(&p, &l)| -f64::from(if l == 1 { p } else { 1.0 - p }).ln())
        .sum::<f64>()
        / n as f64;
    assert!(
        accuracy > 0.2 && accuracy < 0.8,
        "labels too easy: {accuracy}"
    );
    for batch in [7, n] {
        for threads in [1, 3] {
            let scores = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| train::validation_scores::<Cpu>(model, &val, batch, &device))
                .unwrap();
            assert_eq!(
                scores.accuracy, accuracy,
                "batch {batch}, {threads} threads"
            );
            assert!(
                (scores.loss - loss).abs() < 1e-4 * loss,
                "batch {batch}, {threads} threads: loss {} against {loss}",
                scores.loss
            );
        }
    }
}

#[test]
fn resume_equals_uninterrupted_training() {
    let (train, val) = (toy(40, 3), toy(16, 4));
    let device = Default::default();
    let adam = OptimiserConfig::Adam {
        learning_rate: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };
    let opts = options(ModelKind::RotInvCnn, 3, adam, true);
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = fit::<CpuAutodiff>(&device, &opts, &train, &val, whole_dir.path(), false).unwrap();
    assert!(whole.complete);

    let parts_dir = tempfile::tempdir().unwrap();
    let cut = FitOptions {
        interrupt_after: Some(1),
        ..opts.clone()
    };
    let first = fit::<CpuAutodiff>(&device, &cut, &train, &val, parts_dir.path(), false).unwrap();
    assert!(!first.complete);
    assert_eq!(first.history.len(), 1);
    let resumed = fit::<CpuAutodiff>(&device, &opts, &train, &val, parts_dir.path(), true).unwrap();
    assert_eq!(curves(&resumed.history), curves(&whole.history));
    let (p, q) = (
        whole
            .model
            .predict(&val.stamps.range(0..val.len()).unwrap(), 8, &device),
        resumed
            .model
            .predict(&val.stamps.range(0..val.len()).unwrap(), 8, &device),
    );
    assert_eq!(bits(&p), bits(&q));

    // Resuming under another configuration is refused.
    let other = FitOptions {
        fingerprint: "other".into(),
        ..opts.clone()
    };
    let err = fit::<CpuAutodiff>(&device, &other, &train, &val, parts_dir.path(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("state.json"), "{err}");
}

#[test]
fn sgd_step_decay_and_early_stopping() {
    let sgd = OptimiserConfig::Sgd {
        learning_rate: 0.1,
        momentum: 0.9,
        step_epochs: 2,
        gamma: 0.5,
    };
    assert_eq!(train::learning_rate(&sgd, 0), 0.1);
    assert_eq!(train::learning_rate(&sgd, 3), 0.05);
    assert_eq!(train::learning_rate(&sgd, 4), 0.025);
    // A learning rate of zero never improves: early stopping after `patience` epochs.
    let frozen = OptimiserConfig::Sgd {
        learning_rate: 0.0,
        momentum: 0.0,
        step_epochs: 1,
        gamma: 1.0,
    };
    let mut opts = options(ModelKind::SeedCnn, 10, frozen, false);
    opts.train.early_stopping_patience = Some(2);
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (toy(32, 5), toy(16, 6));
    let fitted =
        fit::<CpuAutodiff>(&Default::default(), &opts, &train, &val, dir.path(), false).unwrap();
    assert!(fitted.stopped_early);
    assert_eq!(fitted.history.len(), 3);
    assert_eq!(fitted.kept_epoch, 1);
}

fn stamp_set(examples: &Examples, normalisation: NormalisationSpec) -> StampSet {
    let n = examples.len();
    StampSet::from_parts(
        (0..n).map(|i| format!("cand{i:04}")).collect(),
        examples.labels.iter().map(|&l| Some(l)).collect(),
        examples.stamps.clone(),
        vec![5.0; n],
        FeatureMeta::new(normalisation, "ingest-hash".into()),
    )
}

#[test]
fn run_writes_every_output_and_the_model_refuses_other_features() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = toy_pipeline(dir.path());
    pipeline.train.epochs = 2;
    pipeline.train.batch_size = 16;
    let set = stamp_set(&toy(60, 7), NormalisationSpec::MinmaxPerStamp);
    let features_path = dir.path().join("train.arrow");
    std::fs::write(&features_path, b"stands in for the features file").unwrap();
    let report = train::run_on_set(&pipeline, &set, &features_path, false, false, None).unwrap();
    assert_eq!(report.history.len(), 2);
    let out = pipeline.stage_dir(Stage::Train);
    for name in [
        "model.mpk",
        "model.json",
        "history.csv",
        "loss.png",
        "accuracy.png",
        "split.json",
        "pipeline.toml",
        "manifest.json",
    ] {
        assert!(out.join(name).exists(), "{name} missing");
    }
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert!(history.starts_with(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n"
    ));
    assert_eq!(history.lines().count(), 3);
    let split = train::ValidationSplit::read(&out).unwrap();
    assert_eq!(split.validation_ids.len(), 20);
    assert!(
        split
            .train_ids
            .iter()
            .all(|id| !split.validation_ids.contains(id))
    );

    let device = Default::default();
    let (model, meta) =
        model::metadata::load::<Cpu>(&out, &train::input_spec(&set), &device).unwrap();
    assert_eq!(meta.parameters, 41_986);
    assert_eq!(meta.threshold, 0.5);
    assert_eq!(
        model.predict(&set.stamps.get(0).unwrap(), 1, &device).len(),
        1
    );
    let zscore = stamp_set(
        &toy(4, 8),
        NormalisationSpec::Zscore {
            mean: [0.0; 4],
            std: [1.0; 4],
        },
    );
    let err = model::metadata::load::<Cpu>(&out, &train::input_spec(&zscore), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.json") && err.contains("normalisation"),
        "{err}"
    );
}

#[test]
fn unlabelled_features_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = toy_pipeline(dir.path());
    let mut set = stamp_set(&toy(8, 9), NormalisationSpec::None);
    set.labels[3] = None;
    let err = train::run_on_set(
        &pipeline,
        &set,
        Path::new("features/train.arrow"),
        false,
        false,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no label"), "{err}");
}
