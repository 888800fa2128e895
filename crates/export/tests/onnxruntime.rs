//! The exported graph run by onnxruntime from Python (`python/score_onnx.py`, the script the
//! README shows) gives the model's own P(real), from CSVs in both layouts. Runs where a python
//! with onnxruntime and numpy is found (`HITS_PYTHON`, else `python/.venv/bin/python` as
//! `just export-check` makes it, else `python3`); says so and skips otherwise.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{STAMPS, raw, spread_model};
use export::check::reference_p_real;
use export::onnx::{self, GraphSpec};
use features::NormalisationSpec;
use features::toy::outcome;
use hits_core::config::ModelKind;
use hits_core::{STAMP_PIXELS, TENSOR_LEN};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_with_onnxruntime() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HITS_PYTHON").map(PathBuf::from),
        Some(repo_root().join("python/.venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import onnxruntime, numpy"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// The four channel CSVs of `stamps` in `dir`: with an id column and header, or plain.
fn write_csvs(dir: &Path, ids: &[String], stamps: &[f32], with_ids: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (c, name) in ["template", "science", "difference", "snr_difference"]
        .iter()
        .enumerate()
    {
        let mut text = String::new();
        if with_ids {
            text.push_str("id");
            (0..STAMP_PIXELS).for_each(|p| write!(text, ",p{p}").unwrap());
            text.push('\n');
        }
        for (id, stamp) in ids.iter().zip(stamps.chunks_exact(TENSOR_LEN)) {
            let plane = &stamp[c * STAMP_PIXELS..(c + 1) * STAMP_PIXELS];
            let cells: Vec<String> = plane.iter().map(|v| v.to_string()).collect();
            if with_ids {
                write!(text, "{id},").unwrap();
            }
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
    }
}

fn write_expected(path: &Path, ids: &[String], p_real: &[f64]) {
    let mut text = String::from("id,p_real\n");
    for (id, p) in ids.iter().zip(p_real) {
        writeln!(text, "{id},{p}").unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn onnxruntime_gives_the_models_p_real_from_csvs_in_either_layout() {
    let Some(python) = python_with_onnxruntime() else {
        eprintln!(
            "skipped: no python with onnxruntime and numpy (`just export-check` makes python/.venv)"
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let model = spread_model(ModelKind::SeedCnn, &NormalisationSpec::MinmaxPerStamp);
    let spec = GraphSpec {
        normalisation: NormalisationSpec::MinmaxPerStamp,
        temperature: Some(1.3),
        metadata: vec![("threshold".into(), "0.6".into())],
    };
    let model_path = root.path().join("model.onnx");
    std::fs::write(&model_path, onnx::encode(&model, &spec).unwrap()).unwrap();
    let stamps = raw(STAMPS);
    let ours = reference_p_real(&model, &stamps, &spec.normalisation, spec.temperature);

    let score = |input: &Path, ids: &[String], p_real: &[f64]| {
        let expected = root.path().join("expected.csv");
        write_expected(&expected, ids, p_real);
        let out = Command::new(&python)
            .arg(repo_root().join("python/score_onnx.py"))
            .arg(&model_path)
            .arg(input)
            .arg("--compare")
            .arg(&expected)
            .output()
            .unwrap();
        outcome(out)
    };

    let named: Vec<String> = (0..STAMPS).map(|i| format!("cand-{i:02}")).collect();
    let with_ids = root.path().join("with_ids");
    write_csvs(&with_ids, &named, &stamps, true);
    let (ok, text) = score(&with_ids, &named, &ours);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("{STAMPS} candidates")) && text.contains("largest difference"),
        "{text}"
    );

    // Plain files: candidates are numbered by row.
    let numbered: Vec<String> = (0..STAMPS).map(|i| i.to_string()).collect();
    let plain = root.path().join("plain");
    write_csvs(&plain, &numbered, &stamps, false);
    let (ok, text) = score(&plain, &numbered, &ours);
    assert!(ok, "{text}");

    // The comparison fails when the expected P(real) differ.
    let shifted: Vec<f64> = ours.iter().map(|p| p + 1e-3).collect();
    let (ok, text) = score(&with_ids, &named, &shifted);
    assert!(!ok && text.contains("disagrees"), "{text}");
}
