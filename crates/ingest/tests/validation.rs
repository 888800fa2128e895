//! Every ingest check, each with a case that trips it. Tests build tiny CSV sets themselves.

mod common;

use std::path::Path;

use arrow::array::Array;
use hits_core::Stage;
use hits_core::config::{DataConfig, Layout, SplitConfig};
use hits_core::{Pipeline, STAMP_PIXELS};

use common::{CHANNEL_FILES, edit_line, pixel, set_cell, write_split};

fn data_config(layout: Layout) -> DataConfig {
    DataConfig {
        layout,
        ..DataConfig::default()
    }
}

/// Read a split two candidates at a time, so every check also runs across chunk boundaries.
fn read(dir: &Path, layout: Layout) -> Result<ingest::SplitData, String> {
    let split = SplitConfig {
        dir: dir.to_path_buf(),
        labelled: true,
    };
    ingest::read_split(&data_config(layout), "train", &split, 2).map_err(|e| e.to_string())
}

fn fixture(rows: usize, layout: Layout) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), rows, layout);
    dir
}

fn assert_error(result: Result<ingest::SplitData, String>, parts: &[&str]) {
    let err = result.expect_err("bad input must be refused");
    assert!(!err.contains('\n'), "error must be one line: {err}");
    for part in parts {
        assert!(err.contains(part), "error {err:?} should contain {part:?}");
    }
}

#[test]
fn id_header_layout_reads_every_value_in_place() {
    let dir = fixture(5, Layout::IdHeader);
    let split = read(dir.path(), Layout::IdHeader).unwrap();
    assert_eq!(
        split.ids,
        ["cand-0", "cand-1", "cand-2", "cand-3", "cand-4"]
    );
    assert_eq!(split.labels.as_deref(), Some(&[0, 1, 0, 1, 0][..]));
    for c in 0..4 {
        assert_eq!(split.channels[c][3 * STAMP_PIXELS + 17], pixel(c, 3, 17));
    }
    // Chunks of any size give the same candidates.
    let split_config = SplitConfig {
        dir: dir.path().to_path_buf(),
        labelled: true,
    };
    for chunk_rows in [1, 3, 5, 4096] {
        let other = ingest::read_split(
            &data_config(Layout::IdHeader),
            "train",
            &split_config,
            chunk_rows,
        )
        .unwrap();
        assert_eq!(other.ids, split.ids, "chunks of {chunk_rows}");
        assert_eq!(other.labels, split.labels, "chunks of {chunk_rows}");
        assert_eq!(other.channels, split.channels, "chunks of {chunk_rows}");
    }
}

#[test]
fn plain_layout_aligns_by_row() {
    let dir = fixture(4, Layout::Plain);
    let split = read(dir.path(), Layout::Plain).unwrap();
    assert_eq!(split.ids, ["0", "1", "2", "3"]);
    assert_eq!(split.labels.as_deref(), Some(&[0, 1, 0, 1][..]));
    assert_eq!(split.channels[2][2 * STAMP_PIXELS + 440], pixel(2, 2, 440));
}

#[test]
fn plain_layout_with_header_row() {
    let dir = fixture(3, Layout::Plain);
    for file in CHANNEL_FILES {
        let path = dir.path().join(file);
        let header: Vec<String> = (0..STAMP_PIXELS).map(|p| p.to_string()).collect();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{}\n{text}", header.join(","))).unwrap();
    }
    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        format!("label\n{}", std::fs::read_to_string(&labels).unwrap()),
    )
    .unwrap();
    let data = DataConfig {
        header: true,
        ..data_config(Layout::Plain)
    };
    let split = SplitConfig {
        dir: dir.path().to_path_buf(),
        labelled: true,
    };
    let read = ingest::read_split(&data, "train", &split, 2).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read.channels[0][0], pixel(0, 0, 0));
}

#[test]
fn missing_file() {
    let dir = fixture(3, Layout::IdHeader);
    std::fs::remove_file(dir.path().join("science.csv")).unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["science.csv", "file not found"],
    );
}

#[test]
fn empty_file() {
    let dir = fixture(3, Layout::IdHeader);
    std::fs::write(dir.path().join("difference.csv"), "").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["difference.csv", "file is empty"],
    );
}

#[test]
fn header_only() {
    let dir = fixture(3, Layout::IdHeader);
    let path = dir.path().join("template.csv");
    let header = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&path, header + "\n").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["template.csv", "no candidate rows"],
    );
}

#[test]
fn wrong_pixel_column_counts() {
    let dir = fixture(3, Layout::IdHeader);
    edit_line(dir.path(), "template.csv", 0, |l| {
        l.rsplit_once(',').unwrap().0.to_string()
    });
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["template.csv", "440 pixel columns", "expected 441"],
    );

    let dir = fixture(3, Layout::Plain);
    edit_line(dir.path(), "science.csv", 0, |l| format!("{l},1.0"));
    assert_error(
        read(dir.path(), Layout::Plain),
        &["science.csv", "442 columns", "expected 441"],
    );
}

#[test]
fn ragged_row() {
    let dir = fixture(4, Layout::IdHeader);
    edit_line(dir.path(), "science.csv", 3, |l| {
        l.rsplit_once(',').unwrap().0.to_string()
    });
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["science.csv", "row 3 (line 4)", "441 columns, expected 442"],
    );

    let dir = fixture(4, Layout::IdHeader);
    edit_line(dir.path(), "science.csv", 2, |l| format!("{l},5"));
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["science.csv", "row 2 (line 3)", "443 columns, expected 442"],
    );
}

#[test]
fn non_numeric_cell() {
    let dir = fixture(4, Layout::IdHeader);
    set_cell(dir.path(), "difference.csv", 2, 6, "abc");
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &[
            "difference.csv",
            "row 2 (line 3)",
            "column p5",
            "non-numeric value \"abc\"",
        ],
    );
}

#[test]
fn nan_inf_and_empty_cells() {
    for (value, message) in [
        ("NaN", "NaN (missing value)"),
        ("inf", "infinite value"),
        ("-Infinity", "infinite value"),
        ("", "empty cell"),
    ] {
        let dir = fixture(3, Layout::IdHeader);
        set_cell(dir.path(), "snr_difference.csv", 3, 441, value);
        assert_error(
            read(dir.path(), Layout::IdHeader),
            &[
                "snr_difference.csv",
                "row 3 (line 4)",
                "column p440",
                message,
            ],
        );
    }
}

#[test]
fn empty_id() {
    let dir = fixture(3, Layout::IdHeader);
    set_cell(dir.path(), "template.csv", 2, 0, "");
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["template.csv", "row 2", "empty id"],
    );
}

#[test]
fn channel_files_with_different_row_counts() {
    let dir = fixture(4, Layout::IdHeader);
    let path = dir.path().join("science.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["science.csv", "3 candidate rows", "template.csv has 4"],
    );
}

#[test]
fn ids_differing_or_reordered_across_channels() {
    let dir = fixture(4, Layout::IdHeader);
    set_cell(dir.path(), "difference.csv", 2, 0, "someone-else");
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["difference.csv", "row 2", "'someone-else'", "'cand-1'"],
    );
    // In a later chunk, the row is still counted from the top of the file.
    let dir = fixture(4, Layout::IdHeader);
    set_cell(dir.path(), "snr_difference.csv", 3, 0, "someone-else");
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["snr_difference.csv", "row 3 (line 4)", "'cand-2'"],
    );

    let dir = fixture(4, Layout::IdHeader);
    let path = dir.path().join("science.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(1, 2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["science.csv", "row 1", "same order"],
    );
}

#[test]
fn duplicate_ids() {
    let dir = fixture(4, Layout::IdHeader);
    for file in CHANNEL_FILES {
        set_cell(dir.path(), file, 4, 0, "cand-1");
    }
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &[
            "template.csv",
            "row 4",
            "duplicate id 'cand-1' (first at row 2)",
        ],
    );
}

/// In each of `files` (id_header layout), candidates `copies` get the pixels of candidate
/// `from`, keeping their own ids.
fn copy_candidate(dir: &Path, files: &[&str], from: usize, copies: &[usize]) {
    for file in files {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let pixels = lines[from + 1].split_once(',').unwrap().1.to_string();
        for &to in copies {
            lines[to + 1] = format!("cand-{to},{pixels}");
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
}

#[test]
fn duplicate_stamps() {
    let dir = fixture(4, Layout::IdHeader);
    // Candidate 3 becomes a copy of candidate 1 in all four channels, under its own id.
    copy_candidate(dir.path(), &CHANNEL_FILES, 1, &[3]);
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &[
            "duplicate candidate",
            "rows 2 and 4",
            "'cand-1' and 'cand-3'",
        ],
    );

    // Identical in three channels only is not a duplicate.
    let dir = fixture(4, Layout::IdHeader);
    copy_candidate(dir.path(), &CHANNEL_FILES[..3], 1, &[3]);
    read(dir.path(), Layout::IdHeader).unwrap();
}

/// With `duplicates = "drop"`, the first of identical candidates stays and the others are
/// dropped with their labels, listed with their twins; across chunk boundaries too.
#[test]
fn duplicate_stamps_can_be_dropped() {
    let dir = fixture(6, Layout::IdHeader);
    // Candidates 3 and 5 become copies of candidate 1 in all four channels.
    copy_candidate(dir.path(), &CHANNEL_FILES, 1, &[3, 5]);
    let data = DataConfig {
        duplicates: hits_core::config::DuplicatePolicy::Drop,
        ..data_config(Layout::IdHeader)
    };
    let split = SplitConfig {
        dir: dir.path().to_path_buf(),
        labelled: true,
    };
    for chunk_rows in [1, 2, 4096] {
        let mut kept = Vec::new();
        let records = ingest::Records::All;
        let scan = ingest::scan_split(&data, "train", &split, chunk_rows, records, |chunk| {
            assert_eq!(chunk.labels.as_ref().unwrap().len(), chunk.ids.len());
            for pixels in &chunk.channels {
                assert_eq!(pixels.len(), chunk.ids.len() * STAMP_PIXELS);
            }
            kept.extend(chunk.ids);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            kept,
            ["cand-0", "cand-1", "cand-2", "cand-4"],
            "chunks of {chunk_rows}"
        );
        assert_eq!(scan.rows, 4);
        // Labels 0, 1, 0, 1, 0, 1: the dropped cand-3 and cand-5 were real.
        assert_eq!(scan.label_counts, Some([3, 1]));
        let dropped: Vec<(usize, &str, usize, &str)> = scan
            .dropped
            .iter()
            .map(|d| (d.row, d.id.as_str(), d.twin_row, d.twin_id.as_str()))
            .collect();
        assert_eq!(
            dropped,
            [(4, "cand-3", 2, "cand-1"), (6, "cand-5", 2, "cand-1")]
        );
    }
    // The default still refuses them.
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["duplicate candidate", "rows 2 and 4"],
    );
}

#[test]
fn labels_outside_zero_one() {
    for bad in ["2", "-1", "1.0", "real"] {
        let dir = fixture(3, Layout::IdHeader);
        set_cell(dir.path(), "labels.csv", 2, 1, bad);
        assert_error(
            read(dir.path(), Layout::IdHeader),
            &[
                "labels.csv",
                "row 2 (line 3)",
                "column label",
                "is not a label",
            ],
        );
    }
}

#[test]
fn labels_missing_extra_or_duplicated() {
    let dir = fixture(3, Layout::IdHeader);
    std::fs::remove_file(dir.path().join("labels.csv")).unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["labels.csv", "file not found"],
    );

    let dir = fixture(3, Layout::IdHeader);
    edit_line(dir.path(), "labels.csv", 2, |_| "cand-0,1".into());
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["labels.csv", "row 2", "second label for id 'cand-0'"],
    );

    let dir = fixture(3, Layout::IdHeader);
    let path = dir.path().join("labels.csv");
    std::fs::write(&path, "id,label\ncand-0,0\ncand-2,0\n").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["labels.csv", "no label for candidate 'cand-1'"],
    );

    let dir = fixture(3, Layout::IdHeader);
    let path = dir.path().join("labels.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text + "stranger,1\n").unwrap();
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &[
            "labels.csv",
            "row 4",
            "'stranger', which is not a candidate",
        ],
    );

    let dir = fixture(3, Layout::Plain);
    let path = dir.path().join("labels.csv");
    std::fs::write(&path, "0\n1\n").unwrap();
    assert_error(
        read(dir.path(), Layout::Plain),
        &["labels.csv", "2 labels for 3 candidates"],
    );
}

#[test]
fn labels_file_needs_id_and_label_header() {
    let dir = fixture(3, Layout::IdHeader);
    edit_line(dir.path(), "labels.csv", 0, |_| "id,class".into());
    assert_error(
        read(dir.path(), Layout::IdHeader),
        &["labels.csv", "expected 'id,label'"],
    );
}

fn pipeline_for(root: &Path) -> Pipeline {
    let mut pipeline = Pipeline {
        artifacts: root.join("artifacts"),
        ..Pipeline::default()
    };
    pipeline.data.splits.clear();
    pipeline.data.splits.insert(
        "train".into(),
        SplitConfig {
            dir: root.join("train"),
            labelled: true,
        },
    );
    pipeline.data.splits.insert(
        "test".into(),
        SplitConfig {
            dir: root.join("test"),
            labelled: false,
        },
    );
    pipeline
}

#[test]
fn run_writes_arrow_report_config_and_manifest() {
    let root = tempfile::tempdir().unwrap();
    write_split(&root.path().join("train"), 6, Layout::IdHeader);
    write_split(&root.path().join("test"), 3, Layout::IdHeader);
    let pipeline = pipeline_for(root.path());
    let reports = ingest::run(&pipeline).unwrap();
    assert_eq!(reports.iter().map(|r| r.rows).collect::<Vec<_>>(), [3, 6]);
    let dir = pipeline.stage_dir(Stage::Ingest);
    for name in [
        "train.arrow",
        "test.arrow",
        "train.report.json",
        "test.report.json",
        "pipeline.toml",
        "manifest.json",
    ] {
        assert!(dir.join(name).exists(), "{name} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("train.report.json")).unwrap())
            .unwrap();
    assert_eq!(report["label_counts"]["real"], 3);
    assert_eq!(
        report["channels"]["science"]["min"],
        f64::from(pixel(1, 0, 0))
    );
    let (schema, batches) = hits_core::arrow_io::read_ipc(&dir.join("test.arrow")).unwrap();
    assert_eq!(schema.fields().len(), 6);
    let labels = hits_core::arrow_io::labels(&dir.join("test.arrow"), &batches[0]).unwrap();
    assert_eq!(labels.null_count(), 3);
    let science =
        hits_core::arrow_io::f32_list_values(&dir.join("test.arrow"), &batches[0], "science")
            .unwrap();
    assert_eq!(science[2 * STAMP_PIXELS + 9], pixel(1, 2, 9));
}

#[test]
fn sentinels_are_counted_not_changed() {
    let root = tempfile::tempdir().unwrap();
    write_split(&root.path().join("train"), 3, Layout::IdHeader);
    write_split(&root.path().join("test"), 2, Layout::IdHeader);
    set_cell(&root.path().join("train"), "science.csv", 1, 3, "-9999");
    set_cell(&root.path().join("train"), "science.csv", 2, 4, "100000000");
    let reports = ingest::run(&pipeline_for(root.path())).unwrap();
    let science = &reports
        .iter()
        .find(|r| r.split == "train")
        .unwrap()
        .channels["science"];
    assert_eq!((science.sentinel_values, science.huge_values), (1, 1));
    assert_eq!(science.min, -9999.0);
    assert_eq!(science.max, 1e8);
}

#[test]
fn a_bad_split_leaves_earlier_artifacts_untouched() {
    let root = tempfile::tempdir().unwrap();
    write_split(&root.path().join("train"), 4, Layout::IdHeader);
    write_split(&root.path().join("test"), 2, Layout::IdHeader);
    let pipeline = pipeline_for(root.path());
    ingest::run(&pipeline).unwrap();
    let dir = pipeline.stage_dir(Stage::Ingest);
    let before: Vec<_> = ["train.arrow", "manifest.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();

    // The second run has good train data (now 5 rows) but a broken test split.
    write_split(&root.path().join("train"), 5, Layout::IdHeader);
    set_cell(&root.path().join("test"), "template.csv", 1, 2, "oops");
    assert!(ingest::run(&pipeline).is_err());
    let after: Vec<_> = ["train.arrow", "manifest.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    let stray: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty());
}

/// Files as spreadsheets and other tools save them read as the plain files do; a bad cell
/// in one is named by the original file, row, line and column.
#[test]
fn spreadsheet_forms_read_like_plain_files() {
    let plain_dir = fixture(5, Layout::IdHeader);
    let plain = read(plain_dir.path(), Layout::IdHeader).unwrap();
    type Form = fn(&str) -> Vec<u8>;
    let quote_all: Form = |text| {
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                l.split(',')
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        (lines.join("\r\n") + "\r\n").into_bytes()
    };
    let forms: [(&str, Form); 6] = [
        ("excel utf-8", |t| {
            format!("\u{feff}{}", t.replace('\n', "\r\n")).into_bytes()
        }),
        ("quoted", quote_all),
        ("padded", |t| t.replace(',', " , ").into_bytes()),
        ("semicolons", |t| t.replace(',', ";").into_bytes()),
        ("old mac", |t| t.replace('\n', "\r").into_bytes()),
        ("utf-16 tabs", |t| {
            let text = t.replace(',', "\t");
            let mut bytes = vec![0xff, 0xfe];
            bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            bytes
        }),
    ];
    for (name, form) in forms {
        let dir = fixture(5, Layout::IdHeader);
        for file in CHANNEL_FILES.iter().chain(&["labels.csv"]) {
            let path = dir.path().join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, form(&text)).unwrap();
        }
        let read_back =
            read(dir.path(), Layout::IdHeader).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read_back.ids, plain.ids, "{name}");
        assert_eq!(read_back.labels, plain.labels, "{name}");
        assert_eq!(read_back.channels, plain.channels, "{name}");
    }
    // A bad cell in a rewritten file: the original path, row 3 (line 4), column p7.
    let dir = fixture(5, Layout::IdHeader);
    set_cell(dir.path(), "science.csv", 3, 8, "oops");
    let path = dir.path().join("science.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, quote_all(&text)).unwrap();
    let message = read(dir.path(), Layout::IdHeader).unwrap_err();
    let expected = format!("{}: row 3 (line 4), column p7", path.display());
    assert!(message.starts_with(&expected), "{message}");
}
