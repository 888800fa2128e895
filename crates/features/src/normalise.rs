//! Stamp normalisation, and the statistics `zscore` needs.

use hits_core::{Channel, STAMP_PIXELS};
use serde::{Deserialize, Serialize};

/// A normalisation together with any statistics it was fitted with, exactly as stored in
/// the features file metadata and the model metadata (equal specs = interchangeable inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NormalisationSpec {
    None,
    MinmaxPerStamp,
    /// Per-channel mean and standard deviation, in [`Channel::ALL`] order.
    Zscore {
        mean: [f32; 4],
        std: [f32; 4],
    },
}

impl NormalisationSpec {
    /// Normalise one stamp in place. `stamp`: (4, 21, 21) row-major.
    pub fn apply(&self, stamp: &mut [f32]) {
        debug_assert_eq!(stamp.len(), Channel::ALL.len() * STAMP_PIXELS);
        match self {
            NormalisationSpec::None => {}
            NormalisationSpec::MinmaxPerStamp => {
                for channel in stamp.chunks_exact_mut(STAMP_PIXELS) {
                    let (min, max) = channel
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        });
                    let range = max - min;
                    if range > 0.0 {
                        // Divide rather than multiply by 1/range so the maximum maps to exactly 1.
                        channel.iter_mut().for_each(|v| *v = (*v - min) / range);
                    } else {
                        // A flat channel carries no information: map it to 0.
                        channel.fill(0.0);
                    }
                }
            }
            NormalisationSpec::Zscore { mean, std } => {
                for (c, channel) in stamp.chunks_exact_mut(STAMP_PIXELS).enumerate() {
                    let scale = if std[c] > 0.0 { 1.0 / std[c] } else { 1.0 };
                    channel.iter_mut().for_each(|v| *v = (*v - mean[c]) * scale);
                }
            }
        }
    }
}

/// Running per-channel sums for `zscore`, in f64 so millions of pixels lose no precision.
#[derive(Debug, Default)]
pub(crate) struct ChannelMoments {
    count: [f64; 4],
    sum: [f64; 4],
    sum_sq: [f64; 4],
}

impl ChannelMoments {
    pub fn add(&mut self, channel: Channel, values: &[f32]) {
        let c = channel.index();
        self.count[c] += values.len() as f64;
        for &v in values {
            let x = f64::from(v);
            self.sum[c] += x;
            self.sum_sq[c] += x * x;
        }
    }

    pub fn zscore(&self) -> NormalisationSpec {
        let mut mean = [0.0; 4];
        let mut std = [0.0; 4];
        for c in 0..4 {
            let n = self.count[c].max(1.0);
            let m = self.sum[c] / n;
            mean[c] = m as f32;
            std[c] = (self.sum_sq[c] / n - m * m).max(0.0).sqrt() as f32;
        }
        NormalisationSpec::Zscore { mean, std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Vec<f32> {
        (0..4 * STAMP_PIXELS)
            .map(|i| (i % 97) as f32 * (1 + i / STAMP_PIXELS) as f32 - 30.0)
            .collect()
    }

    #[test]
    fn minmax_maps_each_channel_to_unit_interval() {
        let mut s = stamp();
        s[STAMP_PIXELS..2 * STAMP_PIXELS].fill(7.0); // a flat science channel
        NormalisationSpec::MinmaxPerStamp.apply(&mut s);
        for (c, channel) in s.chunks_exact(STAMP_PIXELS).enumerate() {
            let min = channel.iter().cloned().fold(f32::INFINITY, f32::min);
            let max = channel.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            if c == 1 {
                assert!(channel.iter().all(|&v| v == 0.0));
            } else {
                assert_eq!((min, max), (0.0, 1.0), "channel {c}");
            }
        }
    }

    #[test]
    fn zscore_from_moments_standardises() {
        let s = stamp();
        let mut moments = ChannelMoments::default();
        for c in Channel::ALL {
            moments.add(
                c,
                &s[c.index() * STAMP_PIXELS..(c.index() + 1) * STAMP_PIXELS],
            );
        }
        let spec = moments.zscore();
        let mut t = s.clone();
        spec.apply(&mut t);
        for channel in t.chunks_exact(STAMP_PIXELS) {
            let mean: f32 = channel.iter().sum::<f32>() / STAMP_PIXELS as f32;
            let var: f32 =
                channel.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / STAMP_PIXELS as f32;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "mean {mean} var {var}"
            );
        }
    }

    #[test]
    fn none_leaves_values() {
        let s = stamp();
        let mut t = s.clone();
        NormalisationSpec::None.apply(&mut t);
        assert_eq!(s, t);
    }
}
