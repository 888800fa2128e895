//! What every stage binary shares beyond its own work: its name ([`Stage`]), skipping a run
//! whose inputs, settings and outputs are unchanged, and the wall time recorded in its manifest.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Pipeline;
use crate::manifest::Manifest;

/// A step of the pipeline: the name of its directory under `artifacts/` (and of its `just`
/// recipe) and the pipeline settings it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Simulate,
    SimCheck,
    Ingest,
    Features,
    Train,
    Evaluate,
    Submit,
    Export,
}

impl Stage {
    /// The stages `just all` runs, in order.
    pub const PIPELINE: [Stage; 7] = [
        Stage::Simulate,
        Stage::Ingest,
        Stage::Features,
        Stage::Train,
        Stage::Evaluate,
        Stage::Submit,
        Stage::Export,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::Simulate => "simulate",
            Stage::SimCheck => "sim-check",
            Stage::Ingest => "ingest",
            Stage::Features => "features",
            Stage::Train => "train",
            Stage::Evaluate => "evaluate",
            Stage::Submit => "submit",
            Stage::Export => "export",
        }
    }

    /// The top-level pipeline keys whose settings the stage reads, besides its input files
    /// (whose hashes carry the earlier stages' settings); `None`: the whole configuration.
    pub const fn settings(self) -> Option<&'static [&'static str]> {
        match self {
            Stage::Simulate => Some(&["seed", "simulate", "data"]),
            Stage::Ingest => Some(&["data"]),
            Stage::Features => Some(&["data", "features"]),
            Stage::Train => Some(&["seed", "data", "features", "model", "train"]),
            Stage::SimCheck | Stage::Evaluate | Stage::Submit | Stage::Export => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Start the stage clock ([`crate::run_main`] does, first thing).
pub fn start_clock() {
    STARTED.get_or_init(Instant::now);
}

/// Wall seconds since [`start_clock`]; 0 when the clock was never started (library use).
pub fn elapsed_seconds() -> f64 {
    STARTED.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// The options every stage binary takes (`#[command(flatten)]` it into the binary's own).
#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// Pipeline configuration.
    #[arg(long, default_value = "pipelines/default.toml")]
    pub pipeline: PathBuf,
    /// Run even when the inputs and settings are unchanged since the last run.
    #[arg(long)]
    pub force: bool,
}

impl StageArgs {
    /// The pipeline file, loaded and checked.
    pub fn load(&self) -> Result<Pipeline, crate::CoreError> {
        Pipeline::load(&self.pipeline)
    }

    /// [`skip_if_up_to_date`] for `stage` in its own directory, unless `--force`.
    pub fn skip(&self, pipeline: &Pipeline, stage: Stage, inputs: &[PathBuf]) -> bool {
        skip_if_up_to_date(
            pipeline,
            stage,
            &pipeline.stage_dir(stage),
            inputs,
            self.force,
        )
    }
}

/// True, after printing `<stage>: up to date (inputs unchanged), skipped`, when `force` is
/// off and the manifest in `dir` was written by `stage` with the same settings, from exactly
/// `inputs` with their current contents, and its outputs are intact. Any doubt (no manifest,
/// unreadable files) means the stage runs.
pub fn skip_if_up_to_date(
    pipeline: &Pipeline,
    stage: Stage,
    dir: &Path,
    inputs: &[PathBuf],
    force: bool,
) -> bool {
    let fresh = !force
        && Manifest::read(dir).is_ok_and(|m| m.stage == stage && m.is_up_to_date(pipeline, inputs));
    if fresh {
        println!("{stage}: up to date (inputs unchanged), skipped");
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::write_bytes_atomic;

    /// A one-input, one-output stage run: returns whether it was skipped.
    fn run(pipeline: &Pipeline, dir: &Path, input: &Path, force: bool) -> bool {
        let inputs = [input.to_path_buf()];
        if skip_if_up_to_date(pipeline, Stage::Features, dir, &inputs, force) {
            return true;
        }
        let output = dir.join("out.txt");
        let content = std::fs::read(input).unwrap();
        write_bytes_atomic(&output, &content).unwrap();
        let mut manifest = Manifest::new(Stage::Features, "test", pipeline);
        manifest.add_input(input).unwrap();
        manifest.add_output(&output).unwrap();
        manifest.write(dir).unwrap();
        false
    }

    #[test]
    fn second_run_is_skipped_and_any_change_reruns() {
        let root = tempfile::tempdir().unwrap();
        let (dir, input) = (root.path().join("features"), root.path().join("in.txt"));
        write_bytes_atomic(&input, b"one").unwrap();
        let pipeline = Pipeline::default();
        assert!(!run(&pipeline, &dir, &input, false), "first run");
        assert!(run(&pipeline, &dir, &input, false), "unchanged");
        assert!(!run(&pipeline, &dir, &input, true), "--force");

        write_bytes_atomic(&input, b"two").unwrap();
        assert!(!run(&pipeline, &dir, &input, false), "changed input");
        assert!(run(&pipeline, &dir, &input, false));

        write_bytes_atomic(&dir.join("out.txt"), b"tampered").unwrap();
        assert!(!run(&pipeline, &dir, &input, false), "changed output");

        let mut other = pipeline.clone();
        other.features.statistics_split = "test".into();
        assert!(!run(&other, &dir, &input, false), "changed settings");
        // A section the stage does not read leaves it up to date.
        other.evaluate.threshold = crate::config::ThresholdRule::EqualErrorRate;
        assert!(run(&other, &dir, &input, false), "unrelated settings");

        let elsewhere = root.path().join("elsewhere.txt");
        write_bytes_atomic(&elsewhere, b"two").unwrap();
        assert!(!run(&other, &dir, &elsewhere, false), "another input file");
    }
}

#[cfg(test)]
mod stage_names {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for stage in Stage::PIPELINE.into_iter().chain([Stage::SimCheck]) {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.name()));
            assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), stage);
        }
        assert!(serde_json::from_str::<Stage>("\"trian\"").is_err());
    }
}
