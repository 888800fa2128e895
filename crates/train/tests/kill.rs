//! `train` killed with SIGKILL at a random moment, then re-run with `--resume` (as a nightly
//! job would), ends with exactly the model of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::config::OptimiserConfig;

fn pipeline(root: &Path) -> (Pipeline, PathBuf) {
    features::toy::seed_pipeline(root, 6, 120, |p| {
        p.train.optimiser = OptimiserConfig::keras_rmsprop();
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
fn outcome(pipeline: &Pipeline) -> (Vec<u32>, Vec<Vec<f64>>) {
    let dir = pipeline.stage_dir(Stage::Train);
    let device = Default::default();
    let metadata = model::ModelMetadata::read(&dir).unwrap();
    let model =
        model::metadata::load_record::<model::backend::Cpu>(&dir, &metadata, &device).unwrap();
    let stamps: Vec<f32> = (0..40).flat_map(features::toy::stamp).collect();
    let p_real = model.predict(&stamps, 16, &device);
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let curves = history
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            cells[..cells.len() - 1].to_vec()
        })
        .collect();
    (p_real.iter().map(|p| p.to_bits()).collect(), curves)
}

/// The weights, hence P(real), must match bit for bit. The logged mean training loss may
/// differ in its last bit between processes (the order of a parallel sum), so the curves are
/// compared to 1e-12.
fn assert_same(got: &(Vec<u32>, Vec<Vec<f64>>), expected: &(Vec<u32>, Vec<Vec<f64>>), what: &str) {
    assert!(
        got.0 == expected.0,
        "{what}: P(real) differs from the uninterrupted run"
    );
    assert_eq!(got.1.len(), expected.1.len(), "{what}: epochs");
    for (a, b) in got.1.iter().flatten().zip(expected.1.iter().flatten()) {
        assert!(
            (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            "{what}: history {:?} vs {:?}",
            got.1,
            expected.1
        );
    }
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
    assert_same(&outcome(&again), &expected, "two uninterrupted runs");

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
        let what = format!("round {round} (killed at {fraction})");
        assert_same(&outcome(&pipeline), &expected, &what);
        let leftovers: Vec<_> = std::fs::read_dir(pipeline.stage_dir(Stage::Train))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: temporary files left");
    }
    // Guard against a vacuous test: the full run must take long enough to be interrupted.
    assert!(full_run > Duration::from_millis(200), "{full_run:?}");
}
