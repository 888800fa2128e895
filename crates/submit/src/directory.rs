//! Score a directory of candidates never seen before with a trained model, no pipeline file
//! to write: the four channel CSVs in either layout (detected from the files), optionally
//! `labels.csv`; or a NumPy `.npy`/`.npz` file (see [`ingest::numpy`]). The same checks as
//! `ingest`, the model's own stored normalisation, its threshold and temperature from
//! `evaluate`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use evaluate::{Report, Scores, ThresholdChoice};
use features::{FeatureMeta, NormalisationSpec, StampSet};
use hits_core::STAMP_PIXELS;
use hits_core::config::{DataConfig, DuplicatePolicy, Layout, SplitConfig};
use hits_core::io::{write_bytes_atomic, write_json_atomic};
use indicatif::{ProgressBar, ProgressStyle};
use model::ModelMetadata;
use serde::Serialize;

use crate::{PREDICTIONS_FILE, SubmitError};

/// What [`predict_directory`] reads and where it writes.
#[derive(Debug, Clone)]
pub struct DirectoryJob {
    /// The directory of channel CSVs (and optionally `labels.csv`), or a `.npy`/`.npz` file.
    pub input: PathBuf,
    /// `artifacts/train/` of the model's pipeline.
    pub model_dir: PathBuf,
    /// `artifacts/evaluate/` of the same pipeline (its `threshold.json`).
    pub evaluate_dir: PathBuf,
    /// None: detected from `template.csv`.
    pub layout: Option<Layout>,
    pub duplicates: DuplicatePolicy,
    pub out_dir: PathBuf,
    /// Candidates to explain (occlusion maps in `explain.png`), by id.
    pub explain: Vec<String>,
}

/// `summary.json` of a scored directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirectorySummary {
    pub input: PathBuf,
    /// The CSV layout; null for a `.npy`/`.npz` input.
    pub layout: Option<Layout>,
    pub candidates: usize,
    pub called_real: usize,
    pub threshold: f64,
    pub temperature: Option<f64>,
    pub model_dir: PathBuf,
    /// Duplicates dropped (`--duplicates drop`).
    pub dropped_duplicates: usize,
    /// Accuracy, F1, ... when the directory has `labels.csv`.
    pub metrics: Option<Report>,
}

pub const SUMMARY_FILE: &str = "summary.json";
pub const HISTOGRAM_PNG: &str = "p_real.png";
pub const EXPLAIN_PNG: &str = "explain.png";

/// The layout of `template.csv`: a header whose first column is the id (`id_header`), or
/// 441 numbers per row (`plain`, with or without a header row).
pub fn detect_layout(template: &Path) -> Result<(Layout, bool), SubmitError> {
    let bad = |message: String| SubmitError::Input {
        path: template.to_path_buf(),
        message,
    };
    let cells = ingest::first_cells(template)?;
    let numeric = |c: &str| c.parse::<f32>().is_ok();
    match cells.len() {
        n if n == STAMP_PIXELS + 1 && !numeric(&cells[1]) => Ok((Layout::IdHeader, true)),
        n if n == STAMP_PIXELS => Ok((Layout::Plain, !cells.iter().all(|c| numeric(c)))),
        n => Err(bad(format!(
            "line 1 has {n} columns: expected an id column and {STAMP_PIXELS} pixels with a header, or {STAMP_PIXELS} pixels"
        ))),
    }
}

/// What scoring the input found: per candidate in input order, less dropped duplicates.
#[derive(Default)]
struct Scored {
    ids: Vec<String>,
    /// Model P(real), before temperature scaling.
    p_real: Vec<f64>,
    labels: Option<Vec<u8>>,
    centre_snr: Vec<f32>,
    dropped_duplicates: usize,
    /// The candidates asked to be explained: id, normalised stamp, P(real) before scaling.
    explained: Vec<(String, Vec<f32>, f64)>,
}

/// Scores candidates part by part with one model, keeping only what the outputs need.
struct Scorer<'a> {
    model_dir: &'a Path,
    explain: &'a [String],
    normalisation: NormalisationSpec,
    bar: ProgressBar,
    scored: Scored,
}

impl Scorer<'_> {
    /// Score one part of the input (channels as in [`ingest::SplitChunk`]).
    fn score(
        &mut self,
        ids: Vec<String>,
        labels: Option<Vec<u8>>,
        channels: &[Vec<f32>; 4],
    ) -> Result<(), SubmitError> {
        let n = ids.len();
        let channel_slices: Vec<&[f32]> = channels.iter().map(Vec::as_slice).collect();
        let (stamps, centre_snr) = features::stack(&channel_slices, n, &self.normalisation);
        let label_column = match &labels {
            Some(labels) => labels.iter().map(|&l| Some(l)).collect(),
            None => vec![None; n],
        };
        let set = StampSet::from_parts(
            ids,
            label_column,
            stamps,
            centre_snr,
            FeatureMeta::new(self.normalisation.clone(), String::new()),
        );
        // `predict` refuses a model whose inputs (shape, channels, normalisation) differ.
        let (p_real, _) = evaluate::predict_with_progress(self.model_dir, &set, &self.bar)?;
        let scored = &mut self.scored;
        for (row, id) in set.ids.iter().enumerate() {
            if self.explain.contains(id) {
                scored
                    .explained
                    .push((id.clone(), set.stamps.get(row)?, p_real[row]));
            }
        }
        scored.p_real.extend(p_real);
        scored.centre_snr.extend(&set.centre_snr);
        scored.ids.extend(set.ids);
        if let Some(labels) = labels {
            scored.labels.get_or_insert_with(Vec::new).extend(labels);
        }
        Ok(())
    }
}

/// Score a `.npy`/`.npz` file (read whole), or a directory of channel CSVs streamed in
/// chunks (layout detected unless given): memory holds one chunk of stamps at a time.
/// Returns the CSV layout (None for NumPy input) and the scores.
fn score_input(
    job: &DirectoryJob,
    normalisation: NormalisationSpec,
) -> Result<(Option<Layout>, Scored), SubmitError> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("predict {spinner} {pos} candidates ({per_sec})")
            .expect("valid template"),
    );
    let mut scorer = Scorer {
        model_dir: &job.model_dir,
        explain: &job.explain,
        normalisation,
        bar,
        scored: Scored::default(),
    };
    let layout = if ingest::numpy::NumpyFormat::of(&job.input).is_some() && job.input.is_file() {
        let data = ingest::numpy::read_numpy(&job.input, job.duplicates)?;
        scorer.scored.dropped_duplicates = data.dropped.len();
        scorer.score(data.ids, data.labels, &data.channels)?;
        None
    } else {
        let template_file = job.input.join(DataConfig::default().files.template);
        let (layout, header) = match job.layout {
            Some(Layout::Plain) => (Layout::Plain, detect_layout(&template_file)?.1),
            Some(layout) => (layout, true),
            None => detect_layout(&template_file)?,
        };
        let data = DataConfig {
            layout,
            header,
            duplicates: job.duplicates,
            ..DataConfig::default()
        };
        let split = SplitConfig {
            labelled: job.input.join(&data.files.labels).exists(),
            dir: job.input.clone(),
        };
        let mut failure = None;
        let records = ingest::Records::ChecksOnly;
        let scan = ingest::scan_split(
            &data,
            "input",
            &split,
            ingest::CHUNK_ROWS,
            records,
            |chunk| {
                // A scoring error ends the scan; it is reported below, as it happened.
                if let Err(e) = scorer.score(chunk.ids, chunk.labels, &chunk.channels) {
                    failure = Some(e);
                    return Err(ingest::IngestError::Stopped);
                }
                Ok(())
            },
        );
        if let Some(e) = failure {
            return Err(e);
        }
        scorer.scored.dropped_duplicates = scan?.dropped.len();
        Some(layout)
    };
    scorer.bar.finish_and_clear();
    Ok((layout, scorer.scored))
}

/// The normalisation the model was trained with, from its metadata.
fn normalisation_of(
    metadata: &ModelMetadata,
    job: &DirectoryJob,
) -> Result<NormalisationSpec, SubmitError> {
    serde_json::from_value(metadata.input.normalisation.clone()).map_err(|e| SubmitError::Input {
        path: job.model_dir.join(model::metadata::METADATA_FILE),
        message: format!("unreadable normalisation: {e}"),
    })
}

/// `explain.png`: the candidates asked for, each with its occlusion map.
fn explain(
    job: &DirectoryJob,
    normalisation: &NormalisationSpec,
    explained: &[(String, Vec<f32>, f64)],
    choice: &ThresholdChoice,
) -> Result<(), SubmitError> {
    let n = explained.len();
    let stamps: Vec<f32> = explained.iter().flat_map(|e| e.1.iter().copied()).collect();
    let set = StampSet::from_parts(
        explained.iter().map(|e| e.0.clone()).collect(),
        vec![None; n],
        stamps,
        vec![0.0; n],
        FeatureMeta::new(normalisation.clone(), String::new()),
    );
    let rows: Vec<usize> = (0..n).collect();
    let maps = evaluate::explain::occlusion_maps(&job.model_dir, &set, &rows)?;
    let p_real = choice.calibrated(&explained.iter().map(|e| e.2).collect::<Vec<_>>());
    let captions: Vec<String> = explained
        .iter()
        .zip(&p_real)
        .map(|(e, p)| {
            let call = if *p >= choice.threshold {
                "real"
            } else {
                "bogus"
            };
            format!("{}   P(real) {p:.3}: called {call}", e.0)
        })
        .collect();
    let name = job.input.file_name().map_or_else(
        || job.input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let title = format!("{name}: why real or bogus");
    evaluate::figures::explained_gallery(
        &job.out_dir.join(EXPLAIN_PNG),
        &title,
        &set,
        &rows,
        &captions,
        &maps,
    )?;
    Ok(())
}

/// Read, check and score the directory; write `predictions.csv`, `summary.json`,
/// `p_real.png` and, with labels, `metrics.json` and the evaluation plots.
pub fn predict_directory(job: &DirectoryJob) -> Result<DirectorySummary, SubmitError> {
    let metadata = ModelMetadata::read(&job.model_dir)?;
    let normalisation = normalisation_of(&metadata, job)?;
    let (layout, scored) = score_input(job, normalisation.clone())?;
    let Scored {
        ids,
        p_real: model_p_real,
        labels,
        centre_snr,
        dropped_duplicates,
        explained,
    } = scored;
    if let Some(missing) = job
        .explain
        .iter()
        .find(|id| !explained.iter().any(|e| &e.0 == *id))
    {
        return Err(SubmitError::Input {
            path: job.input.clone(),
            message: format!("--explain {missing}: no candidate has this id"),
        });
    }
    let choice = ThresholdChoice::read_for_model(&job.evaluate_dir, &job.model_dir)?;
    let p_real = choice.calibrated(&model_p_real);

    let mut csv = String::from("id,p_real,label\n");
    let mut called_real = 0;
    for (id, &p) in ids.iter().zip(&p_real) {
        let label = u8::from(p >= choice.threshold);
        called_real += usize::from(label);
        let _ = writeln!(csv, "{id},{p},{label}");
    }
    let out = &job.out_dir;
    write_bytes_atomic(&out.join(PREDICTIONS_FILE), csv.as_bytes())?;
    plots::histograms(
        &out.join(HISTOGRAM_PNG),
        &format!("{}: P(real)", job.input.display()),
        "P(real)",
        &[("candidates", &p_real)],
        50,
        true,
    )
    .map_err(evaluate::EvaluateError::from)?;
    if !explained.is_empty() {
        explain(job, &normalisation, &explained, &choice)?;
    }
    let metrics = labels.map(|labels| {
        let scores = Scores {
            labels,
            p_real: p_real.clone(),
            snr: Some(centre_snr.iter().map(|&s| f64::from(s)).collect()),
        };
        (Report::new(&scores, choice.threshold), scores)
    });
    if let Some((report, scores)) = &metrics {
        let what = job.input.display().to_string();
        evaluate::figures::score_plots(out, &what, scores, report)?;
        write_json_atomic(&out.join(evaluate::METRICS_FILE), report)?;
    }
    let summary = DirectorySummary {
        input: job.input.clone(),
        layout,
        candidates: ids.len(),
        called_real,
        threshold: choice.threshold,
        temperature: choice.temperature,
        model_dir: job.model_dir.clone(),
        dropped_duplicates,
        metrics: metrics.map(|(report, _)| report),
    };
    write_json_atomic(&out.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}
