//! What every stage binary shares beyond its own work: its name ([`Stage`]), skipping a run
//! whose inputs, settings and outputs are unchanged, and the wall time recorded in its manifest.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::Pipeline;
use crate::config::Stage;
use crate::manifest::Manifest;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Start the stage clock ([`crate::run_main`] does, first thing).
pub fn start_clock() {
    STARTED.get_or_init(Instant::now);
}

/// Wall seconds since [`start_clock`]; 0 when the clock was never started (library use).
pub fn elapsed_seconds() -> f64 {
    STARTED.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// The pipeline file every binary reads unless told otherwise.
pub const DEFAULT_PIPELINE: &str = "pipelines/default.toml";

/// The options every stage binary takes (`#[command(flatten)]` it into the binary's own).
#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// Pipeline configuration.
    #[arg(long, default_value = DEFAULT_PIPELINE)]
    pub pipeline: PathBuf,
    /// Run even when the inputs and settings are unchanged since the last run.
    #[arg(long)]
    pub force: bool,
}

/// What a binary run without arguments uses: the default pipeline, not forced.
impl Default for StageArgs {
    fn default() -> Self {
        StageArgs {
            pipeline: DEFAULT_PIPELINE.into(),
            force: false,
        }
    }
}

impl StageArgs {
    /// The pipeline file, loaded and checked.
    pub fn load(&self) -> Result<Pipeline, crate::CoreError> {
        Pipeline::load(&self.pipeline)
    }

    /// The loaded pipeline, or `None` when `stage` is up to date ([`StageArgs::skip`]) for the
    /// inputs `inputs` lists: a stage binary's first step.
    pub fn pipeline_to_run(
        &self,
        stage: Stage,
        inputs: impl FnOnce(&Pipeline) -> Vec<PathBuf>,
    ) -> Result<Option<Pipeline>, crate::CoreError> {
        let pipeline = self.load()?;
        let skip = self.skip(&pipeline, stage, &inputs(&pipeline));
        Ok((!skip).then_some(pipeline))
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
        manifest.write(dir, 0.0).unwrap();
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
