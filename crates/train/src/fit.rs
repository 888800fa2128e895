//! The training loop: seeded, checkpointed after every epoch, resumable bit-identically.
//!
//! Reproducibility: the model is initialised right after `B::seed(seed)`; each epoch's
//! shuffling, augmentation and dropout draw from a ChaCha8 stream seeded by `(seed, epoch)`, so
//! a resumed run needs no RNG state and repeats an uninterrupted run exactly (on the CPU). The
//! backend RNG is process-global, so fits within one process are serialised by a lock.

use std::path::Path;
use std::sync::Mutex;

use burn::module::AutodiffModule;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, Optimizer, RmsPropConfig, SgdConfig};
use burn::prelude::*;
use features::Stamps;
use hits_core::config::{ModelConfig, OptimiserConfig, TrainConfig};
use model::Classifier;
use model::channels_last::TrainBackend;

use crate::TrainError;
use crate::checkpoint::Checkpoint;
use crate::epoch::{EpochRow, EpochRunner};
use crate::scores::class_weights;

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

/// The backend RNG is global to the process: one fit at a time.
static FIT_LOCK: Mutex<()> = Mutex::new(());

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
    let checkpoint = Checkpoint::open(checkpoint_dir, &opts.fingerprint, resume)?;
    let epochs = EpochRunner {
        device,
        opts,
        train,
        val,
        weights: class_weights(&train.labels, opts.train.class_weights),
    };
    // On one of rayon's workers: each parallel kernel then runs partly on the calling thread
    // and wakes one other, where from the main thread it woke both and slept itself.
    rayon::scope(|_| fit_from(&epochs, checkpoint, model))
}

/// Build the optimiser and run [`fit_with`].
fn fit_from<B: TrainBackend>(
    epochs: &EpochRunner<'_, B>,
    checkpoint: Checkpoint,
    model: Classifier<B>,
) -> Result<Fitted<B::InnerBackend>, TrainError> {
    // The one place the optimiser is built: each arm is a different type.
    match epochs.opts.train.optimiser {
        OptimiserConfig::Rmsprop { rho, epsilon, .. } => {
            // Keras' RMSprop has no momentum (burn's default is 0.9).
            let optim = RmsPropConfig::new()
                .with_alpha(rho as f32)
                .with_epsilon(epsilon as f32)
                .with_momentum(0.0);
            fit_with(epochs, checkpoint, model, optim.init())
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
            fit_with(epochs, checkpoint, model, optim.init())
        }
        OptimiserConfig::Sgd { momentum, .. } => {
            let momentum = (momentum > 0.0).then_some(MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov: false,
            });
            fit_with(
                epochs,
                checkpoint,
                model,
                SgdConfig::new().with_momentum(momentum).init(),
            )
        }
    }
}

/// The epoch loop from wherever `checkpoint` stands, with early stopping, then the model to
/// keep.
fn fit_with<B, O>(
    epochs: &EpochRunner<'_, B>,
    mut checkpoint: Checkpoint,
    model: Classifier<B>,
    optim: O,
) -> Result<Fitted<B::InnerBackend>, TrainError>
where
    B: TrainBackend,
    O: Optimizer<Classifier<B>, B>,
{
    let (opts, device) = (epochs.opts, epochs.device);
    let cfg = &opts.train;
    let (mut model, mut optim) = checkpoint.restore(model, optim, device)?;
    let mut complete = true;
    while checkpoint.state.epochs_done < cfg.epochs && !checkpoint.state.stopped_early {
        let epoch = checkpoint.state.epochs_done;
        if opts.interrupt_after.is_some_and(|n| epoch >= n) {
            complete = false;
            break;
        }
        let outcome = epochs.run(epoch, model, &mut optim)?;
        model = outcome.model;
        checkpoint.save(&model, &optim, outcome.valid, outcome.row)?;
        let done = epoch + 1;
        if let Some(patience) = cfg.early_stopping_patience
            && done - checkpoint.state.best_epoch >= patience
            && done < cfg.epochs
        {
            tracing::info!("early stopping: no lower validation loss for {patience} epochs");
            checkpoint.state.stopped_early = true;
        }
        checkpoint.commit()?;
    }
    let state = &checkpoint.state;
    let (model, kept_epoch) = if cfg.early_stopping_patience.is_some() && state.best_epoch > 0 {
        let fresh = Classifier::<B::InnerBackend>::init(&opts.model, device);
        (checkpoint.load_best(fresh, device)?, state.best_epoch)
    } else {
        (model.valid(), state.epochs_done)
    };
    Ok(Fitted {
        model,
        history: checkpoint.state.history,
        kept_epoch,
        stopped_early: checkpoint.state.stopped_early,
        complete,
    })
}
