//! `just inspect FILE`: what is in an ingest or features Arrow file, and what one candidate
//! looks like (as text in the terminal and as a PNG).

use std::fmt::Write as _;
use std::path::Path;

use arrow::array::Array;
use arrow::datatypes::Schema;
use hits_core::arrow_io;
use hits_core::{Channel, STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};

use crate::FeaturesError;

/// A summary of an Arrow file and one of its candidates.
pub struct Inspection {
    pub schema: Schema,
    pub rows: usize,
    pub real: usize,
    pub bogus: usize,
    pub unlabelled: usize,
    pub id: String,
    pub label: Option<u8>,
    /// The candidate's four channels, (4, 21, 21) row-major.
    pub stamp: Vec<f32>,
}

/// Read `path` (an ingest file with one column per channel, or a features file with a
/// `stamp` column) and pick candidate `row` (0-based).
pub fn inspect(path: &Path, row: usize) -> Result<Inspection, FeaturesError> {
    let (schema, batches) = arrow_io::read_ipc(path)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if row >= rows {
        return Err(FeaturesError::schema(
            path,
            format!("has {rows} rows; row {row} does not exist"),
        ));
    }
    let (mut real, mut bogus, mut unlabelled) = (0, 0, 0);
    for batch in &batches {
        for label in arrow_io::labels(path, batch)? {
            match label {
                Some(1) => real += 1,
                Some(_) => bogus += 1,
                None => unlabelled += 1,
            }
        }
    }
    let mut offset = row;
    let batch = batches
        .iter()
        .find(|b| {
            if offset < b.num_rows() {
                true
            } else {
                offset -= b.num_rows();
                false
            }
        })
        .expect("row < rows");
    let stamp = if schema.field_with_name("stamp").is_ok() {
        arrow_io::f32_list_values(path, batch, "stamp")?
            [offset * TENSOR_LEN..(offset + 1) * TENSOR_LEN]
            .to_vec()
    } else {
        let mut stamp = Vec::with_capacity(TENSOR_LEN);
        for c in Channel::ALL {
            stamp.extend_from_slice(
                &arrow_io::f32_list_values(path, batch, c.name())?
                    [offset * STAMP_PIXELS..(offset + 1) * STAMP_PIXELS],
            );
        }
        stamp
    };
    let id = arrow_io::ids(path, batch)?.value(offset).to_string();
    let labels = arrow_io::labels(path, batch)?;
    let label = labels.is_valid(offset).then(|| labels.value(offset));
    Ok(Inspection {
        schema: schema.as_ref().clone(),
        rows,
        real,
        bogus,
        unlabelled,
        id,
        label,
        stamp,
    })
}

/// Shades from faint to bright for the terminal rendering.
const SHADES: &[u8] = b" .:-=+*#%@";

/// The four channels side by side as characters, each scaled by its own min and max.
pub fn render_text(stamp: &[f32]) -> String {
    let mut out = String::new();
    for c in Channel::ALL {
        let _ = write!(out, "{:<width$} ", c.name(), width = STAMP_SIDE * 2);
    }
    out.push('\n');
    let ranges: Vec<(f32, f32)> = stamp
        .chunks_exact(STAMP_PIXELS)
        .map(|ch| {
            ch.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })
        })
        .collect();
    for y in 0..STAMP_SIDE {
        for (c, &(lo, hi)) in ranges.iter().enumerate() {
            for x in 0..STAMP_SIDE {
                let v = stamp[c * STAMP_PIXELS + y * STAMP_SIDE + x];
                let t = if hi > lo {
                    ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let shade = SHADES[(t * (SHADES.len() - 1) as f32).round() as usize] as char;
                out.push(shade);
                out.push(shade);
            }
            out.push(' ');
        }
        out.push('\n');
    }
    out
}

impl Inspection {
    /// Schema, size and label balance as text.
    pub fn summary(&self, path: &Path) -> String {
        let mut out = format!("{}\n  rows: {}\n", path.display(), self.rows);
        let _ = writeln!(
            out,
            "  labels: {} real, {} bogus, {} unlabelled",
            self.real, self.bogus, self.unlabelled
        );
        out.push_str("  columns:\n");
        for field in self.schema.fields() {
            let _ = writeln!(
                out,
                "    {}: {}{}",
                field.name(),
                field.data_type(),
                if field.is_nullable() {
                    " (nullable)"
                } else {
                    ""
                }
            );
        }
        let mut metadata: Vec<_> = self.schema.metadata().iter().collect();
        metadata.sort();
        for (key, value) in metadata {
            let _ = writeln!(out, "  {key}: {value}");
        }
        out
    }

    /// Render the candidate's four channels as a PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), plots::PlotError> {
        let channels: [Vec<f32>; 4] =
            std::array::from_fn(|c| self.stamp[c * STAMP_PIXELS..(c + 1) * STAMP_PIXELS].to_vec());
        let label = match self.label {
            Some(1) => "real",
            Some(_) => "bogus",
            None => "unlabelled",
        };
        let panel = plots::StampPanel {
            caption: format!("{} ({label})", self.id),
            channels,
        };
        plots::stamp_gallery(
            path,
            &format!("candidate {}", self.id),
            Channel::ALL.map(Channel::name),
            &[panel],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rendering_shows_a_central_source() {
        let mut stamp = vec![0.0; TENSOR_LEN];
        for c in 0..4 {
            stamp[c * STAMP_PIXELS + 10 * STAMP_SIDE + 10] = 1.0;
        }
        let text = render_text(&stamp);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + STAMP_SIDE);
        assert_eq!(lines[11].matches("@@").count(), 4, "{text}");
        assert_eq!(lines[1].trim(), "");
    }
}
