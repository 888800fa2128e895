//! train -> evaluate -> submit -> score on the tiny separable `features::toy` set (SeedCnn,
//! 3 epochs: seconds), through the libraries and the `submit` binary.

use std::path::Path;
use std::process::Command;

use features::NormalisationSpec;
use features::toy::{
    outcome, run_stage, seed_pipeline, toy_pipeline, write_features, write_features_as,
};
use hits_core::Stage;
use hits_core::config::ThresholdRule;

fn submit(pipeline_file: &Path, args: &[&str]) -> (bool, String) {
    run_stage(env!("CARGO_BIN_EXE_submit"), pipeline_file, args)
}

#[test]
fn tiny_pipeline_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let mut pipeline = toy_pipeline(root.path());
    pipeline.train.epochs = 3;
    pipeline.train.batch_size = 16;
    // The toy pipeline's `test` split is unlabelled, as the default's.
    write_features(&pipeline, &[("train", 90, true), ("test", 40, false)]);
    train::run(&pipeline, false).unwrap();

    // Validation: chooses the threshold and writes every output.
    let metrics = evaluate::run(&pipeline, None).unwrap();
    assert_eq!(metrics.metrics.candidates, 30);
    assert_eq!(metrics.metrics.threshold, 0.5);
    // Three epochs rank the classes apart, even if P(real) has not moved far from 0.5 yet.
    assert!(metrics.metrics.roc_auc > 0.9, "{metrics:?}");
    let eval_dir = pipeline.stage_dir(Stage::Evaluate);
    for name in [
        "metrics.json",
        "report.md",
        "misclassified.csv",
        "threshold.json",
        "confusion.png",
        "roc.png",
        "det.png",
        "scores.png",
        "misclassified.png",
        "loss.png",
        "accuracy.png",
        "pipeline.toml",
        "manifest.json",
    ] {
        assert!(eval_dir.join(name).exists(), "{name} missing");
    }
    let report = std::fs::read_to_string(eval_dir.join("report.md")).unwrap();
    assert!(
        report.contains("| accuracy |") && report.contains("|SNR| < 7"),
        "{report}"
    );
    let misclassified = std::fs::read_to_string(eval_dir.join("misclassified.csv")).unwrap();
    assert!(misclassified.starts_with("id,label,p_real,centre_snr\n"));
    assert_eq!(
        misclassified.lines().count() - 1,
        metrics.metrics.confusion.false_positive + metrics.metrics.confusion.false_negative
    );

    // A whole labelled split at the chosen threshold; an unlabelled one is refused.
    let whole = evaluate::run(&pipeline, Some("train")).unwrap();
    assert_eq!(whole.metrics.candidates, 90);
    assert!(eval_dir.join("train/metrics.json").exists());
    let err = evaluate::run(&pipeline, Some("test"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.arrow") && err.contains("test-000 has no label"),
        "{err}"
    );

    // submit: writes, then skips while nothing changed.
    let pipeline_file = root.path().join("p.toml");
    std::fs::write(&pipeline_file, pipeline.to_toml()).unwrap();
    let (ok, out) = submit(&pipeline_file, &["predict"]);
    assert!(ok, "{out}");
    let submit_dir = pipeline.stage_dir(Stage::Submit);
    let submission = std::fs::read_to_string(submit_dir.join("submission.csv")).unwrap();
    let lines: Vec<&str> = submission.lines().collect();
    assert_eq!(lines[0], "id,label");
    assert_eq!(lines.len(), 41);
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("test-") && (l.ends_with(",0") || l.ends_with(",1")))
    );
    let predictions = std::fs::read_to_string(submit_dir.join("predictions.csv")).unwrap();
    assert!(predictions.starts_with("id,p_real,label\ntest-000,"));
    let used: model::ModelMetadata =
        hits_core::io::read_json(&submit_dir.join("model.json")).unwrap();
    assert_eq!(used.threshold, 0.5);
    let (ok, out) = submit(&pipeline_file, &["predict"]);
    assert!(
        ok && out.contains("submit: up to date (inputs unchanged), skipped"),
        "{out}"
    );

    // Score against the true labels: the same accuracy as counting by hand.
    let key = root.path().join("answers.csv");
    let answers: String = (0..40)
        .map(|i| format!("test-{i:03},{}\n", i % 2))
        .collect();
    std::fs::write(&key, format!("id,label\n{answers}")).unwrap();
    let (ok, out) = submit(
        &pipeline_file,
        &["score", "--answers", key.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let score: submit::Score = hits_core::io::read_json(&submit_dir.join("score.json")).unwrap();
    let right = lines[1..]
        .iter()
        .enumerate()
        .filter(|(i, l)| l.ends_with(&format!(",{}", i % 2)))
        .count();
    assert_eq!(score.accuracy, right as f64 / 40.0);
    assert!(out.contains(&score.headline()), "{out}");

    // Without --answers: the simulator's key in `[simulate] out_dir`, or a skip that says so.
    let (ok, out) = submit(&pipeline_file, &["score"]);
    assert!(
        ok && out.contains("no answer key") && out.contains("skipped"),
        "{out}"
    );
    pipeline.simulate.out_dir = root.path().to_path_buf();
    std::fs::write(&pipeline_file, pipeline.to_toml()).unwrap();
    std::fs::copy(&key, pipeline.simulate.answer_key()).unwrap();
    let (ok, out) = submit(&pipeline_file, &["score"]);
    assert!(ok && out.contains(&score.headline()), "{out}");

    // Another threshold rule: evaluate chooses again and submit reruns.
    pipeline.evaluate.threshold = ThresholdRule::EqualErrorRate;
    std::fs::write(&pipeline_file, pipeline.to_toml()).unwrap();
    let eer = evaluate::run(&pipeline, None).unwrap();
    assert_eq!(eer.threshold_rule, ThresholdRule::EqualErrorRate);
    let (ok, out) = submit(&pipeline_file, &["predict"]);
    assert!(ok && !out.contains("skipped"), "{out}");
    let used: model::ModelMetadata =
        hits_core::io::read_json(&submit_dir.join("model.json")).unwrap();
    assert_eq!(used.threshold, eer.metrics.threshold);

    // A retrained model invalidates the threshold until evaluate runs again.
    pipeline.seed += 1;
    train::run(&pipeline, false).unwrap();
    let err = submit::run(&pipeline, "test").unwrap_err().to_string();
    assert!(
        err.contains("threshold.json") && err.contains("re-run `just evaluate`"),
        "{err}"
    );

    let (ok, out) = submit(&pipeline_file, &["summary"]);
    assert!(
        ok && out.contains("validation (validation ids of split train, 30 candidates"),
        "{out}"
    );
    assert!(
        out.contains("time per stage: simulate -, ingest -, features "),
        "{out}"
    );
}

#[test]
fn the_binary_refuses_a_model_trained_on_other_features() {
    let root = tempfile::tempdir().unwrap();
    let (pipeline, file) = seed_pipeline(root.path(), 1, 40, |_| {});
    train::run(&pipeline, false).unwrap();
    evaluate::run(&pipeline, None).unwrap();
    let (ok, text) = submit(&file, &["predict", "--split", "train"]);
    assert!(ok, "{text}");
    let out = pipeline.stage_dir(Stage::Submit);
    let before: Vec<_> = ["submission.csv", "predictions.csv", "model.json"]
        .iter()
        .map(|name| std::fs::read(out.join(name)).unwrap())
        .collect();

    // The features are rebuilt with another normalisation; the model was not retrained.
    write_features_as(
        &pipeline,
        &[("train", 40, true)],
        NormalisationSpec::MinmaxPerStamp,
    );
    let (ok, text) = submit(&file, &["predict", "--split", "train"]);
    assert!(!ok, "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    for part in ["model.json", "normalisation differs", "minmax_per_stamp"] {
        assert!(errors[0].contains(part), "{part:?} not in {text}");
    }
    let after: Vec<_> = ["submission.csv", "predictions.csv", "model.json"]
        .iter()
        .map(|name| std::fs::read(out.join(name)).unwrap())
        .collect();
    assert!(before == after, "earlier submit artifacts changed");
}

/// One candidate row: `cells` values of a wave unique to (candidate, channel).
fn csv_row(candidate: usize, channel: usize) -> Vec<String> {
    (0..441)
        .map(|p| {
            format!(
                "{:.4}",
                ((candidate * 7 + channel * 3 + p) as f32 * 0.37).sin()
            )
        })
        .collect()
}

/// `predict DIR`: a directory it has never seen, in both layouts, with and without labels,
/// gives the same P(real) per candidate; bad input is one line, exit non-zero, nothing written.
#[test]
fn predict_scores_a_new_directory_in_either_layout() {
    let root = tempfile::tempdir().unwrap();
    let (pipeline, _) = seed_pipeline(root.path(), 2, 60, |_| {});
    train::run(&pipeline, false).unwrap();
    evaluate::run(&pipeline, None).unwrap();

    let channels = ["template", "science", "difference", "snr_difference"];
    let n = 7;
    let (with_ids, plain) = (
        root.path().join("night-ids"),
        root.path().join("night-plain"),
    );
    for dir in [&with_ids, &plain] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (c, name) in channels.iter().enumerate() {
        let header: Vec<String> = (0..441).map(|p| format!("p{p}")).collect();
        let mut a = format!("id,{}\n", header.join(","));
        let mut b = String::new();
        for i in 0..n {
            let row = csv_row(i, c).join(",");
            a += &format!("cand-{i},{row}\n");
            b += &format!("{row}\n");
        }
        std::fs::write(with_ids.join(format!("{name}.csv")), a).unwrap();
        std::fs::write(plain.join(format!("{name}.csv")), b).unwrap();
    }
    let labels: String = (0..n).map(|i| format!("{}\n", i % 2)).collect();
    std::fs::write(plain.join("labels.csv"), labels).unwrap();

    let predict_with = |dir: &Path, out: &Path, extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_predict"))
            .arg(dir)
            .arg("--model")
            .arg(&pipeline.artifacts)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap();
        outcome(output)
    };
    let predict = |dir: &Path, out: &Path| predict_with(dir, out, &[]);
    let p_real = |out: &Path| -> Vec<String> {
        std::fs::read_to_string(out.join("predictions.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    let (out_ids, out_plain) = (root.path().join("out-ids"), root.path().join("out-plain"));
    let (ok, text) = predict(&with_ids, &out_ids);
    assert!(
        ok && text.contains("7 candidates (IdHeader layout)"),
        "{text}"
    );
    assert!(
        !out_ids.join("metrics.json").exists(),
        "no labels, no metrics"
    );
    let (ok, text) = predict(&plain, &out_plain);
    assert!(
        ok && text.contains("(Plain layout)") && text.contains("labels: accuracy"),
        "{text}"
    );
    assert!(out_plain.join("metrics.json").exists() && out_plain.join("p_real.png").exists());
    assert_eq!(p_real(&out_ids), p_real(&out_plain));
    let ids: Vec<String> = std::fs::read_to_string(out_ids.join("predictions.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(ids, (0..n).map(|i| format!("cand-{i}")).collect::<Vec<_>>());

    // Explanations of chosen candidates; an unknown id is one line, and nothing is written.
    let out_explain = root.path().join("out-explain");
    let (ok, text) = predict_with(&with_ids, &out_explain, &["--explain", "cand-1,cand-4"]);
    assert!(ok && out_explain.join("explain.png").exists(), "{text}");
    let out_unknown = root.path().join("out-unknown");
    let (ok, text) = predict_with(&with_ids, &out_unknown, &["--explain", "cand-9"]);
    let error = text
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_default();
    assert!(!ok && error.contains("--explain cand-9"), "{text}");
    assert!(
        !out_unknown.exists(),
        "nothing written for a refused --explain"
    );

    // The same stamps as NumPy arrays, channels last: .npy alone, .npz with labels.
    let pixel = |i: usize, c: usize, p: usize| csv_row(i, c)[p].parse::<f32>().unwrap();
    let npy_path = root.path().join("night.npy");
    std::fs::write(&npy_path, ingest::numpy::toy::stamps(n, pixel)).unwrap();
    let npz_path = root.path().join("night.npz");
    let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let archive = ingest::numpy::toy::npz(&[
        ("stamps", ingest::numpy::toy::stamps(n, pixel)),
        ("labels", ingest::numpy::toy::npy("|u1", &[n], &labels)),
    ]);
    std::fs::write(&npz_path, archive).unwrap();
    let (out_npy, out_npz) = (root.path().join("out-npy"), root.path().join("out-npz"));
    let (ok, text) = predict(&npy_path, &out_npy);
    assert!(ok && text.contains("7 candidates (NumPy)"), "{text}");
    assert_eq!(p_real(&out_npy), p_real(&out_ids));
    let (ok, text) = predict(&npz_path, &out_npz);
    assert!(ok && text.contains("labels: accuracy"), "{text}");
    assert_eq!(p_real(&out_npz), p_real(&out_ids));
    assert_eq!(
        std::fs::read(out_npz.join("metrics.json")).unwrap(),
        std::fs::read(out_plain.join("metrics.json")).unwrap()
    );

    // A ragged row: refused in one line naming the file and row; nothing written.
    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for name in channels {
        std::fs::copy(
            with_ids.join(format!("{name}.csv")),
            broken.join(format!("{name}.csv")),
        )
        .unwrap();
    }
    let science = broken.join("science.csv");
    let text = std::fs::read_to_string(&science).unwrap();
    let cut: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 3 {
                l.rsplit_once(',').unwrap().0.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&science, cut.join("\n") + "\n").unwrap();
    let out_broken = root.path().join("out-broken");
    let (ok, text) = predict(&broken, &out_broken);
    assert!(!ok, "{text}");
    let error = text
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_default();
    assert!(
        error.contains("science.csv") && error.contains("row 3"),
        "{text}"
    );
    assert!(!out_broken.join("predictions.csv").exists());
}
