//! CSV output in the pipeline's `id_header` layout, written atomically.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use hits_core::STAMP_PIXELS;
use hits_core::io::write_atomic;
use rayon::prelude::*;

use crate::Candidate;
use crate::error::SimError;

/// `id,p0,...,p440`.
pub fn pixel_header() -> String {
    let mut header = String::from("id");
    for p in 0..STAMP_PIXELS {
        let _ = write!(header, ",p{p}");
    }
    header
}

fn write_lines(path: &Path, header: &str, lines: &[String]) -> Result<(), SimError> {
    write_atomic(path, |w| {
        let io = |e| SimError::io(path, e);
        writeln!(w, "{header}").map_err(io)?;
        for line in lines {
            w.write_all(line.as_bytes()).map_err(io)?;
        }
        Ok(())
    })
}

/// One channel (0..4, pipeline order) of every candidate: id then 441 pixels, 4 decimals
/// (far below the noise of every channel).
pub fn write_channel(
    path: &Path,
    candidates: &[Candidate],
    channel: usize,
) -> Result<(), SimError> {
    let lines: Vec<String> = candidates
        .par_iter()
        .map(|c| {
            let mut line = String::with_capacity(441 * 10);
            line.push_str(&c.id);
            for v in &c.stamps.channels()[channel].pixels {
                let _ = write!(line, ",{v:.4}");
            }
            line.push('\n');
            line
        })
        .collect();
    write_lines(path, &pixel_header(), &lines)
}

/// `id,label`.
pub fn write_labels(path: &Path, candidates: &[Candidate]) -> Result<(), SimError> {
    let lines: Vec<String> = candidates
        .iter()
        .map(|c| format!("{},{}\n", c.id, c.label))
        .collect();
    write_lines(path, "id,label", &lines)
}

pub const TRUTH_HEADER: &str = "id,label,kind,centre_snr,source_mag,source_x,source_y,field,template_epoch,science_epoch,\
template_seeing,science_seeing,template_sky,science_sky,attempts";

/// The per-candidate truth; source columns are empty for candidates without a source.
pub fn write_truth(path: &Path, candidates: &[Candidate]) -> Result<(), SimError> {
    let lines: Vec<String> = candidates
        .iter()
        .map(|c| {
            let t = &c.truth;
            let mag = t.source_mag.map(|m| format!("{m:.3}")).unwrap_or_default();
            let (x, y) = t
                .source_xy
                .map(|(x, y)| (format!("{x:.3}"), format!("{y:.3}")))
                .unwrap_or_default();
            format!(
                "{},{},{},{:.3},{mag},{x},{y},{},{},{},{:.3},{:.3},{:.2},{:.2},{}\n",
                c.id,
                c.label,
                t.kind.name(),
                t.centre_snr,
                t.field,
                t.template_epoch,
                t.science_epoch,
                t.template_seeing,
                t.science_seeing,
                t.template_sky,
                t.science_sky,
                t.attempts
            )
        })
        .collect();
    write_lines(path, TRUTH_HEADER, &lines)
}
