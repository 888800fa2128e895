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

/// [`ChannelStats`] accumulated chunk by chunk.
#[derive(Debug, Clone)]
pub(crate) struct StatsAccumulator {
    min: f64,
    max: f64,
    sum: f64,
    sum_sq: f64,
    count: u64,
    sentinel_values: u64,
    huge_values: u64,
}

impl Default for StatsAccumulator {
    fn default() -> Self {
        StatsAccumulator {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            sum_sq: 0.0,
            count: 0,
            sentinel_values: 0,
            huge_values: 0,
        }
    }
}

impl StatsAccumulator {
    pub fn add(&mut self, values: &[f32]) {
        for &v in values {
            let x = f64::from(v);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.sum += x;
            self.sum_sq += x * x;
            self.sentinel_values += u64::from(SENTINELS.contains(&v));
            self.huge_values += u64::from(v.abs() >= HUGE);
        }
        self.count += values.len() as u64;
    }

    pub fn finish(&self, file: PathBuf) -> ChannelStats {
        let n = self.count.max(1) as f64;
        let mean = self.sum / n;
        ChannelStats {
            file,
            min: self.min,
            max: self.max,
            mean,
            std: (self.sum_sq / n - mean * mean).max(0.0).sqrt(),
            sentinel_values: self.sentinel_values,
            huge_values: self.huge_values,
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
    /// Candidates dropped as duplicates (`[data] duplicates = "drop"`), with their twins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_duplicates: Vec<crate::DroppedDuplicate>,
    pub seconds: f64,
}
