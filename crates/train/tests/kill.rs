//! `train` killed with SIGKILL at a random moment, then re-run with `--resume` (as a nightly
//! job would), ends with exactly the model of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hits_core::Pipeline;
use hits_core::config::OptimiserConfig;

fn pipeline(root: &Path) -> (Pipeline, PathBuf) {
    features::toy::seed_pipeline(root, 6, 120, |p| {
        p.train.optimiser = OptimiserConfig::default();
        p.train.augment = true;
    })
}

fn train(pipeline: &Path, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_train"));
    command.arg("--pipeline").arg(pipeline);
    if resume {
        command.arg("--resume");
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// The kept model's P(real) bits on the toy stamps, and the history without its wall-clock
/// column. (Not the bytes of `model.mpk`: burn stores a random id per parameter in records,
/// so two identical models never have identical files.)
fn outcome(pipeline: &Pipeline) -> (Vec<u32>, Vec<String>) {
    let dir = pipeline.stage_dir("train");
    let device = Default::default();
    let metadata = model::ModelMetadata::read(&dir).unwrap();
    let model =
        model::metadata::load_record::<model::backend::Cpu>(&dir, &metadata, &device).unwrap();
    let stamps: Vec<f32> = (0..40).flat_map(features::toy::stamp).collect();
    let p_real = model.predict(&stamps, 16, &device);
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let curves = history
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect();
    (p_real.iter().map(|p| p.to_bits()).collect(), curves)
}

#[test]
fn training_killed_at_random_moments_resumes_to_the_same_model() {
    let reference_root = tempfile::tempdir().unwrap();
    let (reference, reference_file) = pipeline(reference_root.path());
    let started = Instant::now();
    assert!(train(&reference_file, false).status().unwrap().success());
    let full_run = started.elapsed();
    let expected = outcome(&reference);
    // Two uninterrupted runs agree, or no comparison below could.
    let again_root = tempfile::tempdir().unwrap();
    let (again, again_file) = pipeline(again_root.path());
    assert!(train(&again_file, false).status().unwrap().success());
    assert!(outcome(&again) == expected, "two uninterrupted runs differ");

    // A different moment on every run of the suite; printed so a failure can be replayed.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for round in 0..3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let fraction = (state % 1000) as f64 / 1000.0;
        let root = tempfile::tempdir().unwrap();
        let (pipeline, file) = pipeline(root.path());
        let mut child = train(&file, false).spawn().unwrap();
        std::thread::sleep(full_run.mul_f64(fraction));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        eprintln!(
            "round {round}: killed at {:.0}% of a full run",
            fraction * 100.0
        );
        // The interrupted run may itself be killed again before it finishes.
        let mut resumed = train(&file, true).spawn().unwrap();
        std::thread::sleep(full_run.mul_f64(fraction / 2.0));
        resumed.kill().unwrap();
        resumed.wait().unwrap();
        let status = train(&file, true).status().unwrap();
        assert!(status.success(), "round {round}: resume failed");
        let (p_real, history) = outcome(&pipeline);
        assert_eq!(
            history, expected.1,
            "round {round}: history (killed at {fraction})"
        );
        assert!(
            p_real == expected.0,
            "round {round}: resumed model differs from the uninterrupted one (killed at {fraction})"
        );
        let leftovers: Vec<_> = std::fs::read_dir(pipeline.stage_dir("train"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: temporary files left");
    }
    // Guard against a vacuous test: the full run must take long enough to be interrupted.
    assert!(full_run > Duration::from_millis(200), "{full_run:?}");
}
