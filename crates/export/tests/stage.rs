//! `export` as a stage: a tiny pipeline trained on the `features::toy` set, evaluated, then
//! exported by the binary, which checks the graph with tract on the test split.

use std::path::Path;

use features::toy::{run_stage, seed_pipeline, stamp, write_features};
use hits_core::Stage;
use hits_core::arrow_io::write_ipc;
use hits_core::manifest::Manifest;
use hits_core::{CoreError, STAMP_PIXELS};

fn export(pipeline_file: &Path, args: &[&str]) -> (bool, String) {
    run_stage(env!("CARGO_BIN_EXE_export"), pipeline_file, args)
}

#[test]
fn export_writes_a_checked_graph_then_skips_and_refuses_a_missing_threshold() {
    let root = tempfile::tempdir().unwrap();
    // The toy pipeline's `test` split is unlabelled, as the default's.
    let (pipeline, pipeline_file) = seed_pipeline(root.path(), 2, 60, |_| {});
    // The toy features are unnormalised, so the raw ingest stamps are the same values.
    write_features(&pipeline, &[("train", 60, true), ("test", 40, false)]);
    let rows = 40;
    let mut channels: [Vec<f32>; 4] = Default::default();
    for i in 0..rows {
        for (c, plane) in stamp(i).chunks_exact(STAMP_PIXELS).enumerate() {
            channels[c].extend_from_slice(plane);
        }
    }
    let chunk = ingest::SplitChunk {
        first_row: 0,
        ids: (0..rows).map(|i| format!("test-{i:03}")).collect(),
        labels: None,
        channels,
    };
    let ingest_file = ingest::split_path(&pipeline, "test");
    let digest = write_ipc::<CoreError>(
        &ingest_file,
        ingest::schema(),
        [Ok(ingest::record_batch(chunk))],
    )
    .unwrap();
    let mut manifest = Manifest::new(Stage::Ingest, "test", &pipeline);
    manifest.add_output_digest(digest);
    manifest
        .write(&pipeline.stage_dir(Stage::Ingest), 0.0)
        .unwrap();
    train::run(&pipeline, false).unwrap();
    evaluate::run(&pipeline, None).unwrap();

    let (ok, text) = export(&pipeline_file, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("tract agrees with the model on 40 candidates"),
        "{text}"
    );
    let dir = pipeline.stage_dir(export::STAGE);
    let summary: serde_json::Value =
        hits_core::io::read_json(&dir.join(export::SUMMARY_FILE)).unwrap();
    assert_eq!(summary["check"]["candidates"], 40);
    assert!(summary["check"]["max_abs_difference"].as_f64().unwrap() <= 1e-5);
    assert_eq!(summary["input"]["name"], "stamps");
    assert!(dir.join(export::ONNX_FILE).exists());

    let (ok, text) = export(&pipeline_file, &[]);
    assert!(ok && text.contains("up to date"), "{text}");

    // An ingest file changed since ingest wrote it is refused, naming it.
    let original = std::fs::read(&ingest_file).unwrap();
    std::fs::write(&ingest_file, &original[..original.len() / 2]).unwrap();
    let (ok, text) = export(&pipeline_file, &["--force"]);
    assert!(
        !ok && text.contains("test.arrow") && text.contains("re-run `just ingest`"),
        "{text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    std::fs::write(&ingest_file, &original).unwrap();

    // Without the threshold `evaluate` chose, there is nothing to export: one line, no file.
    std::fs::remove_file(dir.join(export::ONNX_FILE)).unwrap();
    std::fs::remove_file(pipeline.stage_dir(Stage::Evaluate).join("threshold.json")).unwrap();
    let (ok, text) = export(&pipeline_file, &["--force"]);
    assert!(!ok && text.contains("threshold.json"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(!dir.join(export::ONNX_FILE).exists());
}
