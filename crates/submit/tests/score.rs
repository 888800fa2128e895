//! Scoring a submission against an answer key.

use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn accuracy_and_f1_of_the_real_class() {
    let dir = tempfile::tempdir().unwrap();
    // Answers in another order than the submission: matched by id.
    let submission = write(dir.path(), "s.csv", "id,label\na,1\nb,1\nc,0\nd,0\ne,1\n");
    let answers = write(dir.path(), "k.csv", "id,label\ne,1\nd,1\nc,0\nb,0\na,1\n");
    let score = submit::score(&submission, &answers).unwrap();
    // TP a,e; FP b; FN d; TN c.
    assert_eq!(score.candidates, 5);
    assert_eq!(score.accuracy, 0.6);
    assert_eq!(score.f1, 4.0 / 6.0);
    assert_eq!(score.headline(), "accuracy 0.6, F1 0.6667");
}

#[test]
fn headline_prints_like_python_round() {
    let dir = tempfile::tempdir().unwrap();
    // 1000 candidates: 6 false negatives, 6 false positives -> accuracy 0.988 as the reference.
    let rows: Vec<(String, u8, u8)> = (0..1000)
        .map(|i| {
            let truth = (i % 2) as u8;
            let wrong = i < 12;
            (
                format!("c{i}"),
                truth,
                if wrong { 1 - truth } else { truth },
            )
        })
        .collect();
    let csv = |pick: fn(&(String, u8, u8)) -> u8| {
        std::iter::once("id,label\n".to_string())
            .chain(rows.iter().map(|r| format!("{},{}\n", r.0, pick(r))))
            .collect::<String>()
    };
    let submission = write(dir.path(), "s.csv", &csv(|r| r.2));
    let answers = write(dir.path(), "k.csv", &csv(|r| r.1));
    let score = submit::score(&submission, &answers).unwrap();
    assert_eq!(score.headline(), "accuracy 0.988, F1 0.988");
}

#[test]
fn missing_extra_and_duplicate_ids_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let submission = write(dir.path(), "s.csv", "id,label\na,1\nb,0\n");
    let short = write(dir.path(), "short.csv", "id,label\na,1\n");
    let err = submit::score(&submission, &short).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: no answer for candidate b (row 2 of {})",
            short.display(),
            submission.display()
        )),
        "{err}"
    );
    let long = write(dir.path(), "long.csv", "id,label\na,1\nb,0\nz,1\n");
    let err = submit::score(&submission, &long).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: candidate z (row 3) is missing from",
            long.display()
        )),
        "{err}"
    );
    let twice = write(dir.path(), "twice.csv", "id,label\na,1\nb,0\na,0\n");
    let err = submit::score(&twice, &long).unwrap_err().to_string();
    assert!(
        err.contains("twice.csv: row 3 (line 4), column id: duplicate id a (first in row 1)"),
        "{err}"
    );
    let bad = write(dir.path(), "bad.csv", "id,label\na,real\nb,0\n");
    let err = submit::score(&bad, &long).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv: row 1 (line 2), column label"),
        "{err}"
    );
    let header = write(dir.path(), "header.csv", "id,prediction\na,1\n");
    let err = submit::score(&header, &long).unwrap_err().to_string();
    assert!(err.contains("has no 'label' column"), "{err}");
}
