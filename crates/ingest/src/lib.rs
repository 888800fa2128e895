//! Stage 1, `ingest`: read a split's four channel CSVs (and labels) with polars, refuse
//! anything malformed with a one-line error naming file, row and column, and write the
//! validated candidates as Arrow IPC with a JSON report.
//!
//! Output per split, in `<artifacts>/ingest/`:
//! - `<split>.arrow`: `id` Utf8, `label` UInt8 (null when unlabelled), and one
//!   `FixedSizeList<Float32, 441>` column per channel (`template`, `science`, `difference`,
//!   `snr_difference`), each a row-major 21x21 stamp;
//! - `<split>.report.json`: rows, label balance, per-channel statistics, the checks run.

mod checks;
mod csv;
mod error;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::{Schema, SchemaRef};
use hits_core::arrow_io::{
    BATCH_ROWS, f32_list_array, f32_list_field, id_field, label_field, write_ipc,
};
use hits_core::config::{DataConfig, Layout, SplitConfig};
use hits_core::io::write_json_atomic;
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline, STAMP_PIXELS};

pub use checks::CHECKS;
pub use error::IngestError;
pub use report::{ChannelStats, SplitReport};

use crate::csv::{Columns, id_column, label_column, pixel_column, read_frame};

pub const STAGE: &str = "ingest";

/// A validated split: candidates in file order.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub name: String,
    pub ids: Vec<String>,
    /// One label per candidate for a labelled split.
    pub labels: Option<Vec<u8>>,
    /// Per channel (in [`Channel::ALL`] order), `ids.len()` row-major 21x21 stamps.
    pub channels: [Vec<f32>; 4],
    /// The files read, channel files first.
    pub files: Vec<PathBuf>,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Read and validate split `name`.
pub fn read_split(
    data: &DataConfig,
    name: &str,
    split: &SplitConfig,
) -> Result<SplitData, IngestError> {
    let paths = data.split_files(split);
    let mut files: Vec<PathBuf> = Vec::new();
    let mut ids: Option<Vec<String>> = None;
    let mut channels: [Vec<f32>; 4] = Default::default();
    for channel in Channel::ALL {
        let path = paths[channel.index()].clone();
        let columns = Columns::channel(&path, data.layout, &data.id_column, data.header)?;
        let frame = read_frame(&path, &columns)?;
        let rows = frame.height();
        let channel_ids = match data.layout {
            Layout::IdHeader => id_column(&path, &frame, &columns, 0)?,
            Layout::Plain => (0..rows).map(|row| row.to_string()).collect(),
        };
        let first_pixel = columns.kinds.len() - STAMP_PIXELS;
        let pixels = &mut channels[channel.index()];
        *pixels = vec![0.0; rows * STAMP_PIXELS];
        for p in 0..STAMP_PIXELS {
            for (row, v) in pixel_column(&path, &frame, &columns, first_pixel + p)?
                .into_iter()
                .enumerate()
            {
                pixels[row * STAMP_PIXELS + p] = v;
            }
        }
        match &ids {
            None => {
                checks::check_duplicate_ids(&path, &channel_ids, columns.has_header)?;
                ids = Some(channel_ids);
            }
            Some(reference) => {
                checks::check_alignment((&files[0], reference), (&path, &channel_ids))?
            }
        }
        files.push(path);
    }
    let ids = ids.expect("four channels were read");
    checks::check_duplicate_stamps(&split.dir, &ids, &channels)?;

    let labels = if split.labelled {
        let path = paths[Channel::ALL.len()].clone();
        let columns = Columns::labels(&path, data.layout, &data.id_column, data.header)?;
        let frame = read_frame(&path, &columns)?;
        let label_index = columns.kinds.len() - 1;
        let values = label_column(&path, &frame, &columns, label_index)?;
        let label_ids = match data.layout {
            Layout::IdHeader => Some(id_column(&path, &frame, &columns, 0)?),
            Layout::Plain => None,
        };
        let aligned = checks::align_labels(&path, &ids, label_ids.as_deref(), &values, &files[0])?;
        files.push(path);
        Some(aligned)
    } else {
        None
    };
    Ok(SplitData {
        name: name.to_string(),
        ids,
        labels,
        channels,
        files,
    })
}

/// The Arrow schema of `<split>.arrow`.
pub fn schema() -> SchemaRef {
    let mut fields = vec![id_field(), label_field()];
    fields.extend(Channel::ALL.map(|c| f32_list_field(c.name(), STAMP_PIXELS)));
    Arc::new(Schema::new(fields))
}

/// Write a validated split as Arrow IPC, in batches of [`BATCH_ROWS`].
pub fn write_arrow(path: &Path, split: &SplitData) -> Result<(), IngestError> {
    let schema = schema();
    let batches = (0..split.len()).step_by(BATCH_ROWS).map(|start| {
        let end = (start + BATCH_ROWS).min(split.len());
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(&split.ids[start..end]));
        let labels: ArrayRef = Arc::new(match &split.labels {
            Some(labels) => UInt8Array::from(labels[start..end].to_vec()),
            None => UInt8Array::new_null(end - start),
        });
        let mut columns = vec![ids, labels];
        for c in Channel::ALL {
            let pixels =
                split.channels[c.index()][start * STAMP_PIXELS..end * STAMP_PIXELS].to_vec();
            columns.push(Arc::new(f32_list_array(pixels, STAMP_PIXELS)));
        }
        Ok::<_, IngestError>(
            RecordBatch::try_new(schema.clone(), columns).expect("columns match the ingest schema"),
        )
    });
    write_ipc(path, schema.clone(), batches)
}

/// The report of a validated split.
pub fn report(split: &SplitData, seconds: f64) -> SplitReport {
    let label_counts = split.labels.as_ref().map(|labels| {
        let real = labels.iter().filter(|&&l| l == 1).count();
        [
            ("bogus".to_string(), labels.len() - real),
            ("real".to_string(), real),
        ]
        .into()
    });
    SplitReport {
        split: split.name.clone(),
        rows: split.len(),
        labelled: split.labels.is_some(),
        label_counts,
        channels: Channel::ALL
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    ChannelStats::of(split.files[c.index()].clone(), &split.channels[c.index()]),
                )
            })
            .collect(),
        checks: CHECKS.iter().map(|s| s.to_string()).collect(),
        seconds,
    }
}

/// Every CSV `run` reads, split by split: what decides whether ingest is up to date.
pub fn input_files(pipeline: &Pipeline) -> Vec<PathBuf> {
    pipeline
        .data
        .splits
        .values()
        .flat_map(|split| pipeline.data.split_files(split))
        .collect()
}

/// Ingest every split of the pipeline. All splits are validated before anything is written,
/// so bad input leaves the previous artifacts untouched.
pub fn run(pipeline: &Pipeline) -> Result<Vec<SplitReport>, IngestError> {
    let mut validated = Vec::new();
    for (name, split) in &pipeline.data.splits {
        let started = Instant::now();
        let data = read_split(&pipeline.data, name, split)?;
        tracing::info!(split = %name, rows = data.len(), "validated {}", split.dir.display());
        validated.push((data, started.elapsed().as_secs_f64()));
    }
    let dir = pipeline.stage_dir(STAGE);
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    let mut reports = Vec::new();
    for (data, read_seconds) in &validated {
        let started = Instant::now();
        for file in &data.files {
            manifest.add_input(file)?;
        }
        let arrow_path = dir.join(format!("{}.arrow", data.name));
        write_arrow(&arrow_path, data)?;
        let report = report(data, read_seconds + started.elapsed().as_secs_f64());
        for stats in report.channels.values() {
            if stats.sentinel_values + stats.huge_values > 0 {
                tracing::warn!(
                    "{}: {} sentinel and {} huge values (|v| >= 1e6), kept as they are",
                    stats.file.display(),
                    stats.sentinel_values,
                    stats.huge_values
                );
            }
        }
        let report_path = dir.join(format!("{}.report.json", data.name));
        write_json_atomic(&report_path, &report)?;
        manifest.add_output(&arrow_path)?;
        manifest.add_output(&report_path)?;
        reports.push(report);
    }
    let config_path = pipeline.write_used(&dir)?;
    manifest.add_output(&config_path)?;
    manifest.write(&dir)?;
    Ok(reports)
}
