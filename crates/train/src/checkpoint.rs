//! The checkpoint directory: `state.json` plus the epoch-numbered `.mpk` records it names.
//!
//! After every epoch the model and optimiser records are written first, then the state that
//! names them, so a run killed at any point leaves a state whose files all exist.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::epoch::EpochRow;

const STATE_FILE: &str = "state.json";

/// How each epoch's RNG is derived (no RNG state needs saving).
const RNG_SCHEME: &str = "ChaCha8Rng::seed_from_u64(epoch_seed(seed, epoch)) per epoch";

/// What `checkpoint/state.json` records; the `.mpk` files it names hold the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    fingerprint: String,
    pub(crate) epochs_done: usize,
    pub(crate) history: Vec<EpochRow>,
    pub(crate) best_epoch: usize,
    best_val_loss: f64,
    pub(crate) stopped_early: bool,
    rng: String,
}

fn model_file(epoch: usize) -> String {
    format!("model-{epoch:03}.mpk")
}
fn optimiser_file(epoch: usize) -> String {
    format!("optimiser-{epoch:03}.mpk")
}
fn best_file(epoch: usize) -> String {
    format!("best-{epoch:03}.mpk")
}

/// A checkpoint directory and the state of the run it holds.
pub(crate) struct Checkpoint {
    dir: PathBuf,
    pub(crate) state: CheckpointState,
}

impl Checkpoint {
    /// With `resume` and a `state.json` in `dir`, the run it records (refused when
    /// `fingerprint` differs); otherwise an empty directory for a new run. A run killed before
    /// its first checkpoint has nothing to resume: an unattended `--resume` then simply starts
    /// at the beginning.
    pub(crate) fn open(dir: &Path, fingerprint: &str, resume: bool) -> Result<Self, TrainError> {
        let state_path = dir.join(STATE_FILE);
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
        let state = if resume {
            let state: CheckpointState = hits_core::io::read_json(&state_path)?;
            if state.fingerprint != fingerprint {
                return Err(TrainError::Checkpoint {
                    path: state_path,
                    message:
                        "written with another configuration or other features: run without --resume"
                            .into(),
                });
            }
            tracing::info!("resuming after epoch {}", state.epochs_done);
            state
        } else {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| hits_core::CoreError::io(dir, e))?;
            }
            CheckpointState {
                fingerprint: fingerprint.into(),
                epochs_done: 0,
                history: Vec::new(),
                best_epoch: 0,
                best_val_loss: f64::INFINITY,
                stopped_early: false,
                rng: RNG_SCHEME.into(),
            }
        };
        std::fs::create_dir_all(dir).map_err(|e| hits_core::CoreError::io(dir, e))?;
        Ok(Self {
            dir: dir.into(),
            state,
        })
    }

    /// `model` and `optim` as the last complete epoch left them (unchanged before the first).
    pub(crate) fn restore<B, M, O>(
        &self,
        model: M,
        optim: O,
        device: &B::Device,
    ) -> Result<(M, O), TrainError>
    where
        B: burn::tensor::backend::AutodiffBackend,
        M: burn::module::AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let epoch = self.state.epochs_done;
        if epoch == 0 {
            return Ok((model, optim));
        }
        let model = model.load_record(self.load(&model_file(epoch), device)?);
        let optim = optim.load_record(self.load(&optimiser_file(epoch), device)?);
        Ok((model, optim))
    }

    /// Record epoch `row.epoch`: its model and optimiser, `valid` as the best model when its
    /// validation loss is the lowest yet; [`Checkpoint::commit`] then writes the state.
    pub(crate) fn save<B, M, O>(
        &mut self,
        model: &M,
        optim: &O,
        valid: M::InnerModule,
        row: EpochRow,
    ) -> Result<(), TrainError>
    where
        B: burn::tensor::backend::AutodiffBackend,
        M: burn::module::AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let epoch = row.epoch;
        save_record(
            model.clone().into_record(),
            &self.dir.join(model_file(epoch)),
        )?;
        save_record(optim.to_record(), &self.dir.join(optimiser_file(epoch)))?;
        let state = &mut self.state;
        if row.val_loss < state.best_val_loss || state.best_epoch == 0 {
            state.best_val_loss = row.val_loss;
            state.best_epoch = epoch;
            save_record(valid.into_record(), &self.dir.join(best_file(epoch)))?;
        }
        state.epochs_done = epoch;
        state.history.push(row);
        Ok(())
    }

    /// Write the state (after [`Checkpoint::save`] and any change to `stopped_early`) and
    /// delete the records it no longer names.
    pub(crate) fn commit(&self) -> Result<(), TrainError> {
        hits_core::io::write_json_atomic(&self.dir.join(STATE_FILE), &self.state)?;
        self.remove_stale();
        Ok(())
    }

    /// The best epoch's model, loaded into `model`.
    pub(crate) fn load_best<B: Backend, M: Module<B>>(
        &self,
        model: M,
        device: &B::Device,
    ) -> Result<M, TrainError> {
        Ok(model.load_record(self.load(&best_file(self.state.best_epoch), device)?))
    }

    fn load<B: Backend, R: Record<B>>(
        &self,
        file: &str,
        device: &B::Device,
    ) -> Result<R, TrainError> {
        load_record(&self.dir.join(file), device)
    }

    /// Delete checkpoint files that the state no longer names.
    fn remove_stale(&self) {
        let keep = [
            model_file(self.state.epochs_done),
            optimiser_file(self.state.epochs_done),
            best_file(self.state.best_epoch),
        ];
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mpk") && !keep.contains(&name) {
                let path = entry.path();
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!("{}: could not remove stale checkpoint: {e}", path.display());
                }
            }
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
