//! The stratified, seeded train/validation split, written so `evaluate` uses the same
//! validation candidates.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;

pub const SPLIT_FILE: &str = "split.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationSplit {
    pub seed: u64,
    pub validation_fraction: f64,
    /// BLAKE3 of the features file the ids index.
    pub features_hash: String,
    /// Row indices into the features file, ascending.
    pub train_rows: Vec<usize>,
    pub validation_rows: Vec<usize>,
    pub train_ids: Vec<String>,
    pub validation_ids: Vec<String>,
}

/// Hold out `fraction` of each class (rounded) for validation; `labels` are 0/1.
pub fn stratified(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5b1d_5eed);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for class in [0u8, 1] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let held = (rows.len() as f64 * fraction).round() as usize;
        validation.extend_from_slice(&rows[..held]);
        train.extend_from_slice(&rows[held..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

impl ValidationSplit {
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, TrainError> {
        let path = dir.join(SPLIT_FILE);
        hits_core::io::write_json_atomic(&path, self)?;
        Ok(path)
    }

    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        Ok(hits_core::io::read_json(&dir.join(SPLIT_FILE))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_disjoint_and_seeded() {
        let labels: Vec<u8> = (0..300).map(|i| u8::from(i % 3 == 0)).collect();
        let (train, val) = stratified(&labels, 1.0 / 3.0, 7);
        assert_eq!(train.len() + val.len(), 300);
        assert!(train.iter().all(|i| !val.contains(i)));
        let real_val = val.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!(real_val, 33);
        assert_eq!(val.len(), 100);
        assert_eq!(
            stratified(&labels, 1.0 / 3.0, 7),
            (train.clone(), val.clone())
        );
        assert_ne!(stratified(&labels, 1.0 / 3.0, 8).1, val);
    }
}
