//! The training loop: seeded, checkpointed after every epoch, resumable bit-identically.
//!
//! Reproducibility: the model is initialised right after `B::seed(seed)`; each epoch's
//! shuffling, augmentation and dropout draw from a ChaCha8 stream seeded by `(seed, epoch)`, so
//! a resumed run needs no RNG state and repeats an uninterrupted run exactly (on the CPU). The
//! backend RNG is process-global, so fits within one process are serialised by a lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer, RmsPropConfig, SgdConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::activation::log_softmax;
use features::Stamps;
use hits_core::TENSOR_LEN;
use hits_core::config::{ModelConfig, OptimiserConfig, TrainConfig};
use hits_core::confusion::Confusion;
use indicatif::{ProgressBar, ProgressStyle};
use model::channels_last::{ChannelsLastOps, TrainBackend};
use model::{Classifier, stamps_tensor};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::augment::{D4, transform};

/// Labelled stamps, read batch by batch (from the features file, or from memory).
#[derive(Debug, Clone)]
pub struct Examples {
    /// (N, 4, 21, 21).
    pub stamps: Stamps,
    /// 0 bogus, 1 real.
    pub labels: Vec<u8>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One row of `history.csv`; `epoch` counts from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub seed: u64,
    /// Show an indicatif bar per epoch.
    pub progress: bool,
    /// Identifies the configuration and data; a checkpoint resumes only under the same one.
    pub fingerprint: String,
    /// Return after this many epochs as if interrupted (tests of `--resume`).
    pub interrupt_after: Option<usize>,
}

/// The result of a fit: the model to keep (the best by validation loss when early stopping is
/// on, else the last), on the inference backend.
pub struct Fitted<B: Backend> {
    pub model: Classifier<B>,
    pub history: Vec<EpochRow>,
    /// 1-based epoch of `model`.
    pub kept_epoch: usize,
    pub stopped_early: bool,
    /// False when `interrupt_after` cut the run short.
    pub complete: bool,
}

const STATE_FILE: &str = "state.json";

/// What `checkpoint/state.json` records; the `.mpk` files it names hold the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    epochs_done: usize,
    history: Vec<EpochRow>,
    best_epoch: usize,
    best_val_loss: f64,
    stopped_early: bool,
    /// How each epoch's RNG is derived (no RNG state needs saving).
    rng: String,
}

const RNG_SCHEME: &str = "ChaCha8Rng::seed_from_u64(epoch_seed(seed, epoch)) per epoch";

fn model_file(epoch: usize) -> String {
    format!("model-{epoch:03}.mpk")
}
fn optimiser_file(epoch: usize) -> String {
    format!("optimiser-{epoch:03}.mpk")
}
fn best_file(epoch: usize) -> String {
    format!("best-{epoch:03}.mpk")
}

/// The backend RNG is global to the process: one fit at a time.
static FIT_LOCK: Mutex<()> = Mutex::new(());

/// A well-mixed seed for epoch `epoch` (SplitMix64 of the pair).
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The learning rate of 0-based `epoch`.
pub fn learning_rate(optimiser: &OptimiserConfig, epoch: usize) -> f64 {
    match *optimiser {
        OptimiserConfig::Rmsprop { learning_rate, .. }
        | OptimiserConfig::Adam { learning_rate, .. } => learning_rate,
        OptimiserConfig::Sgd {
            learning_rate,
            step_epochs,
            gamma,
            ..
        } => learning_rate * gamma.powi((epoch / step_epochs.max(1)) as i32),
    }
}

/// Train a model of `opts.model` on `train`, validating on `val` after every epoch and
/// checkpointing to `checkpoint_dir`. With `resume`, continue from the last complete epoch.
pub fn fit<B: TrainBackend>(
    device: &B::Device,
    opts: &FitOptions,
    train: &Examples,
    val: &Examples,
    checkpoint_dir: &Path,
    resume: bool,
) -> Result<Fitted<B::InnerBackend>, TrainError> {
    let _guard = FIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, opts.seed);
    let model = Classifier::<B>::init(&opts.model, device);
    match opts.train.optimiser {
        OptimiserConfig::Rmsprop { rho, epsilon, .. } => {
            // Keras' RMSprop has no momentum (burn's default is 0.9).
            let optim = RmsPropConfig::new()
                .with_alpha(rho as f32)
                .with_epsilon(epsilon as f32)
                .with_momentum(0.0);
            fit_with(
                device,
                opts,
                train,
                val,
                checkpoint_dir,
                resume,
                model,
                optim.init(),
            )
        }
        OptimiserConfig::Adam {
            beta1,
            beta2,
            epsilon,
            ..
        } => {
            let optim = AdamConfig::new()
                .with_beta_1(beta1 as f32)
                .with_beta_2(beta2 as f32)
                .with_epsilon(epsilon as f32);
            fit_with(
                device,
                opts,
                train,
                val,
                checkpoint_dir,
                resume,
                model,
                optim.init(),
            )
        }
        OptimiserConfig::Sgd { momentum, .. } => {
            let momentum = (momentum > 0.0).then_some(MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov: false,
            });
            let optim = SgdConfig::new().with_momentum(momentum);
            fit_with(
                device,
                opts,
                train,
                val,
                checkpoint_dir,
                resume,
                model,
                optim.init(),
            )
        }
    }
}

fn save_record<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<(), TrainError> {
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .record(record, ())
        .map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
    hits_core::io::write_bytes_atomic(path, &bytes)?;
    Ok(())
}

fn load_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| hits_core::CoreError::io(path, e))?;
    let load = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        NamedMpkBytesRecorder::<FullPrecisionSettings>::new().load(bytes, device)
    }));
    match load {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(e)) => Err(TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        }),
        Err(_) => Err(TrainError::Checkpoint {
            path: path.into(),
            message: "corrupt checkpoint record".into(),
        }),
    }
}

/// Per-sample loss weights: inverse class frequency (n / (2 n_c)) or all ones.
fn class_weights(labels: &[u8], balanced: bool) -> [f32; 2] {
    if !balanced {
        return [1.0, 1.0];
    }
    let n = labels.len() as f32;
    let real = labels.iter().filter(|&&l| l == 1).count() as f32;
    [n / (2.0 * (n - real).max(1.0)), n / (2.0 * real.max(1.0))]
}

/// Mean weighted cross-entropy of `(N, 2)` logits against one-hot targets, and the number of
/// correct argmax predictions.
fn loss_and_correct<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[u8],
    weights: [f32; 2],
) -> (Tensor<B, 1>, usize) {
    let device = logits.device();
    let n = labels.len();
    let mut target = Vec::with_capacity(2 * n);
    for &l in labels {
        let w = weights[l as usize];
        target.extend_from_slice(&if l == 1 { [0.0, w] } else { [w, 0.0] });
    }
    let target = Tensor::<B, 2>::from_data(TensorData::new(target, [n, 2]), &device);
    let values: Vec<f32> = logits
        .to_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 logits");
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| u8::from(values[2 * i + 1] > values[2 * i]) == l)
        .count();
    let loss = log_softmax(logits, 1)
        .mul(target)
        .sum()
        .neg()
        .div_scalar(n as f32);
    (loss, correct)
}

/// Validation scores: unweighted mean loss, accuracy and F1 of the real class at p = 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationScores {
    pub loss: f64,
    pub accuracy: f64,
    pub f1: f64,
}

/// [`ValidationScores`] of `model` (inference mode) on `data`.
pub fn validation_scores<B: ChannelsLastOps>(
    model: &Classifier<B>,
    data: &Examples,
    batch: usize,
    device: &B::Device,
) -> Result<ValidationScores, TrainError> {
    if data.is_empty() {
        return Ok(ValidationScores {
            loss: f64::NAN,
            accuracy: f64::NAN,
            f1: f64::NAN,
        });
    }
    let (mut loss, mut correct) = (0.0, 0);
    let mut confusion = Confusion::default();
    let batch = batch.max(1);
    for (k, labels) in data.labels.chunks(batch).enumerate() {
        let start = k * batch;
        let x = stamps_tensor::<B>(&data.stamps.range(start..start + labels.len())?, device);
        let logits = model.forward(x);
        let values: Vec<f32> = logits
            .to_data()
            .convert::<f32>()
            .into_vec()
            .expect("f32 logits");
        for (i, &l) in labels.iter().enumerate() {
            confusion.add(l == 1, values[2 * i + 1] > values[2 * i]);
        }
        let (l, c) = loss_and_correct(logits, labels, [1.0, 1.0]);
        loss += l.into_scalar().elem::<f64>() * labels.len() as f64;
        correct += c;
    }
    Ok(ValidationScores {
        loss: loss / data.len() as f64,
        accuracy: correct as f64 / data.len() as f64,
        f1: confusion.f1(),
    })
}

#[allow(clippy::too_many_arguments)]
fn fit_with<B, O>(
    device: &B::Device,
    opts: &FitOptions,
    train: &Examples,
    val: &Examples,
    dir: &Path,
    resume: bool,
    mut model: Classifier<B>,
    mut optim: O,
) -> Result<Fitted<B::InnerBackend>, TrainError>
where
    B: TrainBackend,
    O: Optimizer<Classifier<B>, B>,
{
    let cfg = &opts.train;
    let state_path = dir.join(STATE_FILE);
    let mut state = CheckpointState {
        fingerprint: opts.fingerprint.clone(),
        epochs_done: 0,
        history: Vec::new(),
        best_epoch: 0,
        best_val_loss: f64::INFINITY,
        stopped_early: false,
        rng: RNG_SCHEME.into(),
    };
    // A run killed before its first checkpoint has nothing to resume: an unattended
    // `--resume` then simply starts at the beginning.
    let resume = resume && {
        let found = state_path.exists();
        if !found {
            tracing::warn!(
                "no checkpoint in {}: starting from the first epoch",
                dir.display()
            );
        }
        found
    };
    if resume {
        state = hits_core::io::read_json(&state_path)?;
        if state.fingerprint != opts.fingerprint {
            return Err(TrainError::Checkpoint {
                path: state_path,
                message:
                    "written with another configuration or other features: run without --resume"
                        .into(),
            });
        }
        if state.epochs_done > 0 {
            model = model.load_record(load_record(
                &dir.join(model_file(state.epochs_done)),
                device,
            )?);
            optim = optim.load_record(load_record(
                &dir.join(optimiser_file(state.epochs_done)),
                device,
            )?);
        }
        tracing::info!(
            "resuming after epoch {} of {}",
            state.epochs_done,
            cfg.epochs
        );
    } else if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| hits_core::CoreError::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| hits_core::CoreError::io(dir, e))?;

    let weights = class_weights(&train.labels, cfg.class_weights);
    let batch = cfg.batch_size;
    let batches = train.len().div_ceil(batch);
    let mut complete = true;
    let mut buffer = vec![0.0f32; batch * TENSOR_LEN];
    let mut read = Vec::with_capacity(batch * TENSOR_LEN);
    let mut labels = Vec::with_capacity(batch);
    let mut epoch = state.epochs_done;
    while epoch < cfg.epochs && !state.stopped_early {
        if opts.interrupt_after.is_some_and(|n| epoch >= n) {
            complete = false;
            break;
        }
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(opts.seed, epoch));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        B::seed(device, rng.next_u64());
        let lr = learning_rate(&cfg.optimiser, epoch);
        let bar = if opts.progress {
            ProgressBar::new(batches as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for rows in order.chunks(batch) {
            labels.clear();
            read.clear();
            train.stamps.gather(rows, &mut read)?;
            for (j, (&i, stamp)) in rows.iter().zip(read.chunks_exact(TENSOR_LEN)).enumerate() {
                let t = if cfg.augment {
                    rng.random_range(0..D4)
                } else {
                    0
                };
                transform(stamp, t, &mut buffer[j * TENSOR_LEN..(j + 1) * TENSOR_LEN]);
                labels.push(train.labels[i]);
            }
            let x = stamps_tensor::<B>(&buffer[..rows.len() * TENSOR_LEN], device);
            let (loss, c) = loss_and_correct(model.forward(x), &labels, weights);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            loss_sum += loss.into_scalar().elem::<f64>() * rows.len() as f64;
            model = optim.step(lr, model, grads);
            correct += c;
            seen += rows.len();
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {:.4}",
                loss_sum / seen as f64,
                correct as f64 / seen as f64
            ));
        }
        bar.finish_and_clear();
        let valid = model.valid();
        let scores = validation_scores(&valid, val, 256, device)?;
        let (val_loss, val_accuracy) = (scores.loss, scores.accuracy);
        let row = EpochRow {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            learning_rate: lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            "epoch {}/{}: loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} F1 {:.4} | lr {:.2e} | {:.1}s",
            row.epoch,
            cfg.epochs,
            row.train_loss,
            row.train_accuracy,
            row.val_loss,
            row.val_accuracy,
            scores.f1,
            lr,
            row.seconds
        );
        epoch += 1;
        // Checkpoint: tensors first under epoch-numbered names, then the state naming them.
        save_record(model.clone().into_record(), &dir.join(model_file(epoch)))?;
        save_record(optim.to_record(), &dir.join(optimiser_file(epoch)))?;
        if val_loss < state.best_val_loss || state.best_epoch == 0 {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            save_record(valid.into_record(), &dir.join(best_file(epoch)))?;
        }
        state.epochs_done = epoch;
        state.history.push(row);
        if let Some(patience) = cfg.early_stopping_patience
            && epoch - state.best_epoch >= patience
            && epoch < cfg.epochs
        {
            tracing::info!("early stopping: no lower validation loss for {patience} epochs");
            state.stopped_early = true;
        }
        hits_core::io::write_json_atomic(&state_path, &state)?;
        remove_stale(dir, &state);
    }
    let valid_device = device;
    let (model, kept_epoch) = if cfg.early_stopping_patience.is_some() && state.best_epoch > 0 {
        let record = load_record(&dir.join(best_file(state.best_epoch)), valid_device)?;
        (
            Classifier::<B::InnerBackend>::init(&opts.model, valid_device).load_record(record),
            state.best_epoch,
        )
    } else {
        (model.valid(), state.epochs_done)
    };
    Ok(Fitted {
        model,
        history: state.history,
        kept_epoch,
        stopped_early: state.stopped_early,
        complete,
    })
}

/// Delete checkpoint files that `state` no longer names.
fn remove_stale(dir: &Path, state: &CheckpointState) {
    let keep = [
        model_file(state.epochs_done),
        optimiser_file(state.epochs_done),
        best_file(state.best_epoch),
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".mpk") && !keep.contains(&name) {
            let path: PathBuf = entry.path();
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("{}: could not remove stale checkpoint: {e}", path.display());
            }
        }
    }
}
