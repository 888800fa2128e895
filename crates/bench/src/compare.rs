//! Our figures beside the Keras peer's, as ratios (ours / Keras) against the targets.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cpu;

/// What the issue asks of a figure.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    /// ours / Keras at least this (higher is better) or at most this (lower is better).
    Ratio(f64),
    /// Ours below this, whatever Keras does.
    Below(f64),
    /// Ours at least this, whatever Keras does.
    AtLeast(f64),
    /// Ours at most this much below Keras' (e.g. accuracy within 0.5 points).
    NotBelowKerasBy(f64),
}

impl Target {
    fn met(self, ours: f64, keras: f64, higher_is_better: bool) -> bool {
        let ratio = ours / keras;
        match self {
            Target::Ratio(t) if higher_is_better => ratio >= t,
            Target::Ratio(t) => ratio <= t,
            Target::Below(t) => ours < t,
            Target::AtLeast(t) => ours >= t,
            Target::NotBelowKerasBy(t) => ours >= keras - t,
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    figure: &'static str,
    unit: &'static str,
    ours: f64,
    keras: f64,
    /// ours / keras.
    ratio: f64,
    higher_is_better: bool,
    target: Option<Target>,
    met: Option<bool>,
}

impl Row {
    /// `[ours, keras]`: the best of each side's rounds (NaN where no round has the figure).
    fn new(
        figure: &'static str,
        unit: &'static str,
        [ours, keras]: [f64; 2],
        higher_is_better: bool,
        target: Option<Target>,
    ) -> Self {
        Row {
            figure,
            unit,
            ours,
            keras,
            ratio: ours / keras,
            higher_is_better,
            target,
            met: target
                .filter(|_| ours.is_finite() && keras.is_finite())
                .map(|target| target.met(ours, keras, higher_is_better)),
        }
    }

    /// The target column: e.g. `≥ 3.00x: met`, `< 1.00: met`, or `not measured` where either
    /// side lacks the figure (the large set skipped).
    fn target_text(&self) -> String {
        let Some(target) = self.target else {
            return String::new();
        };
        let goal = match target {
            Target::Ratio(t) if self.higher_is_better => format!("≥ {t:.2}x"),
            Target::Ratio(t) => format!("≤ {t:.2}x"),
            Target::Below(t) => format!("< {t:.2}"),
            Target::AtLeast(t) => format!("≥ {t:.2}"),
            Target::NotBelowKerasBy(t) => format!("≥ Keras − {t}"),
        };
        let verdict = match self.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        };
        format!("{goal}: {verdict}")
    }
}

/// Read every round's JSON; a figure's best value over the rounds counts (the usual way to
/// take noise from other processes out of a benchmark).
fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    paths.iter().map(|p| read(p)).collect()
}

fn read(path: &Path) -> anyhow::Result<Value> {
    hits_core::io::read_json(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn best(rounds: &[Value], higher_is_better: bool, figure: impl Fn(&Value) -> Option<f64>) -> f64 {
    let values = rounds.iter().filter_map(figure);
    if higher_is_better {
        values.fold(f64::NAN, f64::max)
    } else {
        values.fold(f64::NAN, f64::min)
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

fn seed_training(ours: &Value) -> Option<&Value> {
    ours["training"]
        .as_array()?
        .iter()
        .find(|t| t["recipe"] == "seed")
}

fn our_inference(ours: &Value, batch: u64) -> Option<f64> {
    ours["inference"]
        .as_array()?
        .iter()
        .find(|t| t["model"] == "seed_cnn" && t["batch"] == batch)?["candidates_per_second"]
        .as_f64()
}

pub fn run(ours: &[PathBuf], keras: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let (ours, keras) = (read_all(ours)?, read_all(keras)?);
    let peak = ours
        .first()
        .and_then(|v| v["machine"]["peak_gflops"].as_f64())
        .unwrap_or(f64::NAN);
    let mut rows = Vec::new();
    let mut row = |figure,
                   unit,
                   higher_is_better,
                   target: Option<Target>,
                   our: &dyn Fn(&Value) -> Option<f64>,
                   their: &dyn Fn(&Value) -> Option<f64>| {
        let ours = best(&ours, higher_is_better, our);
        let keras = best(&keras, higher_is_better, their);
        rows.push(Row::new(
            figure,
            unit,
            [ours, keras],
            higher_is_better,
            target,
        ));
    };
    row(
        "ingest + features, default set",
        "s",
        false,
        Some(Target::Below(1.0)),
        &|v| {
            let set = &v["ingest_features"][0];
            Some(set["ingest"]["seconds"].as_f64()? + set["features"]["seconds"].as_f64()?)
        },
        &|v| v["ingest_features"]["seconds"].as_f64(),
    );
    row(
        "ingest + features, default set",
        "candidates/s",
        true,
        None,
        &|v| v["ingest_features"][0]["candidates_per_second"].as_f64(),
        &|v| v["ingest_features"]["candidates_per_second"].as_f64(),
    );
    row(
        "ingest + features, default set",
        "CSV MB/s",
        true,
        None,
        &|v| v["ingest_features"][0]["csv_megabytes_per_second"].as_f64(),
        &|v| v["ingest_features"]["csv_megabytes_per_second"].as_f64(),
    );
    // `predict` on the large set against the notebook's way of the same job: pandas
    // `read_csv` of the four files, reshape, Keras `predict`, the submission CSV.
    let our_predict = |v: &Value, key: &str| v["predict"].get(0)?[key].as_f64();
    row(
        "predict, large set: CSV in, predictions out",
        "candidates/s",
        true,
        Some(Target::AtLeast(20_000.0)),
        &|v| our_predict(v, "candidates_per_second"),
        &|v| v["predict"]["candidates_per_second"].as_f64(),
    );
    row(
        "predict, large set: peak RSS",
        "MiB",
        false,
        Some(Target::Below(1024.0)),
        &|v| v["predict"].get(0)?["run"]["peak_rss_mib"].as_f64(),
        &|v| v["predict"]["peak_rss_mib"].as_f64(),
    );
    row(
        "seed recipe training, total",
        "s",
        false,
        Some(Target::Ratio(1.0 / 3.0)),
        &|v| seed_training(v)?["seconds_total"].as_f64(),
        &|v| v["seed_training"]["seconds_total"].as_f64(),
    );
    let per_epoch = |list: &Value| {
        let values: Vec<f64> = list.as_array()?.iter().filter_map(Value::as_f64).collect();
        median(&values)
    };
    row(
        "seed recipe training, median epoch",
        "s",
        false,
        Some(Target::Ratio(1.0 / 3.0)),
        &|v| per_epoch(&seed_training(v)?["seconds_per_epoch"]),
        &|v| per_epoch(&v["seed_training"]["seconds_per_epoch"]),
    );
    row(
        "seed recipe validation accuracy",
        "",
        true,
        Some(Target::NotBelowKerasBy(0.005)),
        &|v| seed_training(v)?["val_accuracy"].as_f64(),
        &|v| v["seed_training"]["val_accuracy"].as_f64(),
    );
    for (batch, target) in [(1, None), (64, None), (1024, Some(Target::Ratio(3.0)))] {
        let figure = match batch {
            1 => "SeedCnn inference, batch 1",
            64 => "SeedCnn inference, batch 64",
            _ => "SeedCnn inference, batch 1024",
        };
        row(
            figure,
            "candidates/s",
            true,
            target,
            &move |v| our_inference(v, batch),
            &move |v| v["inference_candidates_per_second"][batch.to_string()].as_f64(),
        );
    }
    let flops = cpu::seed_cnn_flops() as f64 / 1e9;
    let our_gflops = |v: &Value| our_inference(v, 1024).map(|r| r * flops);
    row(
        "SeedCnn inference, batch 1024",
        "GFLOP/s",
        true,
        Some(Target::AtLeast(0.2 * peak)),
        &our_gflops,
        &|v| {
            v["inference_candidates_per_second"]["1024"]
                .as_f64()
                .map(|r| r * flops)
        },
    );

    println!("| figure | unit | ours | Keras | ours / Keras | target |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.4} | {:.4} | {:.3} | {} |",
            r.figure,
            r.unit,
            r.ours,
            r.keras,
            r.ratio,
            r.target_text()
        );
    }
    println!("CPU f32 peak assumed: {peak:.1} GFLOP/s (the GFLOP/s target is 20% of it)");
    // The best of the rounds: the peak is what the CPU can do, and neighbours on a shared
    // machine only lower it.
    let measured = ours
        .iter()
        .filter_map(|v| v["machine"]["measured_peak_gflops"].as_f64())
        .reduce(f64::max);
    let achieved = best(&ours, true, our_gflops);
    if let Some(measured) = measured.filter(|_| achieved.is_finite()) {
        println!(
            "CPU f32 peak measured (multiply-adds on every core): {measured:.1} GFLOP/s; \
             SeedCnn at batch 1024 reaches {:.0}% of it",
            100.0 * achieved / measured
        );
    }
    let json =
        serde_json::json!({ "rows": rows, "peak_gflops": peak, "measured_peak_gflops": measured });
    hits_core::io::write_json_atomic(out, &json)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Row, Target};

    #[test]
    fn targets_are_met_on_the_right_side() {
        // Training time: ours / Keras at most 1/3.
        assert!(Target::Ratio(1.0 / 3.0).met(4.0, 20.0, false));
        assert!(!Target::Ratio(1.0 / 3.0).met(8.0, 20.0, false));
        // Inference: at least 3x Keras.
        assert!(Target::Ratio(3.0).met(45_000.0, 9_000.0, true));
        assert!(!Target::Ratio(3.0).met(20_000.0, 9_000.0, true));
        // Ingest + features under 1 s, whatever Keras takes.
        assert!(Target::Below(1.0).met(0.9, 0.5, false));
        assert!(!Target::Below(1.0).met(1.0, 5.0, false));
        assert!(Target::AtLeast(31.3).met(31.3, 100.0, true));
        assert!(!Target::AtLeast(31.3).met(31.2, 1.0, true));
        // Accuracy within 0.5 points of Keras, or better.
        assert!(Target::NotBelowKerasBy(0.005).met(0.975, 0.978, true));
        assert!(!Target::NotBelowKerasBy(0.005).met(0.972, 0.978, true));
    }

    /// A figure no round measured (the large set skipped) is "not measured", never "missed".
    #[test]
    fn unmeasured_figures_are_not_missed() {
        let target = Some(Target::AtLeast(20_000.0));
        let row = |ours, keras| Row::new("predict", "candidates/s", [ours, keras], true, target);
        assert_eq!(
            row(f64::NAN, f64::NAN).target_text(),
            "≥ 20000.00: not measured"
        );
        assert_eq!(
            row(25_000.0, f64::NAN).target_text(),
            "≥ 20000.00: not measured"
        );
        assert_eq!(row(25_000.0, 7_000.0).target_text(), "≥ 20000.00: met");
        assert_eq!(row(15_000.0, 7_000.0).target_text(), "≥ 20000.00: missed");
    }
}
