//! Why a stamp was called real: occlusion sensitivity. Each 3x3 neighbourhood of each channel
//! is masked in turn (set to that channel's mean over the stamp) and the model scores every
//! masked copy; a pixel's value in the map is how much P(real) fell when its neighbourhood was
//! masked (positive: it made the call more real; negative: it held P(real) down). All copies
//! of a candidate go through the model as one batch.

use std::path::Path;

use features::StampSet;
use hits_core::{STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
use indicatif::ProgressBar;

use crate::EvaluateError;

/// Pixels masked on each side of the centre pixel: 1 masks a 3x3 neighbourhood.
pub const OCCLUSION_RADIUS: usize = 1;

/// The occlusion map of one normalised stamp (channel-major, `TENSOR_LEN` values): per channel
/// and pixel, P(real) of the stamp less P(real) with that pixel's neighbourhood masked.
/// `score` takes `n` stamps laid end to end and returns their P(real).
pub fn occlusion_map(
    stamp: &[f32],
    mut score: impl FnMut(&[f32], usize) -> Result<Vec<f64>, EvaluateError>,
) -> Result<Vec<f32>, EvaluateError> {
    assert_eq!(stamp.len(), TENSOR_LEN, "one stamp of four channels");
    let channels = TENSOR_LEN / STAMP_PIXELS;
    let copies = channels * STAMP_PIXELS;
    let mut batch = Vec::with_capacity((copies + 1) * TENSOR_LEN);
    batch.extend_from_slice(stamp);
    for c in 0..channels {
        let plane = &stamp[c * STAMP_PIXELS..(c + 1) * STAMP_PIXELS];
        let mean = plane.iter().sum::<f32>() / STAMP_PIXELS as f32;
        for p in 0..STAMP_PIXELS {
            let start = batch.len();
            batch.extend_from_slice(stamp);
            let (x, y) = (p % STAMP_SIDE, p / STAMP_SIDE);
            let span = |v: usize| {
                v.saturating_sub(OCCLUSION_RADIUS)..(v + OCCLUSION_RADIUS + 1).min(STAMP_SIDE)
            };
            for yy in span(y) {
                for xx in span(x) {
                    batch[start + c * STAMP_PIXELS + yy * STAMP_SIDE + xx] = mean;
                }
            }
        }
    }
    let p_real = score(&batch, copies + 1)?;
    Ok(p_real[1..]
        .iter()
        .map(|&p| (p_real[0] - p) as f32)
        .collect())
}

/// Occlusion maps of `rows` of `set` by the model saved in `model_dir`.
pub fn occlusion_maps(
    model_dir: &Path,
    set: &StampSet,
    rows: &[usize],
) -> Result<Vec<Vec<f32>>, EvaluateError> {
    rows.iter()
        .map(|&row| {
            let stamp = set.stamps.get(row)?;
            occlusion_map(&stamp, |stamps, n| {
                let copies = StampSet::from_parts(
                    vec![String::new(); n],
                    vec![None; n],
                    stamps.to_vec(),
                    vec![0.0; n],
                    set.meta.clone(),
                );
                let hidden = ProgressBar::hidden();
                Ok(crate::predict_with_progress(model_dir, &copies, &hidden)?.0)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "model" that only looks at a 3x3 region of the difference channel.
    fn region_scorer(stamps: &[f32], n: usize) -> Result<Vec<f64>, EvaluateError> {
        Ok((0..n)
            .map(|i| {
                let stamp = &stamps[i * TENSOR_LEN..(i + 1) * TENSOR_LEN];
                let difference = &stamp[2 * STAMP_PIXELS..3 * STAMP_PIXELS];
                let sum: f32 = (4..7)
                    .flat_map(|y| (13..16).map(move |x| difference[y * STAMP_SIDE + x]))
                    .sum();
                1.0 / (1.0 + f64::from(-sum).exp())
            })
            .collect())
    }

    #[test]
    fn the_map_peaks_where_the_model_looks() {
        // Bright in the region the scorer reads, and elsewhere too (which must not matter).
        let mut stamp = vec![0.0f32; TENSOR_LEN];
        for (i, v) in stamp.iter_mut().enumerate() {
            *v = ((i * 7919) % 13) as f32 / 13.0;
        }
        for y in 4..7 {
            for x in 13..16 {
                stamp[2 * STAMP_PIXELS + y * STAMP_SIDE + x] = 1.0;
            }
        }
        let map = occlusion_map(&stamp, region_scorer).unwrap();
        let (peak, _) = map
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(
            peak / STAMP_PIXELS,
            2,
            "the peak is in the difference channel"
        );
        let (x, y) = (peak % STAMP_SIDE, peak / STAMP_SIDE % STAMP_SIDE);
        assert!(
            (13..16).contains(&x) && (4..7).contains(&y),
            "peak at ({x}, {y})"
        );
        assert!(map[5 * STAMP_SIDE + 14 + 2 * STAMP_PIXELS] > 0.0);
        // Nothing the scorer ignores moves P(real): other channels, and pixels far away.
        for (i, v) in map.iter().enumerate() {
            let (c, p) = (i / STAMP_PIXELS, i % STAMP_PIXELS);
            let (x, y) = (p % STAMP_SIDE, p / STAMP_SIDE);
            if c != 2 || !(12..17).contains(&x) || !(3..8).contains(&y) {
                assert_eq!(*v, 0.0, "channel {c} ({x}, {y})");
            }
        }
    }
}
