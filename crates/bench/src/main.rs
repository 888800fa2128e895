//! `bench`: how fast every stage is on this machine, written to `artifacts/bench/results.json`.
//!
//! `bench run` times the release stage binaries as child processes (wall time and each one's
//! peak RSS) on the default simulated set and on a large simulated set, trains the seed recipe,
//! the default recipe and a few epochs of the RotInvCnn recipe, and measures inference
//! throughput in process.
//! `bench compare` sets our figures beside the Keras peer's (`bench/peers/keras_seed.py`).
//! `bench study` compares the accuracy of recipes over several seeds on a large test set.

mod child;
mod compare;
mod cpu;
mod inference;
mod study;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::config::ModelKind;
use serde::Serialize;

use child::{ChildRun, run_binary, run_stage};

#[derive(Parser)]
#[command(about = "Speed of the hits-rb stages on this machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time ingest + features, training and inference; write the results JSON.
    Run(RunArgs),
    /// Our results beside the Keras peer's: a Markdown table and `peers.json`.
    Compare {
        /// Our results, one file per round (the best round of each figure counts).
        #[arg(long, required = true, num_args = 1..)]
        ours: Vec<PathBuf>,
        /// The peer's results, one file per round.
        #[arg(long, required = true, num_args = 1..)]
        keras: Vec<PathBuf>,
        #[arg(long, default_value = "artifacts/bench/peers.json")]
        out: PathBuf,
    },
    /// Train each pipeline with each seed and score every model on one large simulated set of
    /// an independent simulator seed: `study.json` and a Markdown table.
    Study {
        #[arg(long, num_args = 1.., default_values = ["pipelines/default.toml", "pipelines/seed.toml", "pipelines/rot_inv_cnn.toml"])]
        pipelines: Vec<PathBuf>,
        #[arg(long, num_args = 1.., default_values_t = [42, 7, 123, 1, 2])]
        seeds: Vec<u64>,
        /// Candidates in the study set.
        #[arg(long, default_value_t = 20_000)]
        candidates: usize,
        /// The simulator seed of the study set (the pipelines' own data use their `seed`).
        #[arg(long, default_value_t = 7)]
        data_seed: u64,
        #[arg(long, default_value = "artifacts/bench/study.json")]
        out: PathBuf,
    },
}

#[derive(Parser)]
struct RunArgs {
    /// The reference recipe (SeedCnn, RMSprop, batch 50, 15 epochs) and its data.
    #[arg(long, default_value = "pipelines/seed.toml")]
    seed_pipeline: PathBuf,
    /// Our default recipe (SeedCnn, augmented, Adam).
    #[arg(long, default_value = "pipelines/default.toml")]
    default_pipeline: PathBuf,
    /// Epochs of the default recipe to time (default: all of the recipe's; 0 skips it).
    #[arg(long)]
    default_epochs: Option<usize>,
    /// The Deep-HiTS-style recipe (RotInvCnn, pipelines/rot_inv_cnn.toml).
    #[arg(long, default_value = "pipelines/rot_inv_cnn.toml")]
    rot_inv_pipeline: PathBuf,
    /// Epochs of the RotInvCnn recipe to time (its per-epoch time is the figure; 0 skips it).
    #[arg(long, default_value_t = 2)]
    rot_inv_epochs: usize,
    /// Candidates in the large simulated set for ingest + features (0 skips it).
    #[arg(long, default_value_t = 250_000)]
    large: usize,
    /// Seconds each inference figure is measured for.
    #[arg(long, default_value_t = 3.0)]
    inference_seconds: f64,
    #[arg(long, default_value = "artifacts/bench/results.json")]
    out: PathBuf,
}

/// Everything `bench run` measured; the schema of `results.json`.
#[derive(Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: cpu::CpuPeak,
    pub ingest_features: Vec<IngestFeatures>,
    /// `predict` on the large set: CSV in, predictions out (empty without a large set).
    pub predict: Vec<PredictRun>,
    pub training: Vec<Training>,
    pub inference: Vec<inference::Throughput>,
    pub seed_cnn_gflops: Gflops,
}

#[derive(Debug, Serialize)]
pub struct IngestFeatures {
    pub set: String,
    pub candidates: usize,
    pub csv_megabytes: f64,
    pub ingest: ChildRun,
    pub features: ChildRun,
    pub candidates_per_second: f64,
    pub csv_megabytes_per_second: f64,
}

/// The whole `predict DIR` command on one set, as a survey team would run it nightly.
#[derive(Debug, Serialize)]
pub struct PredictRun {
    pub set: String,
    pub candidates: usize,
    pub csv_megabytes: f64,
    pub run: ChildRun,
    pub candidates_per_second: f64,
    pub csv_megabytes_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Training {
    pub recipe: String,
    pub model: ModelKind,
    pub train_candidates: usize,
    pub epochs: usize,
    /// Wall time of the `train` process: loading, every epoch, checkpoints and plots.
    pub seconds_total: f64,
    pub seconds_per_epoch: Vec<f64>,
    pub peak_rss_mib: f64,
    pub val_accuracy: f64,
}

#[derive(Debug, Serialize)]
pub struct Gflops {
    pub flops_per_candidate: u64,
    pub batch: usize,
    pub achieved_gflops: f64,
    /// Of [`cpu::CpuPeak::peak_gflops`], from the reported clock.
    pub fraction_of_peak: f64,
    /// Of [`cpu::CpuPeak::measured_peak_gflops`].
    pub fraction_of_measured_peak: Option<f64>,
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(|| match Cli::parse().command {
        Command::Run(args) => run(&args),
        Command::Compare { ours, keras, out } => compare::run(&ours, &keras, &out),
        Command::Study {
            pipelines,
            seeds,
            candidates,
            data_seed,
            out,
        } => study::run(
            &study::StudyArgs {
                pipelines: &pipelines,
                seeds: &seeds,
                candidates,
                data_seed,
                out: &out,
            },
            today(),
        ),
    })
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let bench_dir = args.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Each recipe runs under its own artifacts root so benchmarking never overwrites the
    // artifacts of `just all`.
    let seed = variant(&args.seed_pipeline, &bench_dir, "seed", |_| {})?;
    // The default data set, made if missing (skipped when up to date): a fresh clone has none.
    run_stage("simulate", &["generate"], &seed.1)?;
    let mut ingest_features = vec![ingest_and_features(&seed, "default set")?];
    let mut predict = Vec::new();
    let mut training = vec![train(&seed, "seed")?];
    // Early stopping off: every run times the same number of epochs.
    let recipes = [
        ("default", &args.default_pipeline, args.default_epochs),
        (
            "rot_inv_cnn",
            &args.rot_inv_pipeline,
            Some(args.rot_inv_epochs),
        ),
    ];
    for (name, pipeline, epochs) in recipes {
        if epochs == Some(0) {
            continue;
        }
        let recipe = variant(pipeline, &bench_dir, name, |p| {
            p.train.epochs = epochs.unwrap_or(p.train.epochs);
            p.train.early_stopping_patience = None;
        })?;
        ingest_and_features(&recipe, "default set")?;
        training.push(train(&recipe, name)?);
    }
    if args.large > 0 {
        let n = args.large;
        let large = variant(&args.seed_pipeline, &bench_dir, "large", |p| {
            p.simulate.out_dir = format!("data/sim-{n}").into();
            p.simulate.train_candidates = n;
            for (name, split) in p.data.splits.iter_mut() {
                split.dir = p.simulate.out_dir.join(name);
            }
        })?;
        run_stage("simulate", &["generate"], &large.1)?;
        let name = format!("{n}-candidate set");
        ingest_features.push(ingest_and_features(&large, &name)?);
        // The seed model, with its threshold, scores the large set's train split.
        run_stage("evaluate", &["--force"], &seed.1)?;
        predict.push(predict_set(&large.0, &seed.0, &name)?);
    }

    let set = features::StampSet::read(&seed.0.stage_dir(Stage::Features).join("train.arrow"))?;
    // The largest batch timed, reused cyclically for smaller ones.
    let stamps = set.stamps.range(0..set.len().min(1024))?;
    let mut inference = Vec::new();
    for kind in [ModelKind::SeedCnn, ModelKind::RotInvCnn] {
        tracing::info!("inference: {kind:?}");
        inference.extend(inference::measure(
            kind,
            &stamps,
            &[1, 64, 1024],
            args.inference_seconds,
        ));
    }
    let machine = cpu::CpuPeak::detect();
    let batch = 1024;
    let seed_rate = inference
        .iter()
        .find(|t| t.model == ModelKind::SeedCnn && t.batch == batch)
        .map_or(0.0, |t| t.candidates_per_second);
    let flops = cpu::seed_cnn_flops();
    let achieved = seed_rate * flops as f64 / 1e9;
    let results = Results {
        date: today(),
        seed_cnn_gflops: Gflops {
            flops_per_candidate: flops,
            batch,
            achieved_gflops: achieved,
            fraction_of_peak: achieved / machine.peak_gflops,
            fraction_of_measured_peak: machine.measured_peak_gflops.map(|p| achieved / p),
        },
        machine,
        ingest_features,
        predict,
        training,
        inference,
    };
    hits_core::io::write_json_atomic(&args.out, &results)?;
    println!("{}", serde_json::to_string_pretty(&results)?);
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `base` with its artifacts under `<bench_dir>/<name>` and `edit` applied, written to
/// `<bench_dir>/<name>.toml` for the stage binaries.
fn variant(
    base: &Path,
    bench_dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut Pipeline),
) -> anyhow::Result<(Pipeline, PathBuf)> {
    let mut pipeline = Pipeline::load(base)?;
    pipeline.name = format!("bench-{name}");
    pipeline.artifacts = bench_dir.join(name);
    edit(&mut pipeline);
    let path = bench_dir.join(format!("{name}.toml"));
    hits_core::io::write_bytes_atomic(&path, pipeline.to_toml().as_bytes())?;
    Ok((pipeline, path))
}

fn ingest_and_features(
    (pipeline, path): &(Pipeline, PathBuf),
    set: &str,
) -> anyhow::Result<IngestFeatures> {
    let ingest = run_stage("ingest", &["--force"], path)?;
    let features = run_stage("features", &["--force"], path)?;
    let mut candidates = 0;
    let mut bytes = 0;
    for split in pipeline.data.splits.values() {
        let labels = split.dir.join(&pipeline.data.files.labels);
        bytes += channel_bytes(&pipeline.data, &split.dir)?;
        if split.labelled {
            bytes += file_size(&labels)?;
        }
    }
    for name in pipeline.data.splits.keys() {
        let report: serde_json::Value = hits_core::io::read_json(
            &pipeline
                .stage_dir(Stage::Ingest)
                .join(format!("{name}.report.json")),
        )?;
        candidates += report["rows"].as_u64().context("report without rows")? as usize;
    }
    let seconds = ingest.seconds + features.seconds;
    let csv_megabytes = bytes as f64 / 1e6;
    Ok(IngestFeatures {
        set: set.into(),
        candidates,
        csv_megabytes,
        ingest,
        features,
        candidates_per_second: candidates as f64 / seconds,
        csv_megabytes_per_second: csv_megabytes / seconds,
    })
}

/// Time `predict` on `data`'s train split with the model of `model`'s artifacts.
fn predict_set(data: &Pipeline, model: &Pipeline, set: &str) -> anyhow::Result<PredictRun> {
    let split = data
        .data
        .splits
        .get("train")
        .context("the large set has no train split")?;
    let out = model.artifacts.join("predict-large");
    let run = run_binary(
        "predict",
        &[
            split.dir.as_os_str(),
            "--model".as_ref(),
            model.artifacts.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    )?;
    let summary: serde_json::Value = hits_core::io::read_json(&out.join("summary.json"))?;
    let candidates = summary["candidates"]
        .as_u64()
        .context("summary without candidates")? as usize;
    let csv_megabytes = channel_bytes(&data.data, &split.dir)? as f64 / 1e6;
    Ok(PredictRun {
        set: set.into(),
        candidates,
        csv_megabytes,
        candidates_per_second: candidates as f64 / run.seconds,
        csv_megabytes_per_second: csv_megabytes / run.seconds,
        run,
    })
}

/// Bytes of the four channel CSVs in `dir`.
fn channel_bytes(data: &hits_core::config::DataConfig, dir: &Path) -> anyhow::Result<u64> {
    hits_core::Channel::ALL
        .iter()
        .map(|&c| file_size(&dir.join(data.files.channel(c))))
        .sum()
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len())
}

fn train((pipeline, path): &(Pipeline, PathBuf), recipe: &str) -> anyhow::Result<Training> {
    let run = run_stage("train", &["--force"], path)?;
    let history_path = pipeline.stage_dir(Stage::Train).join(::train::HISTORY_FILE);
    let history = std::fs::read_to_string(&history_path)
        .with_context(|| format!("{}: cannot read", history_path.display()))?;
    let rows: Vec<Vec<f64>> = history
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    // Columns: epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds
    let split: serde_json::Value = hits_core::io::read_json(
        &pipeline
            .stage_dir(Stage::Train)
            .join(::train::split::SPLIT_FILE),
    )?;
    Ok(Training {
        recipe: recipe.into(),
        model: pipeline.model.kind(),
        train_candidates: split["train_rows"].as_array().map_or(0, Vec::len),
        epochs: rows.len(),
        seconds_total: run.seconds,
        seconds_per_epoch: rows.iter().map(|r| r[6]).collect(),
        peak_rss_mib: run.peak_rss_mib,
        val_accuracy: rows.last().map_or(f64::NAN, |r| r[4]),
    })
}

/// Today's date (UTC), for the README's benchmark table.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}
