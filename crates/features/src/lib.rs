//! Stage 2, `features`: turn validated candidates into model inputs.
//!
//! Reads `<artifacts>/ingest/<split>.arrow` (checked against the ingest manifest), stacks the
//! four channels into one (4, 21, 21) f32 tensor per candidate in the order template, science,
//! difference, SNR-difference, normalises it, and writes `<artifacts>/features/<split>.arrow`:
//! `id` Utf8, `label` UInt8 (nullable), `stamp` FixedSizeList<Float32, 1764>, `centre_snr`
//! Float32 (raw SNR-difference at the centre pixel), with schema metadata `hits.shape`,
//! `hits.channels`, `hits.normalisation` (JSON, with its statistics) and `hits.input_hash`.
//! Record batches are streamed: memory does not grow with the number of candidates. Splits are
//! built side by side and put in place together, only once every split is built.

mod error;
pub mod inspect;
mod normalise;
mod stamp_set;
#[cfg(feature = "toy")]
pub mod toy;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch};
use hits_core::Stage;
use hits_core::arrow_io::{
    self, IpcWriter, expect_field, f32_list_array, f32_list_field, id_field, label_field,
};
use hits_core::config::Normalisation;
use hits_core::digest::FileDigest;
use hits_core::io::{PendingFile, write_json_atomic};
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline, STAMP_PIXELS, TENSOR_LEN};
use rayon::prelude::*;

pub use error::FeaturesError;
pub use normalise::NormalisationSpec;
pub use stamp_set::{
    CENTRE_PIXEL, FeatureMeta, IN_MEMORY_BYTES, StampSet, Stamps, open_split, split_path,
};

use crate::normalise::ChannelMoments;

pub const STAGE: Stage = Stage::Features;

/// Check that an ingest file has the columns this stage reads.
fn check_ingest_schema(
    path: &Path,
    schema: &arrow::datatypes::Schema,
) -> Result<(), FeaturesError> {
    expect_field(path, schema, &id_field())?;
    expect_field(path, schema, &label_field())?;
    for c in Channel::ALL {
        expect_field(path, schema, &f32_list_field(c.name(), STAMP_PIXELS))?;
    }
    Ok(())
}

/// The four channel columns of an ingest batch, in [`Channel::ALL`] order.
fn ingest_channels<'a>(
    path: &Path,
    batch: &'a RecordBatch,
) -> Result<Vec<&'a [f32]>, FeaturesError> {
    Ok(Channel::ALL
        .iter()
        .map(|c| arrow_io::f32_list_values(path, batch, c.name()))
        .collect::<Result<_, _>>()?)
}

/// Ids and raw (unnormalised) channel-major `(N, 4, 21, 21)` stamps of a whole ingest file,
/// e.g. for a runtime that normalises them itself (`export`'s check).
pub fn read_ingest_stamps(path: &Path) -> Result<(Vec<String>, Vec<f32>), FeaturesError> {
    let reader = arrow_io::open_ipc(path)?;
    check_ingest_schema(path, &reader.schema())?;
    let (mut ids, mut stamps) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch?;
        let channels = ingest_channels(path, &batch)?;
        stamps.extend(stack(&channels, batch.num_rows(), &NormalisationSpec::None).0);
        ids.extend(
            arrow_io::ids(path, &batch)?
                .iter()
                .map(|id| id.unwrap_or_default().to_string()),
        );
    }
    Ok((ids, stamps))
}

/// Per-channel mean and standard deviation of every pixel of an ingest file.
pub fn zscore_statistics(path: &Path) -> Result<NormalisationSpec, FeaturesError> {
    let reader = arrow_io::open_ipc(path)?;
    check_ingest_schema(path, &reader.schema())?;
    let mut moments = ChannelMoments::default();
    for batch in reader {
        let batch = batch?;
        for c in Channel::ALL {
            moments.add(c, arrow_io::f32_list_values(path, &batch, c.name())?);
        }
    }
    Ok(moments.zscore())
}

/// Stack, normalise and write one split, batch by batch. Returns the candidates written and
/// the output, complete but not yet in place.
pub fn build_split(
    input: &Path,
    output: &Path,
    meta: &FeatureMeta,
) -> Result<(usize, PendingFile), FeaturesError> {
    let reader = arrow_io::open_ipc(input)?;
    check_ingest_schema(input, &reader.schema())?;
    let schema = meta.schema();
    let mut writer = IpcWriter::create(output, &schema)?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        let n = batch.num_rows();
        let channels = ingest_channels(input, &batch)?;
        let (stamps, centre_snr) = stack(&channels, n, &meta.normalisation);
        rows += n;
        let columns: Vec<ArrayRef> = vec![
            batch.column_by_name("id").expect("schema checked").clone(),
            batch
                .column_by_name("label")
                .expect("schema checked")
                .clone(),
            Arc::new(f32_list_array(stamps, TENSOR_LEN)),
            Arc::new(Float32Array::from(centre_snr)),
        ];
        writer.write(
            &RecordBatch::try_new(schema.clone(), columns)
                .expect("columns match the features schema"),
        )?;
    }
    Ok((rows, writer.finish()?))
}

/// `n` candidates' four channels (`channels` in [`Channel::ALL`] order, row-major stamps)
/// stacked into (N, 4, 21, 21) and normalised, with each candidate's raw centre SNR.
pub fn stack(
    channels: &[&[f32]],
    n: usize,
    normalisation: &NormalisationSpec,
) -> (Vec<f32>, Vec<f32>) {
    let snr = channels[Channel::SnrDifference.index()];
    let centre_snr: Vec<f32> = (0..n)
        .map(|row| snr[row * STAMP_PIXELS + CENTRE_PIXEL])
        .collect();
    let mut stamps = vec![0.0f32; n * TENSOR_LEN];
    stamps
        .par_chunks_exact_mut(TENSOR_LEN)
        .enumerate()
        .for_each(|(row, stamp)| {
            for (c, pixels) in channels.iter().enumerate() {
                stamp[c * STAMP_PIXELS..(c + 1) * STAMP_PIXELS]
                    .copy_from_slice(&pixels[row * STAMP_PIXELS..(row + 1) * STAMP_PIXELS]);
            }
            normalisation.apply(stamp);
        });
    (stamps, centre_snr)
}

/// One split's line in the stage summary.
#[derive(Debug, Clone)]
pub struct SplitSummary {
    pub split: String,
    pub rows: usize,
    pub path: PathBuf,
}

/// The ingest files `run` reads: what decides whether the features are up to date.
pub fn input_files(pipeline: &Pipeline) -> Vec<PathBuf> {
    let ingest_dir = pipeline.stage_dir(Stage::Ingest);
    pipeline
        .data
        .splits
        .keys()
        .map(|split| ingest_dir.join(format!("{split}.arrow")))
        .collect()
}

/// Build the features of every split of the pipeline.
pub fn run(pipeline: &Pipeline) -> Result<Vec<SplitSummary>, FeaturesError> {
    let ingest_dir = pipeline.stage_dir(Stage::Ingest);
    let ingest_manifest = Manifest::read(&ingest_dir)?;
    let inputs: Vec<(String, PathBuf, FileDigest)> = pipeline
        .data
        .splits
        .keys()
        .zip(input_files(pipeline))
        .map(|(split, path)| {
            let digest = ingest_manifest.verify_output(&path)?;
            Ok((split.clone(), path, digest))
        })
        .collect::<Result<_, FeaturesError>>()?;

    let normalisation = match pipeline.features.normalisation {
        Normalisation::None => NormalisationSpec::None,
        Normalisation::MinmaxPerStamp => NormalisationSpec::MinmaxPerStamp,
        Normalisation::Zscore => {
            let statistics_split = &pipeline.features.statistics_split;
            let (_, path, _) = inputs.iter().find(|(name, _, _)| name == statistics_split).ok_or_else(|| {
                FeaturesError::schema(&ingest_dir, format!("features.statistics_split '{statistics_split}' is not a split of this pipeline"))
            })?;
            zscore_statistics(path)?
        }
    };

    let dir = pipeline.stage_dir(STAGE);
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    // Splits are independent: built side by side, then put in place together once all are
    // built (the first error in split order is reported), so a failure replaces no file.
    let built = inputs
        .par_iter()
        .map(|(split, input, digest)| {
            let meta = FeatureMeta::new(normalisation.clone(), digest.blake3.clone());
            build_split(input, &split_path(pipeline, split), &meta)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut summaries = Vec::new();
    for ((split, _, digest), (rows, pending)) in inputs.into_iter().zip(built) {
        let output = pending.path().to_path_buf();
        manifest.add_input_digest(digest);
        manifest.add_output_digest(pending.commit()?);
        summaries.push(SplitSummary {
            split,
            rows,
            path: output,
        });
    }
    let normalisation_path = dir.join("normalisation.json");
    write_json_atomic(&normalisation_path, &normalisation)?;
    manifest.add_output(&normalisation_path)?;
    manifest.add_output(&pipeline.write_used(&dir)?)?;
    manifest.write(&dir, hits_core::stage::elapsed_seconds())?;
    Ok(summaries)
}
