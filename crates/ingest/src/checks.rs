//! Checks across the files of a split: alignment of the four channels, duplicate ids and
//! stamps, and labels that match the candidates one to one.

use std::collections::HashMap;
use std::path::Path;

use hits_core::{Channel, STAMP_PIXELS};

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

/// The ids of `channel`'s file must equal those of the first channel, row by row.
pub(crate) fn check_alignment(
    reference: (&Path, &[String]),
    other: (&Path, &[String]),
) -> Result<(), IngestError> {
    let (ref_path, ref_ids) = reference;
    let (path, ids) = other;
    if ids.len() != ref_ids.len() {
        return Err(IngestError::file(
            path,
            format!(
                "has {} candidate rows but {} has {}: channel files must be aligned row by row",
                ids.len(),
                ref_path.display(),
                ref_ids.len()
            ),
        ));
    }
    if let Some(row) = ids.iter().zip(ref_ids).position(|(a, b)| a != b) {
        return Err(IngestError::Cell {
            path: path.to_path_buf(),
            row: row + 1,
            line: row + 2,
            column: "id".into(),
            message: format!(
                "id '{}' but row {} of {} is '{}': ids must match, in the same order, across channel files",
                ids[row],
                row + 1,
                ref_path.display(),
                ref_ids[row]
            ),
        });
    }
    Ok(())
}

pub(crate) fn check_duplicate_ids(
    path: &Path,
    ids: &[String],
    has_header: bool,
) -> Result<(), IngestError> {
    let mut first_row: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        if let Some(previous) = first_row.insert(id, row) {
            return Err(IngestError::Cell {
                path: path.to_path_buf(),
                row: row + 1,
                line: row + 1 + usize::from(has_header),
                column: "id".into(),
                message: format!("duplicate id '{id}' (first at row {})", previous + 1),
            });
        }
    }
    Ok(())
}

/// Two candidates whose four channels are identical bit for bit are one candidate twice.
pub(crate) fn check_duplicate_stamps(
    dir: &Path,
    ids: &[String],
    channels: &[Vec<f32>; 4],
) -> Result<(), IngestError> {
    let row_bytes = |row: usize, bytes: &mut Vec<u8>| {
        bytes.clear();
        for c in Channel::ALL {
            for v in &channels[c.index()][row * STAMP_PIXELS..(row + 1) * STAMP_PIXELS] {
                bytes.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    };
    let (mut bytes, mut earlier_bytes) = (Vec::new(), Vec::new());
    let mut first_row: HashMap<[u8; 32], usize> = HashMap::with_capacity(ids.len());
    for row in 0..ids.len() {
        row_bytes(row, &mut bytes);
        let Some(&earlier) = first_row.get(blake3::hash(&bytes).as_bytes()) else {
            first_row.insert(*blake3::hash(&bytes).as_bytes(), row);
            continue;
        };
        row_bytes(earlier, &mut earlier_bytes);
        if earlier_bytes == bytes {
            return Err(IngestError::file(
                dir,
                format!(
                    "duplicate candidate: rows {} and {} (ids '{}' and '{}') have identical stamps in all four channels",
                    earlier + 1,
                    row + 1,
                    ids[earlier],
                    ids[row]
                ),
            ));
        }
    }
    Ok(())
}

/// Order `labels` (read with their ids) like `ids`; every candidate needs exactly one label.
pub(crate) fn align_labels(
    path: &Path,
    ids: &[String],
    label_ids: Option<&[String]>,
    labels: &[u8],
    candidates_file: &Path,
) -> Result<Vec<u8>, IngestError> {
    let Some(label_ids) = label_ids else {
        // Plain layout: labels are aligned by row.
        if labels.len() != ids.len() {
            return Err(IngestError::file(
                path,
                format!(
                    "has {} labels for {} candidates in {}",
                    labels.len(),
                    ids.len(),
                    candidates_file.display()
                ),
            ));
        }
        return Ok(labels.to_vec());
    };
    let mut by_id: HashMap<&str, (usize, u8)> = HashMap::with_capacity(label_ids.len());
    for (row, (id, label)) in label_ids.iter().zip(labels).enumerate() {
        if let Some((previous, _)) = by_id.insert(id, (row, *label)) {
            return Err(IngestError::Cell {
                path: path.to_path_buf(),
                row: row + 1,
                line: row + 2,
                column: "id".into(),
                message: format!("second label for id '{id}' (first at row {})", previous + 1),
            });
        }
    }
    let mut aligned = Vec::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        match by_id.remove(id.as_str()) {
            Some((_, label)) => aligned.push(label),
            None => {
                return Err(IngestError::file(
                    path,
                    format!(
                        "no label for candidate '{id}' (row {} of {})",
                        row + 1,
                        candidates_file.display()
                    ),
                ));
            }
        }
    }
    if let Some((id, (row, _))) = by_id.into_iter().min_by_key(|(_, (row, _))| *row) {
        return Err(IngestError::Cell {
            path: path.to_path_buf(),
            row: row + 1,
            line: row + 2,
            column: "id".into(),
            message: format!(
                "label for '{id}', which is not a candidate in {}",
                candidates_file.display()
            ),
        });
    }
    Ok(aligned)
}
