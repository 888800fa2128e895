//! `bench study`: which recipe is more accurate, measured well enough to choose a default.
//!
//! A validation set of 1,342 candidates cannot rank recipes a few tenths of a point apart (one
//! candidate is 0.07 points, and the seed alone moves a recipe by more). The study trains each
//! pipeline with several seeds, each on its own training data as `just all` would, and scores
//! every model on one large simulated set from an independent simulator seed, through the
//! stage binaries (the study set is one more unlabelled split of each pipeline).

use std::path::{Path, PathBuf};

use anyhow::Context;
use evaluate::{Report, Scores, ThresholdChoice};
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::config::SplitConfig;
use hits_core::manifest::Manifest;
use hits_core::table::Table;
use serde::Serialize;

use crate::child::run_stage;
use crate::variant;

/// The name of the study set's split in every pipeline of the study.
const SPLIT: &str = "study";

/// `study.json`.
#[derive(Debug, Serialize)]
pub struct Study {
    pub date: String,
    /// The answer key of the study set.
    pub answers: PathBuf,
    pub candidates: usize,
    pub runs: Vec<Run>,
    pub recipes: Vec<Recipe>,
}

/// One pipeline trained with one seed, scored on the study set at the threshold its
/// `evaluate` chose.
#[derive(Debug, Serialize)]
pub struct Run {
    pub pipeline: String,
    pub seed: u64,
    /// Wall time of the `train` stage (from its manifest, so a rerun that skips it keeps it).
    pub train_seconds: f64,
    #[serde(flatten)]
    pub report: Report,
}

/// One pipeline over its seeds: mean and range.
#[derive(Debug, Serialize)]
pub struct Recipe {
    pub pipeline: String,
    pub seeds: usize,
    pub train_seconds: [f64; 2],
    pub accuracy_mean: f64,
    pub accuracy_range: [f64; 2],
    pub roc_auc_mean: f64,
    pub fnr_at_fpr_1e_2_mean: f64,
    pub fnr_at_fpr_1e_3_mean: f64,
}

pub struct StudyArgs<'a> {
    pub pipelines: &'a [PathBuf],
    pub seeds: &'a [u64],
    pub candidates: usize,
    pub data_seed: u64,
    pub out: &'a Path,
}

pub fn run(args: &StudyArgs, date: String) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.pipelines.is_empty() && !args.seeds.is_empty(),
        "a study needs at least one pipeline and one seed"
    );
    let stems = names(args.pipelines)?;
    let dir = args.out.with_extension("");
    let data_dir = PathBuf::from(format!("data/sim-study-{}", args.data_seed));
    let (_, data_toml) = variant(&args.pipelines[0], &dir, "data", |p| {
        p.seed = args.data_seed;
        p.simulate.out_dir = data_dir.clone();
        // Only the test split is used; the simulator needs some training candidates.
        p.simulate.train_candidates = 2;
        p.simulate.test_candidates = args.candidates;
    })?;
    run_stage("simulate", &["generate"], &data_toml)?;
    let answers = data_dir.join(hits_core::config::ANSWER_KEY_FILE);

    let mut runs = Vec::new();
    for (base, stem) in args.pipelines.iter().zip(stems) {
        for &seed in args.seeds {
            tracing::info!("study: {stem}, seed {seed}");
            let (pipeline, path) = variant(base, &dir, &format!("{stem}-seed{seed}"), |p| {
                p.seed = seed;
                let split = SplitConfig {
                    dir: data_dir.join("test"),
                    labelled: false,
                };
                p.data.splits.insert(SPLIT.into(), split);
            })?;
            for stage in ["ingest", "features", "train", "evaluate"] {
                run_stage(stage, &[], &path)?;
            }
            run_stage("submit", &["predict", "--split", SPLIT], &path)?;
            let report = score(&pipeline, &answers)?;
            let train_seconds = Manifest::read(&pipeline.stage_dir(Stage::Train))?.seconds;
            tracing::info!(
                "study: {stem}, seed {seed}: accuracy {:.4}, ROC AUC {:.5}",
                report.accuracy,
                report.roc_auc
            );
            runs.push(Run {
                pipeline: stem.clone(),
                seed,
                train_seconds,
                report,
            });
        }
    }
    let recipes = summarise(&runs);
    let study = Study {
        date,
        answers,
        candidates: args.candidates,
        runs,
        recipes,
    };
    hits_core::io::write_json_atomic(args.out, &study)?;
    println!("{}", table(&study));
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Each pipeline's file stem, which names its runs' directories and its row of the table.
fn names(pipelines: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(pipelines.len());
    for path in pipelines {
        let name = path
            .file_stem()
            .with_context(|| format!("{}: not a pipeline file", path.display()))?
            .to_string_lossy()
            .into_owned();
        anyhow::ensure!(
            !names.contains(&name),
            "{}: a second pipeline named '{name}' (the study names runs by file stem)",
            path.display()
        );
        names.push(name);
    }
    Ok(names)
}

/// The run's study-set predictions against the answer key, at its chosen threshold.
fn score(pipeline: &Pipeline, answers: &Path) -> anyhow::Result<Report> {
    let predictions = pipeline
        .stage_dir(Stage::Submit)
        .join(submit::PREDICTIONS_FILE);
    let table = Table::read(&predictions)?;
    let ids = table.texts("id")?;
    let p_real = table.numbers("p_real")?;
    let labels = submit::answers_for(&ids, &predictions, answers)?;
    let choice = ThresholdChoice::read_for_model(
        &pipeline.stage_dir(Stage::Evaluate),
        &pipeline.stage_dir(Stage::Train),
    )?;
    let scores = Scores {
        labels,
        p_real,
        snr: None,
    };
    Ok(Report::new(&scores, choice.threshold))
}

fn summarise(runs: &[Run]) -> Vec<Recipe> {
    let mut names: Vec<&str> = runs.iter().map(|r| r.pipeline.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let of: Vec<&Run> = runs.iter().filter(|r| r.pipeline == name).collect();
            let mean = |f: fn(&Run) -> f64| of.iter().map(|r| f(r)).sum::<f64>() / of.len() as f64;
            let range = |f: fn(&Run) -> f64| {
                of.iter()
                    .map(|r| f(r))
                    .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], v| {
                        [lo.min(v), hi.max(v)]
                    })
            };
            Recipe {
                pipeline: name.into(),
                seeds: of.len(),
                train_seconds: range(|r| r.train_seconds),
                accuracy_mean: mean(|r| r.report.accuracy),
                accuracy_range: range(|r| r.report.accuracy),
                roc_auc_mean: mean(|r| r.report.roc_auc),
                fnr_at_fpr_1e_2_mean: mean(|r| r.report.fnr_at_fpr_1e_2),
                fnr_at_fpr_1e_3_mean: mean(|r| r.report.fnr_at_fpr_1e_3),
            }
        })
        .collect()
}

/// The recipes as a Markdown table, for the README.
fn table(study: &Study) -> String {
    let mut out = format!(
        "{} candidates ({}), {}\n\n| pipeline | seeds | train | accuracy: mean (range) | ROC AUC, mean | FNR at FPR 1e-2 / 1e-3, mean |\n|---|---:|---:|---|---:|---|\n",
        study.candidates,
        study.answers.display(),
        study.date
    );
    for r in &study.recipes {
        out += &format!(
            "| `{}` | {} | {:.0}–{:.0} s | {:.4} ({:.4}–{:.4}) | {:.5} | {:.4} / {:.3} |\n",
            r.pipeline,
            r.seeds,
            r.train_seconds[0],
            r.train_seconds[1],
            r.accuracy_mean,
            r.accuracy_range[0],
            r.accuracy_range[1],
            r.roc_auc_mean,
            r.fnr_at_fpr_1e_2_mean,
            r.fnr_at_fpr_1e_3_mean
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pipeline: &str, seed: u64, train_seconds: f64, correct: &[u8]) -> Run {
        // Two real and two bogus candidates; `correct[i]` = 1 when candidate i is right.
        let labels = vec![1, 1, 0, 0];
        let p_real = labels
            .iter()
            .zip(correct)
            .map(|(&l, &c)| if (l == 1) == (c == 1) { 0.9 } else { 0.1 })
            .collect();
        let scores = Scores {
            labels,
            p_real,
            snr: None,
        };
        Run {
            pipeline: pipeline.into(),
            seed,
            train_seconds,
            report: Report::new(&scores, 0.5),
        }
    }

    #[test]
    fn pipelines_are_named_by_stem_and_once() {
        let paths = |p: &[&str]| p.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            names(&paths(&["pipelines/default.toml", "mine/seed.toml"])).unwrap(),
            ["default", "seed"]
        );
        let err = names(&paths(&["pipelines/seed.toml", "mine/seed.toml"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mine/seed.toml: a second pipeline named 'seed' (the study names runs by file stem)"
        );
    }

    #[test]
    fn recipes_are_summarised_per_pipeline_in_order() {
        let runs = [
            run("b", 1, 10.0, &[1, 1, 1, 1]),
            run("b", 2, 14.0, &[1, 1, 1, 0]),
            run("a", 1, 300.0, &[1, 0, 1, 0]),
        ];
        let recipes = summarise(&runs);
        assert_eq!(recipes.len(), 2);
        let (b, a) = (&recipes[0], &recipes[1]);
        assert_eq!((b.pipeline.as_str(), b.seeds), ("b", 2));
        assert_eq!(b.train_seconds, [10.0, 14.0]);
        assert_eq!(b.accuracy_mean, 0.875);
        assert_eq!(b.accuracy_range, [0.75, 1.0]);
        assert_eq!(
            (a.pipeline.as_str(), a.seeds, a.accuracy_mean),
            ("a", 1, 0.5)
        );
        let text = table(&Study {
            date: "today".into(),
            answers: "answers.csv".into(),
            candidates: 4,
            runs: Vec::new(),
            recipes,
        });
        assert!(
            text.contains("| `b` | 2 | 10–14 s | 0.8750 (0.7500–1.0000) |"),
            "{text}"
        );
    }
}
