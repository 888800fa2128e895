//! CSV output in the pipeline's `id_header` layout, written atomically.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use hits_core::STAMP_PIXELS;
use hits_core::digest::FileDigest;
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

fn write_lines(path: &Path, header: &str, lines: &[String]) -> Result<FileDigest, SimError> {
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
) -> Result<FileDigest, SimError> {
    let lines: Vec<String> = candidates
        .par_iter()
        .map(|c| {
            let mut line = String::with_capacity(441 * 10);
            line.push_str(&c.id);
            for &v in &c.stamps.channels()[channel].pixels {
                line.push(',');
                push_fixed4(&mut line, v);
            }
            line.push('\n');
            line
        })
        .collect();
    write_lines(path, &pixel_header(), &lines)
}

/// Append `value` with exactly four decimals. `format!("{v:.4}")` on an f32 takes the slow
/// exact-formatting path and was 85% of `just data`; pixels are far below 10^14, so an
/// integer count of 1e-4 units is exact enough and fast.
fn push_fixed4(line: &mut String, value: f32) {
    let units = (f64::from(value) * 1e4).round() as i64;
    if units < 0 {
        line.push('-');
    }
    let units = units.unsigned_abs();
    let _ = write!(line, "{}.{:04}", units / 10_000, units % 10_000);
}

/// `id,label`.
pub fn write_labels(path: &Path, candidates: &[Candidate]) -> Result<FileDigest, SimError> {
    let lines: Vec<String> = candidates
        .iter()
        .map(|c| format!("{},{}\n", c.id, c.label))
        .collect();
    write_lines(path, "id,label", &lines)
}

pub const TRUTH_HEADER: &str = "id,label,kind,centre_snr,source_mag,source_x,source_y,field,template_epoch,science_epoch,\
template_seeing,science_seeing,template_sky,science_sky,attempts,object";

/// The per-candidate truth; source columns are empty for candidates without a source.
pub fn write_truth(path: &Path, candidates: &[Candidate]) -> Result<FileDigest, SimError> {
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
                "{},{},{},{:.3},{mag},{x},{y},{},{},{},{:.3},{:.3},{:.2},{:.2},{},{}\n",
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
                t.attempts,
                t.object.as_deref().unwrap_or_default()
            )
        })
        .collect();
    write_lines(path, TRUTH_HEADER, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_has_four_decimals_and_rounds_to_nearest() {
        let cases = [
            (0.0f32, "0.0000"),
            (1.5, "1.5000"),
            (-1.5, "-1.5000"),
            (-123.456_79, "-123.4568"),
            (39_999.97, "39999.9688"),
            (0.000_04, "0.0000"),
            (0.000_06, "0.0001"),
        ];
        for (value, expected) in cases {
            let mut line = String::new();
            push_fixed4(&mut line, value);
            assert_eq!(line, expected, "{value}");
            assert_eq!(line, format!("{value:.4}").replace("-0.0000", "0.0000"));
        }
    }
}
