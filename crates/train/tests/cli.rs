//! The `train` binary refuses a bad features file with one `error:` line naming it, exit
//! status 1, and the artifacts of an earlier run left as they were.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::Schema;
use hits_core::Stage;
use hits_core::arrow_io::{f32_list_array, f32_list_field, id_field, label_field, write_ipc};
use hits_core::manifest::Manifest;
use hits_core::{CoreError, Pipeline, TENSOR_LEN};

/// A toy features set trained on once (2 epochs), so there are earlier artifacts to protect.
fn trained(root: &Path) -> (Pipeline, PathBuf) {
    let (pipeline, path) = features::toy::seed_pipeline(root, 2, 60, |_| {});
    assert!(train(&path).0);
    (pipeline, path)
}

fn train(pipeline: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .arg("--pipeline")
        .arg(pipeline)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

fn assert_refused(pipeline: &Pipeline, file: &Path, expected: &[&str]) {
    let dir = pipeline.stage_dir(Stage::Train);
    let before = snapshot(&dir);
    let (ok, stderr) = train(file);
    assert!(!ok, "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for part in expected {
        assert!(errors[0].contains(part), "{part:?} not in {stderr}");
    }
    assert!(before == snapshot(&dir), "earlier train artifacts changed");
}

#[test]
fn truncated_features_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (pipeline, file) = trained(root.path());
    let path = pipeline.stage_dir(Stage::Features).join("train.arrow");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&pipeline, &file, &["train.arrow", "changed or corrupt"]);
}

/// Replace the features file with a well-formed Arrow file, listed in the features manifest,
/// whose one list column is `column` with `size` values per row (two rows).
fn replace_features(pipeline: &Pipeline, column: &str, size: usize) {
    let dir = pipeline.stage_dir(Stage::Features);
    let path = dir.join("train.arrow");
    let schema = Arc::new(Schema::new(vec![
        id_field(),
        label_field(),
        f32_list_field(column, size),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a", "b"])),
        Arc::new(UInt8Array::from(vec![0, 1])),
        Arc::new(f32_list_array(vec![0.5; 2 * size], size)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let digest = write_ipc::<CoreError>(&path, schema, [Ok(batch)]).unwrap();
    let mut manifest = Manifest::new(Stage::Features, "test", pipeline);
    manifest.add_output_digest(digest);
    manifest.write(&dir, 0.0).unwrap();
}

#[test]
fn features_file_with_wrong_stamp_length_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (pipeline, file) = trained(root.path());
    // Stamps one value short.
    replace_features(&pipeline, "stamp", TENSOR_LEN - 1);
    assert_refused(&pipeline, &file, &["train.arrow", "stamp", "1763"]);
}

#[test]
fn features_file_of_another_schema_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (pipeline, file) = trained(root.path());
    // An ingest-like file (one column per channel, no `stamp`) in place of the features.
    replace_features(&pipeline, "template", 441);
    assert_refused(
        &pipeline,
        &file,
        &["train.arrow", "no column 'stamp'", "wrong schema"],
    );
}
