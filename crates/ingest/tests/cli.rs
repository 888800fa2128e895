//! The `ingest` binary against the bad-input matrix: every case is one `error:` line naming the
//! file (and row and column where there is one), exit status 1, no temporary file left behind,
//! and the artifacts of the previous good run untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{CHANNEL_FILES, edit_line, set_cell, write_split};
use hits_core::config::Layout;

const ROWS: usize = 5;

/// A good train/test set, a pipeline pointing at it, and the artifacts of one good run.
struct Workspace {
    root: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        write_split(&root.path().join("train"), ROWS, Layout::IdHeader);
        write_split(&root.path().join("test"), 3, Layout::IdHeader);
        std::fs::remove_file(root.path().join("test/labels.csv")).unwrap();
        let workspace = Workspace { root };
        workspace.write_pipeline(&workspace.artifacts(), "");
        let out = workspace.ingest();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        workspace
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn artifacts(&self) -> PathBuf {
        self.path("artifacts")
    }

    fn pipeline(&self) -> PathBuf {
        self.path("p.toml")
    }

    fn write_pipeline(&self, artifacts: &Path, extra: &str) {
        let dir = |split: &str| self.path(split).to_str().unwrap().to_string();
        std::fs::write(
            self.pipeline(),
            format!(
                "artifacts = {:?}\n{extra}\n[data.splits.train]\ndir = {:?}\nlabelled = true\n\
                 [data.splits.test]\ndir = {:?}\nlabelled = false\n",
                artifacts.to_str().unwrap(),
                dir("train"),
                dir("test"),
            ),
        )
        .unwrap();
    }

    fn ingest(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ingest"))
            .arg("--pipeline")
            .arg(self.pipeline())
            .output()
            .unwrap()
    }

    /// Every file under the artifacts directory with its contents.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![self.artifacts()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    files.push((path, bytes));
                }
            }
        }
        files.sort();
        files
    }
}

/// Run ingest on a broken input and check the contract of a refusal.
fn assert_refused(case: &str, workspace: &Workspace, expected: &[&str]) {
    let before = workspace.snapshot();
    let out = workspace.ingest();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
    // Progress logs may precede it; the error itself is exactly one line, and the last.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{case}: one error line expected: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{case}: {stderr}");
    assert!(errors[0].starts_with("error: "), "{case}: {stderr}");
    for part in expected {
        assert!(errors[0].contains(part), "{case}: {part:?} not in {stderr}");
    }
    let after = workspace.snapshot();
    assert!(
        after
            .iter()
            .all(|(p, _)| !p.to_string_lossy().ends_with(".tmp")),
        "{case}: temporary file left behind"
    );
    assert!(before == after, "{case}: earlier artifacts changed");
}

/// Apply `edit` to every line of a channel file.
fn edit_all_lines(dir: &Path, file: &str, edit: impl Fn(&str) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text.lines().map(&edit).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

type Break = fn(&Path);

/// (case, how to break the train split, what the error must name)
const CSV_CASES: &[(&str, Break, &[&str])] = &[
    (
        "missing file",
        |d| std::fs::remove_file(d.join("science.csv")).unwrap(),
        &["science.csv", "file not found"],
    ),
    (
        "empty file",
        |d| std::fs::write(d.join("difference.csv"), "").unwrap(),
        &["difference.csv", "file is empty"],
    ),
    (
        "header only",
        |d| {
            let path = d.join("template.csv");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{}\n", text.lines().next().unwrap())).unwrap();
        },
        &["template.csv", "no candidate rows"],
    ),
    (
        "ragged row",
        |d| {
            edit_line(d, "science.csv", 3, |l| {
                l.rsplit_once(',').unwrap().0.into()
            })
        },
        &["science.csv", "row 3 (line 4)", "expected 442"],
    ),
    (
        "440 pixel columns",
        |d| edit_all_lines(d, "template.csv", |l| l.rsplit_once(',').unwrap().0.into()),
        &["template.csv", "440 pixel columns", "expected 441"],
    ),
    (
        "442 pixel columns",
        |d| edit_all_lines(d, "template.csv", |l| format!("{l},1.5")),
        &["template.csv", "442 pixel columns", "expected 441"],
    ),
    (
        "text cell",
        |d| set_cell(d, "difference.csv", 2, 6, "abc"),
        &["difference.csv", "row 2 (line 3)", "column p5", "\"abc\""],
    ),
    (
        "NaN cell",
        |d| set_cell(d, "snr_difference.csv", 3, 441, "NaN"),
        &["snr_difference.csv", "row 3 (line 4)", "column p440", "NaN"],
    ),
    (
        "Inf cell",
        |d| set_cell(d, "science.csv", 1, 1, "inf"),
        &["science.csv", "row 1 (line 2)", "column p0", "infinite"],
    ),
    (
        "empty cell",
        |d| set_cell(d, "template.csv", 4, 100, ""),
        &["template.csv", "row 4 (line 5)", "column p99", "empty cell"],
    ),
    (
        "different row counts",
        |d| {
            let path = d.join("science.csv");
            let text = std::fs::read_to_string(&path).unwrap();
            let kept: Vec<&str> = text.lines().take(ROWS).collect();
            std::fs::write(&path, kept.join("\n") + "\n").unwrap();
        },
        &["science.csv", "4 candidate rows", "template.csv has 5"],
    ),
    (
        "ids differ across channels",
        |d| set_cell(d, "difference.csv", 2, 0, "someone-else"),
        &["difference.csv", "row 2", "'someone-else'"],
    ),
    (
        "ids reordered across channels",
        |d| {
            let path = d.join("science.csv");
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.swap(1, 2);
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        },
        &["science.csv", "row 1", "same order"],
    ),
    (
        "duplicate ids",
        |d| {
            for file in CHANNEL_FILES {
                set_cell(d, file, 4, 0, "cand-1");
            }
        },
        &["template.csv", "row 4", "duplicate id 'cand-1'"],
    ),
    (
        "duplicate stamps",
        |d| {
            for file in CHANNEL_FILES {
                let path = d.join(file);
                let text = std::fs::read_to_string(&path).unwrap();
                let mut lines: Vec<String> = text.lines().map(String::from).collect();
                let pixels = lines[2].split_once(',').unwrap().1.to_string();
                lines[4] = format!("cand-3,{pixels}");
                std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            }
        },
        &[
            "duplicate candidate",
            "rows 2 and 4",
            "'cand-1' and 'cand-3'",
        ],
    ),
    (
        "label outside {0,1}",
        |d| set_cell(d, "labels.csv", 2, 1, "2"),
        &["labels.csv", "row 2 (line 3)", "column label"],
    ),
    (
        "labels file missing",
        |d| std::fs::remove_file(d.join("labels.csv")).unwrap(),
        &["labels.csv", "file not found"],
    ),
    (
        "labels with an extra id",
        |d| {
            let path = d.join("labels.csv");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text + "stranger,1\n").unwrap();
        },
        &["labels.csv", "'stranger'"],
    ),
    (
        "labels with a missing id",
        |d| edit_line(d, "labels.csv", 2, |_| "cand-0,1".into()),
        &["labels.csv", "row 2", "'cand-0'"],
    ),
];

#[test]
fn every_bad_csv_is_refused_cleanly() {
    for (case, break_input, expected) in CSV_CASES {
        let workspace = Workspace::new();
        break_input(&workspace.path("train"));
        assert_refused(case, &workspace, expected);
    }
}

#[test]
fn bad_pipeline_files_are_refused_cleanly() {
    for (case, extra, expected) in [
        (
            "unknown key",
            "[features]\nnormalization = \"zscore\"",
            &["p.toml", "normalization"][..],
        ),
        ("wrong type", "seed = \"forty-two\"", &["p.toml", "seed"]),
    ] {
        let workspace = Workspace::new();
        // Top-level keys must precede the tables, so the extra text goes first.
        let artifacts = workspace.artifacts();
        workspace.write_pipeline(&artifacts, extra);
        assert_refused(case, &workspace, expected);
    }
}

#[test]
fn unwritable_artifacts_directory_is_refused_cleanly() {
    let workspace = Workspace::new();
    // A plain file where the artifacts directory should be: nothing can be created under it
    // (a read-only directory would not stop root, which CI may run as).
    let blocked = workspace.path("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    workspace.write_pipeline(&blocked, "");
    assert_refused("unwritable artifacts", &workspace, &["blocked"]);
    assert_eq!(std::fs::read(&blocked).unwrap(), b"not a directory");
}
