//! Checks across the files of a split: alignment of the four channels, duplicate ids and
//! stamps, and labels that match the candidates one to one.

use std::collections::HashMap;
use std::path::Path;

use hits_core::config::DuplicatePolicy;
use hits_core::{Channel, CoreError, STAMP_PIXELS};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::IngestError;

/// Names of the checks every split passes, as listed in its report.
pub const CHECKS: &[&str] = &[
    "files exist and are not empty",
    "header and exactly 441 pixel columns per row",
    "every cell numeric, finite and present (no NaN, Inf or empty cells)",
    "same row count and ids in the same order in all four channel files",
    "no duplicate ids",
    "no duplicate candidates (identical stamps in all four channels)",
    "labels in {0,1}, exactly one per candidate (labelled splits)",
];

/// The ids of a chunk of another channel file must equal the reference channel's, row by row;
/// `first_row` is the chunk's first row in both files.
pub(crate) fn check_alignment(
    reference: (&Path, &[String]),
    other: (&Path, &[String]),
    first_row: usize,
) -> Result<(), IngestError> {
    let (ref_path, ref_ids) = reference;
    let (path, ids) = other;
    if let Some(i) = ids.iter().zip(ref_ids).position(|(a, b)| a != b) {
        let row = first_row + i;
        return Err(CoreError::Cell {
            path: path.to_path_buf(),
            row: row + 1,
            line: row + 2,
            column: "id".into(),
            message: format!(
                "id '{}' but row {} of {} is '{}': ids must match, in the same order, across channel files",
                ids[i],
                row + 1,
                ref_path.display(),
                ref_ids[i]
            ),
        }.into());
    }
    Ok(())
}

/// The error for channel files of different lengths.
pub(crate) fn row_count_mismatch(reference: (&Path, usize), other: (&Path, usize)) -> IngestError {
    IngestError::file(
        other.0,
        format!(
            "has {} candidate rows but {} has {}: channel files must be aligned row by row",
            other.1,
            reference.0.display(),
            reference.1
        ),
    )
}

/// A 128-bit BLAKE3 digest: what the duplicate checks remember of an id or a candidate, so
/// memory holds about 40 bytes per candidate whatever its size (two different inputs share a
/// digest with a probability of about 2^-128 per pair).
fn digest(bytes: &[u8]) -> u128 {
    u128::from_le_bytes(
        blake3::hash(bytes).as_bytes()[..16]
            .try_into()
            .expect("16 bytes"),
    )
}

/// Ids seen so far in a channel file (by digest), to refuse a duplicate.
pub(crate) struct IdRegistry {
    first_row: HashMap<u128, u32>,
}

impl IdRegistry {
    pub fn new() -> Self {
        IdRegistry {
            first_row: HashMap::new(),
        }
    }

    /// Register a chunk's ids; `first_row` is the chunk's first row in the file.
    pub fn add(
        &mut self,
        path: &Path,
        has_header: bool,
        first_row: usize,
        ids: &[String],
    ) -> Result<(), IngestError> {
        for (i, id) in ids.iter().enumerate() {
            let row = first_row + i;
            if let Some(previous) = self.first_row.insert(digest(id.as_bytes()), row as u32) {
                return Err(CoreError::Cell {
                    path: path.to_path_buf(),
                    row: row + 1,
                    line: row + 1 + usize::from(has_header),
                    column: "id".into(),
                    message: format!("duplicate id '{id}' (first at row {})", previous + 1),
                }
                .into());
            }
        }
        Ok(())
    }
}

/// Digests of the candidates seen so far: two candidates whose four channels are identical bit
/// for bit are one candidate twice.
pub(crate) struct StampRegistry {
    first_row: HashMap<u128, u32>,
}

impl StampRegistry {
    pub fn new() -> Self {
        StampRegistry {
            first_row: HashMap::new(),
        }
    }

    /// Register a chunk's candidates (`channels` row-major, `ids.len()` rows each); `id_at`
    /// gives the id of an earlier row. A duplicate is refused, or with [`DuplicatePolicy::Drop`]
    /// returned (in row order) for the caller to drop; the first of identical candidates stays.
    pub fn add(
        &mut self,
        dir: &Path,
        first_row: usize,
        ids: &[String],
        channels: &[Vec<f32>; 4],
        policy: DuplicatePolicy,
        id_at: impl Fn(usize) -> String,
    ) -> Result<Vec<DroppedDuplicate>, IngestError> {
        // Digests in parallel, then checked in row order so the first duplicate is reported.
        let digests: Vec<u128> = (0..ids.len())
            .into_par_iter()
            .map_init(Vec::new, |bytes, i| {
                bytes.clear();
                for c in Channel::ALL {
                    for v in &channels[c.index()][i * STAMP_PIXELS..(i + 1) * STAMP_PIXELS] {
                        bytes.extend_from_slice(&v.to_bits().to_le_bytes());
                    }
                }
                digest(bytes)
            })
            .collect();
        let mut dropped = Vec::new();
        for ((i, id), stamp_digest) in ids.iter().enumerate().zip(digests) {
            let row = first_row + i;
            if let Some(&earlier) = self.first_row.get(&stamp_digest) {
                let earlier = earlier as usize;
                if policy == DuplicatePolicy::Drop {
                    dropped.push(DroppedDuplicate {
                        row: row + 1,
                        id: id.clone(),
                        twin_row: earlier + 1,
                        twin_id: id_at(earlier),
                    });
                    continue;
                }
                return Err(IngestError::file(
                    dir,
                    format!(
                        "duplicate candidate: rows {} and {} (ids '{}' and '{id}') have identical stamps in all four channels",
                        earlier + 1,
                        row + 1,
                        id_at(earlier),
                    ),
                ));
            }
            self.first_row.insert(stamp_digest, row as u32);
        }
        Ok(dropped)
    }
}

/// A candidate `ingest` dropped because its four stamps repeat an earlier candidate's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedDuplicate {
    /// Data row (from 1) and id of the dropped candidate ...
    pub row: usize,
    pub id: String,
    /// ... and of the earlier one it repeats, which is kept.
    pub twin_row: usize,
    pub twin_id: String,
}

/// The labels of a split, handed out candidate by candidate; every candidate needs exactly one.
pub(crate) enum Labels {
    /// `id_header` layout: by id digest, (row in the labels file, label).
    ById(HashMap<u128, (u32, u8)>),
    /// `plain` layout: aligned by row.
    ByRow(Vec<u8>),
}

impl Labels {
    /// Index the labels read from `path` (with their ids in the `id_header` layout).
    pub fn new(
        path: &Path,
        label_ids: Option<Vec<String>>,
        labels: Vec<u8>,
    ) -> Result<Self, IngestError> {
        let Some(label_ids) = label_ids else {
            return Ok(Labels::ByRow(labels));
        };
        let mut by_id = HashMap::with_capacity(label_ids.len());
        for (row, (id, label)) in label_ids.into_iter().zip(labels).enumerate() {
            if let Some((previous, _)) = by_id.insert(digest(id.as_bytes()), (row as u32, label)) {
                return Err(CoreError::Cell {
                    path: path.to_path_buf(),
                    row: row + 1,
                    line: row + 2,
                    column: "id".into(),
                    message: format!("second label for id '{id}' (first at row {})", previous + 1),
                }
                .into());
            }
        }
        Ok(Labels::ById(by_id))
    }

    /// The label of candidate `id` at `row` of `candidates_file`. A plain-layout row past
    /// the last label gets 0 here; [`Labels::finish`] refuses the count.
    pub fn take(
        &mut self,
        path: &Path,
        id: &str,
        row: usize,
        candidates_file: &Path,
    ) -> Result<u8, IngestError> {
        match self {
            Labels::ByRow(labels) => Ok(labels.get(row).copied().unwrap_or(0)),
            Labels::ById(by_id) => match by_id.remove(&digest(id.as_bytes())) {
                Some((_, label)) => Ok(label),
                None => Err(IngestError::file(
                    path,
                    format!(
                        "no label for candidate '{id}' (row {} of {})",
                        row + 1,
                        candidates_file.display()
                    ),
                )),
            },
        }
    }

    /// After all `candidates` rows: refuse labels left over (or missing, in the plain layout).
    /// `id_at` gives the id at a row of the labels file for the error message.
    pub fn finish(
        self,
        path: &Path,
        candidates: usize,
        candidates_file: &Path,
        id_at: impl Fn(usize) -> String,
    ) -> Result<(), IngestError> {
        match self {
            Labels::ByRow(labels) if labels.len() != candidates => Err(IngestError::file(
                path,
                format!(
                    "has {} labels for {candidates} candidates in {}",
                    labels.len(),
                    candidates_file.display()
                ),
            )),
            Labels::ByRow(_) => Ok(()),
            Labels::ById(by_id) => match by_id.into_values().map(|(row, _)| row as usize).min() {
                Some(row) => Err(CoreError::Cell {
                    path: path.to_path_buf(),
                    row: row + 1,
                    line: row + 2,
                    column: "id".into(),
                    message: format!(
                        "label for '{}', which is not a candidate in {}",
                        id_at(row),
                        candidates_file.display()
                    ),
                }
                .into()),
                None => Ok(()),
            },
        }
    }
}
