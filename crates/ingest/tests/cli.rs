//! The `ingest` binary: a bad input is one `error:` line on stderr and a non-zero exit.

use std::process::Command;

#[test]
fn missing_data_gives_one_line_error_and_failure_status() {
    let root = tempfile::tempdir().unwrap();
    let pipeline = root.path().join("p.toml");
    let data = root.path().join("nowhere");
    let artifacts = root.path().join("artifacts");
    std::fs::write(
        &pipeline,
        format!(
            "artifacts = {artifacts:?}\n[data.splits.train]\ndir = {data:?}\nlabelled = true\n",
            artifacts = artifacts.to_str().unwrap(),
            data = data.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .arg("--pipeline")
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("template.csv: file not found"),
        "{stderr}"
    );
    assert!(!artifacts.exists());
}

#[test]
fn unknown_pipeline_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let pipeline = root.path().join("p.toml");
    std::fs::write(&pipeline, "[features]\nnormalization = \"zscore\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .arg("--pipeline")
        .arg(&pipeline)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("p.toml") && stderr.contains("normalization"),
        "{stderr}"
    );
}
