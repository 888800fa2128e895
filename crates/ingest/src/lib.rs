//! Stage 1, `ingest`: read a split's four channel CSVs (and labels) with polars, refuse
//! anything malformed with a one-line error naming file, row and column, and write the
//! validated candidates as Arrow IPC with a JSON report. Channel files are streamed in chunks
//! of [`CHUNK_ROWS`] candidates, so memory does not grow with the size of a split beyond a
//! few dozen bytes per candidate.
//!
//! Output per split, in `<artifacts>/ingest/`:
//! - `<split>.arrow`: `id` Utf8, `label` UInt8 (null when unlabelled), and one
//!   `FixedSizeList<Float32, 441>` column per channel (`template`, `science`, `difference`,
//!   `snr_difference`), each a row-major 21x21 stamp;
//! - `<split>.report.json`: rows, label balance, per-channel statistics, the checks run.

mod checks;
mod csv;
mod error;
mod forms;
pub use forms::first_cells;
pub mod numpy;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::{Schema, SchemaRef};
use hits_core::Stage;
use hits_core::arrow_io::{
    BATCH_ROWS, IpcWriter, f32_list_array, f32_list_field, id_field, label_field,
};
use hits_core::config::{DataConfig, Layout, SplitConfig};
use hits_core::digest::FileDigest;
use hits_core::io::write_json_atomic;
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline, STAMP_PIXELS};
use rayon::prelude::*;

pub use checks::CHECKS;
pub use error::IngestError;
pub use report::{ChannelStats, SplitReport};

use crate::checks::{IdRegistry, Labels, StampRegistry};
use crate::csv::{
    Chunk, ChunkedCsv, Columns, field_at, id_column, label_column, pixel_column, read_frame,
};
use crate::report::StatsAccumulator;
pub use checks::DroppedDuplicate;

pub const STAGE: Stage = Stage::Ingest;

/// Candidates per chunk: one chunk of each channel file is in memory at a time, and each
/// becomes one record batch.
pub const CHUNK_ROWS: usize = BATCH_ROWS;

/// Validated candidates of a split from data row `first_row` (from 0) on, in file order:
/// rows `first_row..first_row + ids.len()`, less any duplicates dropped.
#[derive(Debug, Clone, Default)]
pub struct SplitChunk {
    pub first_row: usize,
    pub ids: Vec<String>,
    /// One label per candidate for a labelled split.
    pub labels: Option<Vec<u8>>,
    /// Per channel (in [`Channel::ALL`] order), `ids.len()` row-major 21x21 stamps.
    pub channels: [Vec<f32>; 4],
}

/// What a scan keeps besides checking every candidate: the files' digests (for the
/// manifest) and the channels' statistics (for the report). `predict` needs neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    All,
    ChecksOnly,
}

/// What validating a whole split found, besides its candidates.
#[derive(Debug, Clone)]
pub struct SplitScan {
    pub name: String,
    pub rows: usize,
    /// Candidates per label, bogus then real, for a labelled split.
    pub label_counts: Option<[usize; 2]>,
    /// Per channel, in [`Channel::ALL`] order ([`Records::All`] only).
    pub channel_stats: Option<[ChannelStats; 4]>,
    /// The files read, channel files first, with their digests (taken while reading them;
    /// [`Records::All`] only).
    pub files: Vec<FileDigest>,
    /// Duplicate candidates dropped (`[data] duplicates = "drop"`), in row order.
    pub dropped: Vec<DroppedDuplicate>,
}

/// Read and validate split `name` chunk by chunk (`chunk_rows` candidates of each channel
/// file at a time; `run` uses [`CHUNK_ROWS`]), handing every validated chunk to `sink`.
/// Memory holds the chunks in flight plus, per candidate, digests and row numbers for the
/// duplicate and label checks, whatever the size of the split. A split is only valid once this returns `Ok`: checks that need every row
/// (duplicates, labels left over) can fail after chunks were handed out.
pub fn scan_split(
    data: &DataConfig,
    name: &str,
    split: &SplitConfig,
    chunk_rows: usize,
    records: Records,
    sink: impl FnMut(SplitChunk) -> Result<(), IngestError>,
) -> Result<SplitScan, IngestError> {
    let files: Vec<forms::PlainCsv> = data
        .split_files(split)
        .iter()
        .map(|path| forms::plain(path))
        .collect::<Result<_, _>>()?;
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_path_buf()).collect();
    let restore = |error: IngestError| files.iter().fold(error, |e, f| f.restore(e));
    let mut scan = scan_plain_files(data, name, &split.dir, &paths, chunk_rows, records, sink)
        .map_err(restore)?;
    // The report and the manifest name (and hash) the files as the user gave them.
    for (c, file) in files.iter().enumerate().filter(|(_, f)| f.was_rewritten()) {
        if let Some(stats) = scan.channel_stats.as_mut().and_then(|s| s.get_mut(c)) {
            stats.file = file.original.clone();
        }
        if let Some(digest) = scan.files.get_mut(c) {
            *digest = FileDigest::of(&file.original)?;
        }
    }
    Ok(scan)
}

/// [`scan_split`] on files in the plain form (see [`forms`]).
fn scan_plain_files(
    data: &DataConfig,
    name: &str,
    dir: &Path,
    paths: &[PathBuf],
    chunk_rows: usize,
    records: Records,
    mut sink: impl FnMut(SplitChunk) -> Result<(), IngestError>,
) -> Result<SplitScan, IngestError> {
    let channel_paths = &paths[..Channel::ALL.len()];
    let columns: Vec<Columns> = channel_paths
        .iter()
        .map(|path| Columns::channel(path, data))
        .collect::<Result<_, _>>()?;
    let template = channel_paths[0].as_path();
    // (labels file, its labels) of a labelled split.
    let mut labels = match paths.get(Channel::ALL.len()) {
        Some(labels_path) => {
            let columns = Columns::labels(labels_path, data)?;
            let whole = Chunk {
                frame: read_frame(labels_path, &columns)?,
                first_row: 0,
            };
            let values = label_column(labels_path, &whole, &columns, columns.kinds.len() - 1)?;
            let label_ids = match data.layout {
                Layout::IdHeader => Some(id_column(labels_path, &whole, &columns, 0)?),
                Layout::Plain => None,
            };
            Some((labels_path, Labels::new(labels_path, label_ids, values)?))
        }
        None => None,
    };

    let keep_records = records == Records::All;
    let mut readers: Vec<ChunkedCsv> = channel_paths
        .iter()
        .zip(&columns)
        .map(|(path, columns)| ChunkedCsv::open(path, columns, keep_records))
        .collect::<Result<_, _>>()?;
    let mut ids_seen = IdRegistry::new();
    let mut stamps_seen = StampRegistry::new();
    let mut stats: [StatsAccumulator; 4] = Default::default();
    let mut label_counts = [0usize; 2];
    // Rows read from the files, and duplicates dropped from them.
    let mut rows = 0;
    let mut dropped = Vec::new();
    loop {
        // The four files' next chunks are parsed (and their statistics taken) in parallel;
        // checks across files then run in channel order.
        let parts: Vec<Result<Option<ChannelChunk>, IngestError>> = readers
            .par_iter_mut()
            .zip(stats.par_iter_mut())
            .map(|(reader, stats)| {
                let part = read_channel_chunk(reader, data.layout, rows, chunk_rows)?;
                if let (true, Some((_, pixels))) = (keep_records, &part) {
                    stats.add(pixels);
                }
                Ok(part)
            })
            .collect();
        let mut channel_chunks = Vec::with_capacity(parts.len());
        for (part, path) in parts.into_iter().zip(channel_paths) {
            let part = part?;
            if part.is_none() && rows == 0 {
                return Err(IngestError::file(
                    path,
                    "has a header but no candidate rows",
                ));
            }
            channel_chunks.push(part);
        }
        let lengths: Vec<Option<usize>> = channel_chunks
            .iter()
            .map(|part| part.as_ref().map(|(ids, _)| ids.len()))
            .collect();
        if lengths.iter().any(|len| *len != lengths[0]) {
            // Channel files of different lengths: count every file to say by how much.
            let counts: Vec<usize> = readers
                .into_iter()
                .map(ChunkedCsv::count_rows)
                .collect::<Result<_, _>>()?;
            let c = (1..4).find(|&c| counts[c] != counts[0]).unwrap_or(1);
            return Err(checks::row_count_mismatch(
                (template, counts[0]),
                (&channel_paths[c], counts[c]),
            ));
        }
        if lengths[0].is_none() {
            break;
        }
        let mut chunk = SplitChunk {
            first_row: rows,
            ..SplitChunk::default()
        };
        for (c, part) in channel_chunks.into_iter().enumerate() {
            let (ids, pixels) = part.expect("every channel has this chunk");
            if c == 0 {
                ids_seen.add(template, columns[0].has_header, rows, &ids)?;
                chunk.ids = ids;
            } else {
                checks::check_alignment((template, &chunk.ids), (&channel_paths[c], &ids), rows)?;
            }
            chunk.channels[c] = pixels;
        }
        let id_at = |row: usize| match data.layout {
            Layout::IdHeader => field_at(template, columns[0].has_header, row, 0),
            Layout::Plain => row.to_string(),
        };
        let duplicates = stamps_seen.add(
            dir,
            rows,
            &chunk.ids,
            &chunk.channels,
            data.duplicates,
            id_at,
        )?;
        if let Some((labels_path, labels)) = &mut labels {
            // Every row takes its label, a dropped duplicate's too, so each label is used once.
            let chunk_labels = chunk
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| labels.take(labels_path, id, rows + i, template))
                .collect::<Result<Vec<u8>, _>>()?;
            chunk.labels = Some(chunk_labels);
        }
        let chunk_rows = chunk.ids.len();
        if !duplicates.is_empty() {
            drop_rows(&mut chunk, duplicates.iter().map(|d| d.row - 1 - rows));
        }
        for &l in chunk.labels.iter().flatten() {
            label_counts[usize::from(l)] += 1;
        }
        dropped.extend(duplicates);
        rows += chunk_rows;
        if !chunk.ids.is_empty() {
            sink(chunk)?;
        }
    }
    let mut files: Vec<FileDigest> = readers.iter().filter_map(ChunkedCsv::digest).collect();
    let label_counts = match labels {
        Some((labels_path, labels)) => {
            let id_at = |row| field_at(labels_path, true, row, 0);
            labels.finish(labels_path, rows, template, id_at)?;
            if keep_records {
                files.push(FileDigest::of(labels_path)?);
            }
            Some(label_counts)
        }
        None => None,
    };
    Ok(SplitScan {
        name: name.to_string(),
        rows: rows - dropped.len(),
        dropped,
        label_counts,
        channel_stats: keep_records
            .then(|| std::array::from_fn(|c| stats[c].finish(channel_paths[c].clone()))),
        files,
    })
}

/// Remove the rows at `indices` (increasing, within the chunk) from `chunk`.
pub(crate) fn drop_rows(chunk: &mut SplitChunk, indices: impl Iterator<Item = usize>) {
    let mut keep = vec![true; chunk.ids.len()];
    for i in indices {
        keep[i] = false;
    }
    let mut row = 0;
    chunk.ids.retain(|_| {
        row += 1;
        keep[row - 1]
    });
    if let Some(labels) = &mut chunk.labels {
        let mut row = 0;
        labels.retain(|_| {
            row += 1;
            keep[row - 1]
        });
    }
    for pixels in &mut chunk.channels {
        let kept: Vec<f32> = pixels
            .chunks_exact(STAMP_PIXELS)
            .zip(&keep)
            .filter(|(_, keep)| **keep)
            .flat_map(|(stamp, _)| stamp.iter().copied())
            .collect();
        *pixels = kept;
    }
}

/// One channel file's part of a chunk: ids and row-major pixels.
type ChannelChunk = (Vec<String>, Vec<f32>);

/// The next chunk of one channel file, parsed and checked cell by cell; `None` at its end.
fn read_channel_chunk(
    reader: &mut ChunkedCsv,
    layout: Layout,
    first_row: usize,
    chunk_rows: usize,
) -> Result<Option<ChannelChunk>, IngestError> {
    let Some(part) = reader.next_chunk(chunk_rows.max(1))? else {
        return Ok(None);
    };
    let (path, columns) = (reader.path, reader.columns);
    let n = part.frame.height();
    let ids = match layout {
        Layout::IdHeader => id_column(path, &part, columns, 0)?,
        Layout::Plain => (first_row..first_row + n)
            .map(|row| row.to_string())
            .collect(),
    };
    let first_pixel = columns.kinds.len() - STAMP_PIXELS;
    // polars gives columns; stamps are rows. Transposing a block of columns at a time writes
    // a run of neighbouring values per row instead of one scattered value per cache line.
    const BLOCK: usize = 8;
    let mut pixels = vec![0.0; n * STAMP_PIXELS];
    for first in (0..STAMP_PIXELS).step_by(BLOCK) {
        let block = (first..(first + BLOCK).min(STAMP_PIXELS))
            .map(|p| pixel_column(path, &part, columns, first_pixel + p))
            .collect::<Result<Vec<_>, _>>()?;
        for (row, stamp) in pixels.chunks_exact_mut(STAMP_PIXELS).enumerate() {
            for (value, column) in stamp[first..].iter_mut().zip(&block) {
                *value = column[row];
            }
        }
    }
    Ok(Some((ids, pixels)))
}

/// A validated split held in memory: candidates in file order.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub ids: Vec<String>,
    /// One label per candidate for a labelled split.
    pub labels: Option<Vec<u8>>,
    /// Per channel (in [`Channel::ALL`] order), `ids.len()` row-major 21x21 stamps.
    pub channels: [Vec<f32>; 4],
    /// Duplicate candidates dropped (`DuplicatePolicy::Drop`), in row order.
    pub dropped: Vec<DroppedDuplicate>,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Read and validate split `name` into memory, `chunk_rows` candidates at a time (small
/// splits; `run` streams with [`scan_split`]).
pub fn read_split(
    data: &DataConfig,
    name: &str,
    split: &SplitConfig,
    chunk_rows: usize,
) -> Result<SplitData, IngestError> {
    let mut all = SplitData {
        ids: Vec::new(),
        labels: split.labelled.then(Vec::new),
        channels: Default::default(),
        dropped: Vec::new(),
    };
    let scan = scan_split(
        data,
        name,
        split,
        chunk_rows,
        Records::ChecksOnly,
        |chunk| {
            all.ids.extend(chunk.ids);
            if let (Some(all), Some(labels)) = (&mut all.labels, chunk.labels) {
                all.extend(labels);
            }
            for (all, pixels) in all.channels.iter_mut().zip(chunk.channels) {
                all.extend(pixels);
            }
            Ok(())
        },
    )?;
    all.dropped = scan.dropped;
    Ok(all)
}

/// The Arrow schema of `<split>.arrow`.
pub fn schema() -> SchemaRef {
    let mut fields = vec![id_field(), label_field()];
    fields.extend(Channel::ALL.map(|c| f32_list_field(c.name(), STAMP_PIXELS)));
    Arc::new(Schema::new(fields))
}

/// A validated chunk as a record batch of `<split>.arrow`.
pub fn record_batch(chunk: SplitChunk) -> RecordBatch {
    let n = chunk.ids.len();
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(&chunk.ids));
    let labels: ArrayRef = Arc::new(match chunk.labels {
        Some(labels) => UInt8Array::from(labels),
        None => UInt8Array::new_null(n),
    });
    let mut columns = vec![ids, labels];
    for pixels in chunk.channels {
        columns.push(Arc::new(f32_list_array(pixels, STAMP_PIXELS)));
    }
    RecordBatch::try_new(schema(), columns).expect("columns match the ingest schema")
}

/// The report of a validated split.
pub fn report(scan: &SplitScan, seconds: f64) -> SplitReport {
    SplitReport {
        split: scan.name.clone(),
        rows: scan.rows,
        labelled: scan.label_counts.is_some(),
        label_counts: scan
            .label_counts
            .map(|[bogus, real]| [("bogus".to_string(), bogus), ("real".to_string(), real)].into()),
        channels: Channel::ALL
            .iter()
            .filter_map(|c| {
                let stats = scan.channel_stats.as_ref()?[c.index()].clone();
                Some((c.name().to_string(), stats))
            })
            .collect(),
        checks: CHECKS.iter().map(|s| s.to_string()).collect(),
        dropped_duplicates: scan.dropped.clone(),
        seconds,
    }
}

/// `<artifacts>/ingest/<split>.arrow`: a split's validated candidates.
pub fn split_path(pipeline: &Pipeline, split: &str) -> PathBuf {
    pipeline.stage_dir(STAGE).join(format!("{split}.arrow"))
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

/// Ingest every split of the pipeline, streaming each into a temporary Arrow file. The files
/// are put in place only once every split is valid, so bad input leaves the previous
/// artifacts untouched.
pub fn run(pipeline: &Pipeline) -> Result<Vec<SplitReport>, IngestError> {
    // polars parses on its own thread pool. Running the whole stage inside that pool keeps one
    // set of workers, one per core: with rayon's global pool beside it, twice as many threads
    // competed for the cores and idle ones spun (about 15% of the wall time on 2 cores).
    polars_core::runtime::THREAD_POOL.install(|| run_in_pool(pipeline))
}

fn run_in_pool(pipeline: &Pipeline) -> Result<Vec<SplitReport>, IngestError> {
    let dir = pipeline.stage_dir(STAGE);
    let schema = schema();
    // Splits are independent: validating them side by side overlaps one split's parsing with
    // another's checks and writes. Errors are reported in split order, as if run in turn.
    let splits: Vec<_> = pipeline.data.splits.iter().collect();
    let validated = splits
        .into_par_iter()
        .map(|(name, split)| {
            let started = Instant::now();
            let mut writer = IpcWriter::create(&split_path(pipeline, name), &schema)?;
            let scan = scan_split(
                &pipeline.data,
                name,
                split,
                CHUNK_ROWS,
                Records::All,
                |chunk| Ok(writer.write(&record_batch(chunk))?),
            )?;
            let pending = writer.finish()?;
            tracing::info!(split = %name, rows = scan.rows, "validated {}", split.dir.display());
            Ok((scan, pending, started.elapsed().as_secs_f64()))
        })
        .collect::<Vec<Result<_, IngestError>>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    let mut reports = Vec::new();
    for (scan, pending, seconds) in validated {
        for digest in &scan.files {
            manifest.add_input_digest(digest.clone());
        }
        let arrow_digest = pending.commit()?;
        let report = report(&scan, seconds);
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
        let report_path = dir.join(format!("{}.report.json", scan.name));
        write_json_atomic(&report_path, &report)?;
        manifest.add_output_digest(arrow_digest);
        manifest.add_output(&report_path)?;
        reports.push(report);
    }
    let config_path = pipeline.write_used(&dir)?;
    manifest.add_output(&config_path)?;
    manifest.write(&dir, hits_core::stage::elapsed_seconds())?;
    Ok(reports)
}
