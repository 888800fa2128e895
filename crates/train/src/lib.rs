//! Stage 3, `train`: fit a CNN on the feature cache.
//!
//! Reads `<artifacts>/features/<train.split>.arrow` (checked against the features manifest),
//! holds out a stratified, seeded validation set (written to `split.json` so `evaluate` uses
//! the same one), trains with checkpoints after every epoch (`--resume` continues from the last
//! complete one), and writes to `<artifacts>/train/`: `model.mpk` + `model.json`,
//! `history.csv`, `loss.png`, `accuracy.png`, `split.json`, `pipeline.toml` and, last,
//! `manifest.json`.

pub mod augment;
mod checkpoint;
mod epoch;
mod error;
pub mod fit;
mod scores;
pub mod split;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use features::StampSet;
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::manifest::Manifest;
use model::channels_last::TrainBackend;
use model::metadata::{self, InputSpec, ModelMetadata};

pub use epoch::{EpochRow, learning_rate};
pub use error::TrainError;
pub use fit::{Examples, FitOptions, Fitted, fit};
pub use scores::{ValidationScores, validation_scores};
pub use split::ValidationSplit;

pub const STAGE: Stage = Stage::Train;
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const HISTORY_FILE: &str = "history.csv";
/// The training curves `train` draws (and `evaluate` copies beside its report).
pub const LOSS_PNG: &str = "loss.png";
pub const ACCURACY_PNG: &str = "accuracy.png";
pub const CURVE_PNGS: [&str; 2] = [LOSS_PNG, ACCURACY_PNG];

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub history: Vec<EpochRow>,
    pub kept_epoch: usize,
    pub stopped_early: bool,
    pub complete: bool,
    pub backend: &'static str,
    pub out_dir: PathBuf,
}

/// The features file of the training split: what decides whether training is up to date.
pub fn features_path(pipeline: &Pipeline) -> PathBuf {
    features::split_path(pipeline, &pipeline.train.split)
}

/// Train as `pipeline` says on its training split's features.
pub fn run(pipeline: &Pipeline, resume: bool) -> Result<TrainReport, TrainError> {
    let features_path = features_path(pipeline);
    let set = features::open_split(pipeline, &pipeline.train.split)?;
    tracing::info!("{}: {} candidates", features_path.display(), set.len());
    run_on_set(pipeline, &set, &features_path, resume, true, None)
}

/// The features' description as the model metadata records it.
pub fn input_spec(set: &StampSet) -> InputSpec {
    InputSpec {
        shape: set.meta.shape,
        channels: set.meta.channels.clone(),
        normalisation: serde_json::to_value(&set.meta.normalisation)
            .expect("normalisation serialises"),
    }
}

/// Pick rows of `set` as labelled examples.
fn examples(set: &StampSet, rows: &[usize], labels: &[u8]) -> Examples {
    Examples {
        stamps: set.stamps.select(rows),
        labels: rows.iter().map(|&i| labels[i]).collect(),
    }
}

/// [`run`] on features already read; `features_path` is recorded in the manifest.
/// `interrupt_after` stops after that many epochs as if killed (tests).
pub fn run_on_set(
    pipeline: &Pipeline,
    set: &StampSet,
    features_path: &Path,
    resume: bool,
    progress: bool,
    interrupt_after: Option<usize>,
) -> Result<TrainReport, TrainError> {
    let data_error = |message: String| TrainError::Data {
        path: features_path.to_path_buf(),
        message,
    };
    let labels: Vec<u8> = set
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Some(l @ (0 | 1)) => Ok(*l),
            Some(l) => Err(data_error(format!(
                "candidate {} has label {l}, expected 0 or 1",
                set.ids[i]
            ))),
            None => Err(data_error(format!(
                "candidate {} has no label: train needs a labelled split",
                set.ids[i]
            ))),
        })
        .collect::<Result<_, _>>()?;
    for class in [0, 1] {
        if labels.iter().filter(|&&l| l == class).count() < 2 {
            return Err(data_error(format!(
                "fewer than 2 candidates of class {class}: cannot train and validate"
            )));
        }
    }
    let cfg = &pipeline.train;
    let (train_rows, val_rows) = split::stratified(&labels, cfg.validation_fraction, pipeline.seed);
    let out_dir = pipeline.stage_dir(STAGE);
    let split = ValidationSplit {
        seed: pipeline.seed,
        validation_fraction: cfg.validation_fraction,
        features_hash: set.file_hash.clone(),
        train_ids: train_rows.iter().map(|&i| set.ids[i].clone()).collect(),
        validation_ids: val_rows.iter().map(|&i| set.ids[i].clone()).collect(),
        train_rows,
        validation_rows: val_rows,
    };
    let train = examples(set, &split.train_rows, &labels);
    let val = examples(set, &split.validation_rows, &labels);
    tracing::info!(
        "{} training, {} validation candidates; {:?}, {} epochs of batch {}",
        train.len(),
        val.len(),
        pipeline.model.kind(),
        cfg.epochs,
        cfg.batch_size
    );
    let opts = FitOptions {
        model: pipeline.model.clone(),
        train: cfg.clone(),
        seed: pipeline.seed,
        progress,
        fingerprint: format!("{}:{}", pipeline.config_hash(), set.file_hash),
        interrupt_after,
    };
    let task = Task {
        opts,
        train,
        val,
        out_dir: out_dir.clone(),
        resume,
        set,
        features_path,
        pipeline,
        split,
    };
    model::backend::dispatch(task)
}

struct Task<'a> {
    opts: FitOptions,
    train: Examples,
    val: Examples,
    out_dir: PathBuf,
    resume: bool,
    set: &'a StampSet,
    features_path: &'a Path,
    pipeline: &'a Pipeline,
    split: ValidationSplit,
}

impl model::backend::BackendTask for Task<'_> {
    type Output = Result<TrainReport, TrainError>;

    fn run<B: TrainBackend>(self, device: B::Device, backend: &'static str) -> Self::Output {
        let checkpoint = self.out_dir.join(CHECKPOINT_DIR);
        let fitted = fit::<B>(
            &device,
            &self.opts,
            &self.train,
            &self.val,
            &checkpoint,
            self.resume,
        )?;
        let report = TrainReport {
            history: fitted.history.clone(),
            kept_epoch: fitted.kept_epoch,
            stopped_early: fitted.stopped_early,
            complete: fitted.complete,
            backend,
            out_dir: self.out_dir.clone(),
        };
        if !fitted.complete {
            return Ok(report);
        }
        write_outputs(&self, &fitted)?;
        Ok(report)
    }
}

fn write_outputs<B: burn::prelude::Backend>(
    task: &Task<'_>,
    fitted: &Fitted<B>,
) -> Result<(), TrainError> {
    let dir = &task.out_dir;
    let meta = ModelMetadata::new(
        &fitted.model,
        &task.opts.model,
        input_spec(task.set),
        &task.set.file_hash,
    );
    metadata::save(&fitted.model, &meta, dir)?;
    let history = dir.join(HISTORY_FILE);
    hits_core::io::write_bytes_atomic(&history, history_csv(&fitted.history).as_bytes())?;
    let curves = write_curves(dir, &fitted.history)?;
    let split = task.split.write(dir)?;
    let used = task.pipeline.write_used(dir)?;
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), task.pipeline);
    // Hashed once already, when read.
    manifest.add_input_digest(task.set.digest(task.features_path)?);
    for path in [
        dir.join(metadata::RECORD_FILE),
        dir.join(metadata::METADATA_FILE),
        history,
        split,
        used,
    ]
    .into_iter()
    .chain(curves)
    {
        manifest.add_output(&path)?;
    }
    manifest.write(dir, hits_core::stage::elapsed_seconds())?;
    tracing::info!(
        "kept the model of epoch {} ({} parameters) in {}",
        fitted.kept_epoch,
        meta.parameters,
        dir.display()
    );
    Ok(())
}

pub fn history_csv(history: &[EpochRow]) -> String {
    let mut csv = String::from(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n",
    );
    for r in history {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{:.3}",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            r.val_loss,
            r.val_accuracy,
            r.learning_rate,
            r.seconds
        );
    }
    csv
}

/// `loss.png` and `accuracy.png`: training and validation curves per epoch.
fn write_curves(dir: &Path, history: &[EpochRow]) -> Result<Vec<PathBuf>, TrainError> {
    let series = |f: fn(&EpochRow) -> f64| {
        history
            .iter()
            .map(|r| (r.epoch as f64, f(r)))
            .collect::<Vec<_>>()
    };
    let mut paths = Vec::new();
    for (name, title, train, val) in [
        (
            LOSS_PNG,
            "cross-entropy loss",
            series(|r| r.train_loss),
            series(|r| r.val_loss),
        ),
        (
            ACCURACY_PNG,
            "accuracy",
            series(|r| r.train_accuracy),
            series(|r| r.val_accuracy),
        ),
    ] {
        let path = dir.join(name);
        plots::line_chart(
            &path,
            title,
            "epoch",
            title,
            &[("train", &train), ("validation", &val)],
            false,
            false,
        )?;
        paths.push(path);
    }
    Ok(paths)
}
