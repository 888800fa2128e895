//! One training epoch: shuffle, augment, step the optimiser batch by batch, then validate.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use hits_core::TENSOR_LEN;
use hits_core::config::OptimiserConfig;
use indicatif::{ProgressBar, ProgressStyle};
use model::channels_last::TrainBackend;
use model::{Classifier, stamps_tensor};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::augment::{D4, transform};
use crate::fit::{Examples, FitOptions};
use crate::scores::{loss_and_correct, validation_scores};

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

/// What every epoch of one fit reads.
pub(crate) struct EpochRunner<'a, B: TrainBackend> {
    pub(crate) device: &'a B::Device,
    pub(crate) opts: &'a FitOptions,
    pub(crate) train: &'a Examples,
    pub(crate) val: &'a Examples,
    /// Loss weights of bogus and real.
    pub(crate) weights: [f32; 2],
}

/// An epoch's model (for training on, and its inference copy) and its `history.csv` row.
pub(crate) struct EpochOutcome<B: TrainBackend> {
    pub(crate) model: Classifier<B>,
    pub(crate) valid: Classifier<B::InnerBackend>,
    pub(crate) row: EpochRow,
}

impl<B: TrainBackend> EpochRunner<'_, B> {
    /// Train 0-based `epoch` once over the training set, then score the validation set.
    pub(crate) fn run<O: Optimizer<Classifier<B>, B>>(
        &self,
        epoch: usize,
        mut model: Classifier<B>,
        optim: &mut O,
    ) -> Result<EpochOutcome<B>, TrainError> {
        let cfg = &self.opts.train;
        let started = Instant::now();
        // Shuffling, then the backend's dropout seed, then the augmentation: the order a
        // resumed run must repeat.
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(self.opts.seed, epoch));
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut rng);
        B::seed(self.device, rng.next_u64());
        let lr = learning_rate(&cfg.optimiser, epoch);
        let batch = cfg.batch_size;
        let bar = self.progress_bar(epoch, order.len().div_ceil(batch));
        let mut buffer = vec![0.0f32; batch * TENSOR_LEN];
        let mut read = Vec::with_capacity(batch * TENSOR_LEN);
        let mut labels = Vec::with_capacity(batch);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for rows in order.chunks(batch) {
            labels.clear();
            read.clear();
            self.train.stamps.gather(rows, &mut read)?;
            for (j, (&i, stamp)) in rows.iter().zip(read.chunks_exact(TENSOR_LEN)).enumerate() {
                let t = if cfg.augment {
                    rng.random_range(0..D4)
                } else {
                    0
                };
                transform(stamp, t, &mut buffer[j * TENSOR_LEN..(j + 1) * TENSOR_LEN]);
                labels.push(self.train.labels[i]);
            }
            let x = stamps_tensor::<B>(&buffer[..rows.len() * TENSOR_LEN], self.device);
            let (loss, c) = loss_and_correct(model.forward(x), &labels, self.weights);
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
        let scores = validation_scores(&valid, self.val, 256, self.device)?;
        let row = EpochRow {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: scores.loss,
            val_accuracy: scores.accuracy,
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
        Ok(EpochOutcome { model, valid, row })
    }

    fn progress_bar(&self, epoch: usize, batches: usize) -> ProgressBar {
        let bar = if self.opts.progress {
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
        bar.set_prefix(format!("{}/{}", epoch + 1, self.opts.train.epochs));
        bar
    }
}
