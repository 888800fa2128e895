//! Reading a features file back: the model-ready stamps of one split.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use hits_core::arrow_io::{self, ListExtent, expect_field, f32_list_field, id_field, label_field};
use hits_core::digest::FileDigest;
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline, STAMP_SIDE, TENSOR_LEN};
use serde::{Deserialize, Serialize};

use crate::{FeaturesError, NormalisationSpec, STAGE};

/// Index of the centre pixel in a 21x21 channel.
pub const CENTRE_PIXEL: usize = (STAMP_SIDE / 2) * STAMP_SIDE + STAMP_SIDE / 2;

const SHAPE_KEY: &str = "hits.shape";
const CHANNELS_KEY: &str = "hits.channels";
const NORMALISATION_KEY: &str = "hits.normalisation";
const INPUT_HASH_KEY: &str = "hits.input_hash";

/// What a features file says about its stamps; a model trained on one file accepts another
/// only if these agree (apart from the input hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMeta {
    /// (channels, height, width) of one stamp: [4, 21, 21].
    pub shape: [usize; 3],
    /// Channel order, comma-separated.
    pub channels: String,
    pub normalisation: NormalisationSpec,
    /// BLAKE3 of the ingest file these features were made from.
    pub input_hash: String,
}

impl FeatureMeta {
    pub fn new(normalisation: NormalisationSpec, input_hash: String) -> Self {
        FeatureMeta {
            shape: [Channel::ALL.len(), STAMP_SIDE, STAMP_SIDE],
            channels: Channel::order_string(),
            normalisation,
            input_hash,
        }
    }

    /// The schema of a features file carrying this metadata.
    pub fn schema(&self) -> SchemaRef {
        let metadata = HashMap::from([
            (
                SHAPE_KEY.to_string(),
                serde_json::to_string(&self.shape).expect("shape serialises"),
            ),
            (CHANNELS_KEY.to_string(), self.channels.clone()),
            (
                NORMALISATION_KEY.to_string(),
                serde_json::to_string(&self.normalisation).expect("spec serialises"),
            ),
            (INPUT_HASH_KEY.to_string(), self.input_hash.clone()),
        ]);
        Arc::new(Schema::new_with_metadata(fields(), metadata))
    }

    fn from_schema(path: &Path, schema: &Schema) -> Result<Self, FeaturesError> {
        let get = |key: &str| {
            schema.metadata().get(key).ok_or_else(|| {
                FeaturesError::schema(
                    path,
                    format!(
                        "no '{key}' metadata: not a features file written by the features stage"
                    ),
                )
            })
        };
        let parse_error = |key: &str, e: serde_json::Error| {
            FeaturesError::schema(path, format!("bad '{key}' metadata: {e}"))
        };
        let meta = FeatureMeta {
            shape: serde_json::from_str(get(SHAPE_KEY)?).map_err(|e| parse_error(SHAPE_KEY, e))?,
            channels: get(CHANNELS_KEY)?.clone(),
            normalisation: serde_json::from_str(get(NORMALISATION_KEY)?)
                .map_err(|e| parse_error(NORMALISATION_KEY, e))?,
            input_hash: get(INPUT_HASH_KEY)?.clone(),
        };
        let expected = FeatureMeta::new(meta.normalisation.clone(), meta.input_hash.clone());
        if meta.shape != expected.shape || meta.channels != expected.channels {
            return Err(FeaturesError::schema(
                path,
                format!(
                    "stamps are {:?} in channel order '{}', this build expects {:?} in order '{}'",
                    meta.shape, meta.channels, expected.shape, expected.channels
                ),
            ));
        }
        Ok(meta)
    }
}

/// The columns of a features file.
pub(crate) fn fields() -> Vec<Field> {
    vec![
        id_field(),
        label_field(),
        f32_list_field("stamp", TENSOR_LEN),
        Field::new("centre_snr", DataType::Float32, false),
    ]
}

/// The (N, 4, 21, 21) stamps of a set, fetched by row. A set read from a features file larger
/// than [`IN_MEMORY_BYTES`] keeps only where each record batch's stamps lie and reads the rows
/// asked for with `pread`, so memory does not grow with the number of candidates; a smaller
/// file, or a set built in memory, holds them.
#[derive(Debug, Clone)]
pub struct Stamps {
    store: Store,
    /// Rows of `store` this set consists of, in order; `None` for all of them.
    rows: Option<Arc<[usize]>>,
}

/// A features file whose stamps fit in this many bytes is read whole when opened: training
/// reads every stamp once per epoch in shuffled batches, a `pread` per row, which cost 5–7%
/// of a small set's training CPU (4.5% of its wall time). Larger files are read by row, so
/// memory does not grow with them.
pub const IN_MEMORY_BYTES: usize = 256 << 20;

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Vec<f32>>),
    File {
        path: Arc<Path>,
        file: Arc<File>,
        extents: Arc<[ListExtent]>,
        len: usize,
    },
}

impl From<Vec<f32>> for Stamps {
    /// Row-major whole stamps held in memory.
    fn from(stamps: Vec<f32>) -> Self {
        assert_eq!(
            stamps.len() % TENSOR_LEN,
            0,
            "stamps must be (N, 4, 21, 21)"
        );
        Stamps {
            store: Store::Memory(Arc::new(stamps)),
            rows: None,
        }
    }
}

impl Stamps {
    fn from_file(
        path: &Path,
        schema: &Schema,
        in_memory_bytes: usize,
    ) -> Result<Self, FeaturesError> {
        let file = File::open(path).map_err(|e| hits_core::CoreError::io(path, e))?;
        let extents = arrow_io::list_extents(path, &file, schema, "stamp", TENSOR_LEN)?;
        let len = extents.last().map_or(0, |e| e.first_row + e.rows);
        if len * TENSOR_LEN * size_of::<f32>() <= in_memory_bytes {
            let mut stamps = Vec::with_capacity(len * TENSOR_LEN);
            arrow_io::read_list_rows(path, &file, &extents, TENSOR_LEN, 0..len, &mut stamps)?;
            return Ok(Stamps::from(stamps));
        }
        Ok(Stamps {
            store: Store::File {
                path: path.into(),
                file: Arc::new(file),
                extents: extents.into(),
                len,
            },
            rows: None,
        })
    }

    pub fn len(&self) -> usize {
        match (&self.rows, &self.store) {
            (Some(rows), _) => rows.len(),
            (None, Store::Memory(stamps)) => stamps.len() / TENSOR_LEN,
            (None, Store::File { len, .. }) => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stamps at `rows` of this set, in that order.
    pub fn select(&self, rows: &[usize]) -> Stamps {
        let rows: Arc<[usize]> = match &self.rows {
            Some(own) => rows.iter().map(|&r| own[r]).collect(),
            None => rows.into(),
        };
        Stamps {
            store: self.store.clone(),
            rows: Some(rows),
        }
    }

    /// Append the stamps at `rows` to `out`, row-major (N, 4, 21, 21).
    pub fn gather(&self, rows: &[usize], out: &mut Vec<f32>) -> Result<(), FeaturesError> {
        let physical = rows.iter().map(|&r| match &self.rows {
            Some(own) => own[r],
            None => r,
        });
        match &self.store {
            Store::Memory(stamps) => {
                for row in physical {
                    out.extend_from_slice(&stamps[row * TENSOR_LEN..(row + 1) * TENSOR_LEN]);
                }
            }
            Store::File {
                path,
                file,
                extents,
                ..
            } => arrow_io::read_list_rows(path, file, extents, TENSOR_LEN, physical, out)?,
        }
        Ok(())
    }

    /// Stamps `range` of this set, row-major.
    pub fn range(&self, range: std::ops::Range<usize>) -> Result<Vec<f32>, FeaturesError> {
        let rows: Vec<usize> = range.collect();
        let mut out = Vec::with_capacity(rows.len() * TENSOR_LEN);
        self.gather(&rows, &mut out)?;
        Ok(out)
    }

    /// Stamp `i`: (4, 21, 21) row-major.
    pub fn get(&self, i: usize) -> Result<Vec<f32>, FeaturesError> {
        self.range(i..i + 1)
    }
}

/// All candidates of one split, ready for a model.
#[derive(Debug, Clone)]
pub struct StampSet {
    pub ids: Vec<String>,
    /// 1 = real, 0 = bogus; `None` for unlabelled candidates.
    pub labels: Vec<Option<u8>>,
    /// (N, 4, 21, 21), normalised as `meta.normalisation` says.
    pub stamps: Stamps,
    /// The raw (unnormalised) SNR-difference value at the centre pixel, per candidate.
    pub centre_snr: Vec<f32>,
    pub meta: FeatureMeta,
    /// BLAKE3 of the file read (empty for a set built in memory).
    pub file_hash: String,
}

impl StampSet {
    /// Build a set in memory (tests, simulated inputs): one stamp per id.
    pub fn from_parts(
        ids: Vec<String>,
        labels: Vec<Option<u8>>,
        stamps: impl Into<Stamps>,
        centre_snr: Vec<f32>,
        meta: FeatureMeta,
    ) -> Self {
        let stamps = stamps.into();
        assert_eq!(stamps.len(), ids.len(), "one stamp per id");
        assert_eq!(labels.len(), ids.len());
        assert_eq!(centre_snr.len(), ids.len());
        StampSet {
            ids,
            labels,
            stamps,
            centre_snr,
            meta,
            file_hash: String::new(),
        }
    }

    /// Open a features file, checking its schema and metadata. Ids, labels and centre SNRs
    /// are read (a few bytes per candidate); stamps are read when asked for.
    pub fn read(path: &Path) -> Result<Self, FeaturesError> {
        Self::read_hashed(path, hits_core::io::hash_file(path)?)
    }

    /// The manifest digest of the file at `path` this set was read from, from the hash
    /// taken when it was read.
    pub fn digest(&self, path: &Path) -> Result<FileDigest, FeaturesError> {
        Ok(FileDigest::with_hash(path, self.file_hash.clone())?)
    }

    /// [`read`](Self::read) a file whose BLAKE3 hash is already known (verified against
    /// its manifest), so it is not hashed again.
    pub fn read_hashed(path: &Path, file_hash: String) -> Result<Self, FeaturesError> {
        Self::read_hashed_within(path, file_hash, IN_MEMORY_BYTES)
    }

    /// [`read_hashed`](Self::read_hashed), holding the stamps in memory only if they fit in
    /// `in_memory_bytes`; otherwise they are read by row when asked for.
    pub fn read_hashed_within(
        path: &Path,
        file_hash: String,
        in_memory_bytes: usize,
    ) -> Result<Self, FeaturesError> {
        let reader = arrow_io::open_ipc(path)?;
        let schema = reader.schema();
        for field in fields() {
            expect_field(path, &schema, &field)?;
        }
        let meta = FeatureMeta::from_schema(path, &schema)?;
        let stamps = Stamps::from_file(path, &schema, in_memory_bytes)?;
        let rows = stamps.len();
        let mut set = StampSet {
            ids: Vec::with_capacity(rows),
            labels: Vec::with_capacity(rows),
            stamps,
            centre_snr: Vec::with_capacity(rows),
            meta,
            file_hash,
        };
        for batch in reader {
            // Decoding a batch checks its stamps too (one batch in memory at a time).
            let batch = batch?;
            arrow_io::f32_list_values(path, &batch, "stamp")?;
            set.ids.extend(
                arrow_io::ids(path, &batch)?
                    .iter()
                    .map(|id| id.unwrap_or_default().to_string()),
            );
            set.labels.extend(arrow_io::labels(path, &batch)?.iter());
            let snr = batch.column_by_name("centre_snr").expect("schema checked");
            let snr = snr
                .as_any()
                .downcast_ref::<arrow::array::Float32Array>()
                .expect("schema checked");
            set.centre_snr.extend(snr.values().iter());
        }
        if set.ids.len() != rows {
            return Err(FeaturesError::schema(
                path,
                format!(
                    "record batches hold {} rows, the footer {rows} (corrupt file?)",
                    set.ids.len()
                ),
            ));
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The candidates at `rows`, in that order (stamps stay where they are).
    pub fn select(&self, rows: &[usize]) -> StampSet {
        StampSet {
            ids: rows.iter().map(|&r| self.ids[r].clone()).collect(),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            stamps: self.stamps.select(rows),
            centre_snr: rows.iter().map(|&r| self.centre_snr[r]).collect(),
            meta: self.meta.clone(),
            file_hash: self.file_hash.clone(),
        }
    }
}

/// `<artifacts>/features/<split>.arrow`, where the features stage writes split `split`.
pub fn split_path(pipeline: &Pipeline, split: &str) -> PathBuf {
    pipeline.stage_dir(STAGE).join(format!("{split}.arrow"))
}

/// Read [`split_path`] after checking it against the features manifest, so a file changed
/// since the features stage wrote it is refused.
pub fn open_split(pipeline: &Pipeline, split: &str) -> Result<StampSet, FeaturesError> {
    let path = split_path(pipeline, split);
    let digest = Manifest::read(&pipeline.stage_dir(STAGE))?.verify_output(&path)?;
    StampSet::read_hashed(&path, digest.blake3)
}
