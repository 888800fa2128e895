//! The per-split report a person reads: size, label balance, per-channel statistics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Values that are finite but almost certainly not pixels: masked-detector sentinels.
const SENTINELS: [f32; 2] = [-9999.0, -999.0];
/// Magnitude above which a value is counted as huge (saturation is ~40,000 ADU).
const HUGE: f32 = 1e6;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelStats {
    pub file: PathBuf,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    /// Values equal to a common sentinel (-9999, -999): reported, not changed.
    pub sentinel_values: u64,
    /// Values with magnitude of at least 1e6: reported, not changed.
    pub huge_values: u64,
}

impl ChannelStats {
    pub fn of(file: PathBuf, values: &[f32]) -> Self {
        let (mut min, mut max, mut sum, mut sum_sq) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
        let (mut sentinel_values, mut huge_values) = (0, 0);
        for &v in values {
            let x = f64::from(v);
            min = min.min(x);
            max = max.max(x);
            sum += x;
            sum_sq += x * x;
            sentinel_values += u64::from(SENTINELS.contains(&v));
            huge_values += u64::from(v.abs() >= HUGE);
        }
        let n = values.len().max(1) as f64;
        let mean = sum / n;
        let std = (sum_sq / n - mean * mean).max(0.0).sqrt();
        ChannelStats {
            file,
            min,
            max,
            mean,
            std,
            sentinel_values,
            huge_values,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitReport {
    pub split: String,
    pub rows: usize,
    pub labelled: bool,
    /// Candidates per label (`bogus`, `real`) for a labelled split.
    pub label_counts: Option<BTreeMap<String, usize>>,
    pub channels: BTreeMap<String, ChannelStats>,
    pub checks: Vec<String>,
    pub seconds: f64,
}
