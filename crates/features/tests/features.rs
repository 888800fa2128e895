//! The features stage on tiny ingest files the tests write themselves.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::Schema;
use features::{CENTRE_PIXEL, NormalisationSpec, StampSet};
use hits_core::Stage;
use hits_core::arrow_io::{f32_list_array, f32_list_field, id_field, label_field, write_ipc};
use hits_core::config::{Normalisation, SplitConfig};
use hits_core::manifest::Manifest;
use hits_core::{Channel, CoreError, Pipeline, STAMP_PIXELS, TENSOR_LEN};

fn pixel(channel: usize, row: usize, p: usize) -> f32 {
    (channel * 100 + row) as f32 + p as f32 * 0.5 - 40.0
}

/// Write `<artifacts>/ingest/<split>.arrow` for every (split, rows, labelled), and its manifest.
fn write_ingest(pipeline: &Pipeline, splits: &[(&str, usize, bool)]) {
    let dir = pipeline.stage_dir(Stage::Ingest);
    let mut fields = vec![id_field(), label_field()];
    fields.extend(Channel::ALL.map(|c| f32_list_field(c.name(), STAMP_PIXELS)));
    let schema = Arc::new(Schema::new(fields));
    let mut manifest = Manifest::new(Stage::Ingest, "test", pipeline);
    for &(split, rows, labelled) in splits {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|r| format!("{split}-{r}")),
        ));
        let labels: ArrayRef = Arc::new(if labelled {
            UInt8Array::from_iter_values((0..rows).map(|r| (r % 2) as u8))
        } else {
            UInt8Array::new_null(rows)
        });
        let mut columns = vec![ids, labels];
        for c in 0..4 {
            let values = (0..rows)
                .flat_map(|r| (0..STAMP_PIXELS).map(move |p| pixel(c, r, p)))
                .collect();
            columns.push(Arc::new(f32_list_array(values, STAMP_PIXELS)));
        }
        let path = dir.join(format!("{split}.arrow"));
        let digest = write_ipc::<CoreError>(
            &path,
            schema.clone(),
            [Ok(RecordBatch::try_new(schema.clone(), columns).unwrap())],
        )
        .unwrap();
        manifest.add_output_digest(digest);
    }
    manifest.write(&dir, 0.0).unwrap();
}

fn pipeline(root: &Path, normalisation: Normalisation) -> Pipeline {
    let mut pipeline = Pipeline {
        artifacts: root.to_path_buf(),
        ..Pipeline::default()
    };
    pipeline.features.normalisation = normalisation;
    pipeline.data.splits.clear();
    pipeline.data.splits.insert(
        "train".into(),
        SplitConfig {
            dir: "unused".into(),
            labelled: true,
        },
    );
    pipeline.data.splits.insert(
        "test".into(),
        SplitConfig {
            dir: "unused".into(),
            labelled: false,
        },
    );
    pipeline
}

fn build(normalisation: Normalisation) -> (tempfile::TempDir, Pipeline) {
    let root = tempfile::tempdir().unwrap();
    let pipeline = pipeline(root.path(), normalisation);
    write_ingest(&pipeline, &[("train", 6, true), ("test", 3, false)]);
    features::run(&pipeline).unwrap();
    (root, pipeline)
}

/// Stamps read by row from the file (as sets beyond `IN_MEMORY_BYTES` are) are the ones held
/// in memory, in any order asked for.
#[test]
fn stamps_read_by_row_equal_stamps_held_in_memory() {
    let (_root, pipeline) = build(Normalisation::None);
    let path = features::split_path(&pipeline, "train");
    let hash = hits_core::io::hash_file(&path).unwrap();
    let held = StampSet::read_hashed_within(&path, hash.clone(), usize::MAX).unwrap();
    let by_row = StampSet::read_hashed_within(&path, hash, 0).unwrap();
    let rows = [5, 0, 3, 3, 1];
    let gather = |set: &StampSet| {
        let mut out = Vec::new();
        set.stamps.gather(&rows, &mut out).unwrap();
        out
    };
    assert_eq!(gather(&held).len(), rows.len() * TENSOR_LEN);
    assert_eq!(gather(&held), gather(&by_row));
    assert_eq!(held.stamps.len(), by_row.stamps.len());
    let subset = |set: &StampSet| set.stamps.select(&[4, 2]).get(1).unwrap();
    assert_eq!(subset(&held), subset(&by_row));
}

#[test]
fn stacks_channels_in_order_template_science_difference_snr() {
    let (_root, pipeline) = build(Normalisation::None);
    let set = features::open_split(&pipeline, "train").unwrap();
    assert_eq!(set.len(), 6);
    assert_eq!(set.stamps.len(), 6);
    let stamp = set.stamps.get(4).unwrap();
    assert_eq!(stamp.len(), TENSOR_LEN);
    for c in Channel::ALL {
        for p in [0, 17, 440] {
            assert_eq!(
                stamp[c.index() * STAMP_PIXELS + p],
                pixel(c.index(), 4, p),
                "{c} pixel {p}"
            );
        }
    }
    assert_eq!(set.labels[..3], [Some(0), Some(1), Some(0)]);
    assert_eq!(set.ids[5], "train-5");
    assert_eq!(set.meta.shape, [4, 21, 21]);
    assert_eq!(
        set.meta.channels,
        "template,science,difference,snr_difference"
    );
    assert_eq!(set.meta.normalisation, NormalisationSpec::None);
    let test = features::open_split(&pipeline, "test").unwrap();
    assert!(test.labels.iter().all(Option::is_none));
}

#[test]
fn centre_snr_is_the_raw_value_whatever_the_normalisation() {
    let (_root, pipeline) = build(Normalisation::MinmaxPerStamp);
    let set = features::open_split(&pipeline, "train").unwrap();
    assert_eq!(
        set.centre_snr[2],
        pixel(Channel::SnrDifference.index(), 2, CENTRE_PIXEL)
    );
    let stamp = set.stamps.get(2).unwrap();
    assert_eq!(stamp.iter().cloned().fold(f32::INFINITY, f32::min), 0.0);
    assert_eq!(stamp.iter().cloned().fold(f32::NEG_INFINITY, f32::max), 1.0);
}

#[test]
fn zscore_statistics_come_from_train_and_are_reused_for_test() {
    let (root, pipeline) = build(Normalisation::Zscore);
    let train = features::open_split(&pipeline, "train").unwrap();
    let test = features::open_split(&pipeline, "test").unwrap();
    let NormalisationSpec::Zscore { mean, std } = &train.meta.normalisation else {
        panic!("not zscore")
    };
    assert_eq!(train.meta.normalisation, test.meta.normalisation);
    let expected_mean =
        features::zscore_statistics(&root.path().join("ingest/train.arrow")).unwrap();
    assert_eq!(train.meta.normalisation, expected_mean);
    // Template values of train: rows 0..6, pixels 0..441 -> mean = 2.5 + 110 - 40.
    assert!((mean[0] - 72.5).abs() < 1e-3, "{mean:?}");
    assert!(std[0] > 0.0);
    let raw = pixel(0, 1, 3);
    assert!((test.stamps.get(1).unwrap()[3] - (raw - mean[0]) / std[0]).abs() < 1e-5);
    let saved: NormalisationSpec = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("features/normalisation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved, train.meta.normalisation);
}

#[test]
fn changed_ingest_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let pipeline = pipeline(root.path(), Normalisation::None);
    write_ingest(&pipeline, &[("train", 4, true), ("test", 2, false)]);
    let path = root.path().join("ingest/train.arrow");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = features::run(&pipeline).unwrap_err().to_string();
    assert!(
        err.contains("train.arrow") && err.contains("changed or corrupt"),
        "{err}"
    );
    assert!(
        !root.path().join("features").exists(),
        "nothing may be written"
    );
}

#[test]
fn a_split_that_fails_replaces_no_features_file() {
    let (root, pipeline) = build(Normalisation::None);
    let train_features = root.path().join("features/train.arrow");
    let inode =
        || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&train_features).unwrap());
    let before = inode();
    // The test split's ingest file loses its stamp columns (listed in the manifest, so it
    // passes the hash check and fails while its features are built).
    let dir = pipeline.stage_dir(Stage::Ingest);
    let test_path = dir.join("test.arrow");
    let schema = Arc::new(Schema::new(vec![id_field(), label_field()]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(["a", "b"])),
        Arc::new(UInt8Array::new_null(2)),
    ];
    write_ipc::<CoreError>(
        &test_path,
        schema.clone(),
        [Ok(RecordBatch::try_new(schema, columns).unwrap())],
    )
    .unwrap();
    let mut manifest = Manifest::new(Stage::Ingest, "test", &pipeline);
    manifest.add_output(&dir.join("train.arrow")).unwrap();
    manifest.add_output(&test_path).unwrap();
    manifest.write(&dir, 0.0).unwrap();

    let err = features::run(&pipeline).unwrap_err().to_string();
    assert!(
        err.contains("test.arrow") && err.contains("template"),
        "{err}"
    );
    assert_eq!(
        inode(),
        before,
        "train's features were replaced although test failed"
    );
}

#[test]
fn changed_features_file_is_refused_by_open_split() {
    let (root, pipeline) = build(Normalisation::None);
    let path = root.path().join("features/test.arrow");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = features::open_split(&pipeline, "test")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.arrow") && err.contains("changed or corrupt"),
        "{err}"
    );
}

#[test]
fn wrong_schema_or_truncated_file_is_refused_by_read() {
    let root = tempfile::tempdir().unwrap();
    // An ingest file is not a features file.
    let pipeline = pipeline(root.path(), Normalisation::None);
    write_ingest(&pipeline, &[("train", 2, true)]);
    let err = StampSet::read(&root.path().join("ingest/train.arrow"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no column 'stamp'"), "{err}");

    // A stamp of the wrong length.
    let path = root.path().join("short.arrow");
    let schema = Arc::new(Schema::new(vec![
        id_field(),
        label_field(),
        f32_list_field("stamp", TENSOR_LEN - 1),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a"])),
        Arc::new(UInt8Array::from(vec![1])),
        Arc::new(f32_list_array(vec![0.0; TENSOR_LEN - 1], TENSOR_LEN - 1)),
    ];
    write_ipc::<CoreError>(
        &path,
        schema.clone(),
        [Ok(RecordBatch::try_new(schema, columns).unwrap())],
    )
    .unwrap();
    let err = StampSet::read(&path).unwrap_err().to_string();
    assert!(
        err.contains("short.arrow") && err.contains("column 'stamp'") && err.contains("1763"),
        "{err}"
    );

    // Truncated.
    let (root, _pipeline) = build(Normalisation::None);
    let path = root.path().join("features/train.arrow");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = StampSet::read(&path).unwrap_err().to_string();
    assert!(err.contains("train.arrow") && !err.contains('\n'), "{err}");
}

#[test]
fn inspect_summarises_and_renders() {
    let (root, _pipeline) = build(Normalisation::None);
    let path = root.path().join("features/train.arrow");
    let inspection = features::inspect::inspect(&path, 3).unwrap();
    assert_eq!(
        (
            inspection.rows,
            inspection.real,
            inspection.bogus,
            inspection.unlabelled
        ),
        (6, 3, 3, 0)
    );
    assert_eq!(inspection.id, "train-3");
    assert_eq!(inspection.stamp[STAMP_PIXELS + 5], pixel(1, 3, 5));
    let summary = inspection.summary(&path);
    assert!(
        summary.contains("stamp: FixedSizeList") && summary.contains("hits.normalisation"),
        "{summary}"
    );
    let png = root.path().join("inspect.png");
    inspection.write_png(&png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    // The ingest layout (one column per channel) gives the same stamp.
    let ingest = features::inspect::inspect(&root.path().join("ingest/train.arrow"), 3).unwrap();
    assert_eq!(ingest.stamp, inspection.stamp);
    assert!(features::inspect::inspect(&path, 6).is_err());
}

/// Other tools must read our features: checked with pyarrow where python has it.
#[test]
fn pyarrow_reads_the_features_file() {
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyarrow {
        eprintln!("skipped: python3 with pyarrow not found (.ci/run installs it)");
        return;
    }
    let (root, _pipeline) = build(Normalisation::MinmaxPerStamp);
    let script = r#"
import sys, json, pyarrow.ipc as ipc
t = ipc.open_file(sys.argv[1]).read_all()
meta = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
print(json.dumps({"rows": t.num_rows, "size": t.schema.field("stamp").type.list_size,
                  "shape": json.loads(meta["hits.shape"]), "first": t.column("stamp")[0].values[0].as_py()}))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            root.path().join("features/train.arrow").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["rows"], 6);
    assert_eq!(read["size"], 1764);
    assert_eq!(read["shape"], serde_json::json!([4, 21, 21]));
    assert_eq!(read["first"], 0.0);
}

/// Fuzzing of the Arrow readers: a valid ingest or features file with random byte damage is
/// either read or refused with a one-line error naming it; it never panics.
/// `PROPTEST_CASES=20000 cargo test -p features --test features damaged` runs a longer campaign.
mod fuzz_arrow {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// The bytes of a good ingest file and a good features file.
    fn pristine() -> &'static [Vec<u8>; 2] {
        static FILES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
        FILES.get_or_init(|| {
            let (root, _pipeline) = build(Normalisation::Zscore);
            ["ingest/train.arrow", "features/train.arrow"]
                .map(|f| std::fs::read(root.path().join(f)).unwrap())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn damaged_arrow_files_are_read_or_refused_in_one_line(
            features_file in any::<bool>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            keep in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut bytes = pristine()[usize::from(features_file)].clone();
            for (at, value) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
            if truncate {
                bytes.truncate(keep.index(bytes.len()));
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("damaged.arrow");
            std::fs::write(&path, &bytes).unwrap();
            let message = if features_file {
                StampSet::read(&path).err().map(|e| e.to_string())
            } else {
                hits_core::arrow_io::read_ipc(&path).err().map(|e| e.to_string())
            };
            if let Some(message) = message {
                prop_assert!(!message.contains('\n'), "multi-line error: {message}");
                prop_assert!(message.contains("damaged.arrow"), "error names no file: {message}");
            }
        }
    }
}
