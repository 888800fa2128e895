//! Score a directory of candidates never seen before with a trained model, no pipeline file
//! to write: the four channel CSVs in either layout (detected from the files), optionally
//! `labels.csv`; or a NumPy `.npy`/`.npz` file (see [`ingest::numpy`]). The same checks as `ingest`, the model's own stored normalisation, its
//! threshold and temperature from `evaluate`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use evaluate::{Report, Scores, ThresholdChoice};
use features::{FeatureMeta, NormalisationSpec, StampSet};
use hits_core::STAMP_PIXELS;
use hits_core::config::{DataConfig, DuplicatePolicy, Layout, SplitConfig};
use hits_core::io::{write_bytes_atomic, write_json_atomic};
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

/// What was read from the input, and how.
struct Input {
    data: ingest::SplitData,
    /// The CSV layout; None for NumPy input.
    layout: Option<Layout>,
}

/// A `.npy`/`.npz` file, or a directory of channel CSVs (layout detected unless given).
fn read_input(job: &DirectoryJob) -> Result<Input, SubmitError> {
    if ingest::numpy::NumpyFormat::of(&job.input).is_some() && job.input.is_file() {
        return Ok(Input {
            data: ingest::numpy::read_numpy(&job.input, job.duplicates)?,
            layout: None,
        });
    }
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
    Ok(Input {
        data: ingest::read_split(&data, "input", &split, ingest::CHUNK_ROWS)?,
        layout: Some(layout),
    })
}

/// Read, check and score the directory; write `predictions.csv`, `summary.json`,
/// `p_real.png` and, with labels, `metrics.json` and the evaluation plots.
pub fn predict_directory(job: &DirectoryJob) -> Result<DirectorySummary, SubmitError> {
    let input = read_input(job)?;
    let dropped_duplicates = input.data.dropped.len();
    let (ids, labels, channels) = (input.data.ids, input.data.labels, input.data.channels);
    let labelled = labels.is_some();
    let labels = labels.unwrap_or_default();

    let metadata = ModelMetadata::read(&job.model_dir)?;
    let normalisation: NormalisationSpec =
        serde_json::from_value(metadata.input.normalisation.clone()).map_err(|e| {
            SubmitError::Input {
                path: job.model_dir.join(model::metadata::METADATA_FILE),
                message: format!("unreadable normalisation: {e}"),
            }
        })?;
    let n = ids.len();
    let channel_slices: Vec<&[f32]> = channels.iter().map(Vec::as_slice).collect();
    let (stamps, centre_snr) = features::stack(&channel_slices, n, &normalisation);
    let label_column: Vec<Option<u8>> = if labelled {
        labels.iter().map(|&l| Some(l)).collect()
    } else {
        vec![None; n]
    };
    let set = StampSet::from_parts(
        ids,
        label_column,
        stamps,
        centre_snr,
        FeatureMeta::new(normalisation, String::new()),
    );
    // `predict` refuses a model whose inputs (shape, channels, normalisation) differ.
    let (model_p_real, _) = evaluate::predict(&job.model_dir, &set)?;
    let choice = ThresholdChoice::read_for_model(&job.evaluate_dir, &job.model_dir)?;
    let p_real = choice.calibrated(&model_p_real);

    let mut csv = String::from("id,p_real,label\n");
    let mut called_real = 0;
    for (id, &p) in set.ids.iter().zip(&p_real) {
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
    let metrics = labelled.then(|| {
        let scores = Scores {
            labels,
            p_real: p_real.clone(),
            snr: Some(set.centre_snr.iter().map(|&s| f64::from(s)).collect()),
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
        layout: input.layout,
        candidates: set.len(),
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
