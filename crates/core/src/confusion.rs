//! The confusion count of a real/bogus classifier and the rates derived from it.

use serde::{Deserialize, Serialize};

/// Candidates by true class and call: what `train` counts on its validation candidates and
/// `evaluate` reports at the chosen threshold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Real called real.
    pub true_positive: usize,
    /// Bogus called real.
    pub false_positive: usize,
    /// Bogus called bogus.
    pub true_negative: usize,
    /// Real called bogus.
    pub false_negative: usize,
}

impl Confusion {
    /// Labels (1 = real) against `p_real >= threshold`.
    pub fn at(labels: &[u8], p_real: &[f64], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for (&label, &p) in labels.iter().zip(p_real) {
            c.add(label == 1, p >= threshold);
        }
        c
    }

    /// Count one candidate.
    pub fn add(&mut self, real: bool, called_real: bool) {
        match (real, called_real) {
            (true, true) => self.true_positive += 1,
            (false, true) => self.false_positive += 1,
            (false, false) => self.true_negative += 1,
            (true, false) => self.false_negative += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    fn ratio(numerator: usize, denominator: usize) -> f64 {
        if denominator == 0 {
            0.0
        } else {
            numerator as f64 / denominator as f64
        }
    }

    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.true_positive + self.true_negative, self.total())
    }

    pub fn precision(&self) -> f64 {
        Self::ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// Recall = true-positive rate = 1 − FNR.
    pub fn recall(&self) -> f64 {
        Self::ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    pub fn f1(&self) -> f64 {
        Self::ratio(
            2 * self.true_positive,
            2 * self.true_positive + self.false_positive + self.false_negative,
        )
    }

    /// Fraction of real candidates called bogus.
    pub fn false_negative_rate(&self) -> f64 {
        Self::ratio(
            self.false_negative,
            self.true_positive + self.false_negative,
        )
    }

    /// Fraction of bogus candidates called real.
    pub fn false_positive_rate(&self) -> f64 {
        Self::ratio(
            self.false_positive,
            self.false_positive + self.true_negative,
        )
    }

    /// Matthews correlation coefficient.
    pub fn mcc(&self) -> f64 {
        let (tp, fp, tn, fn_) = (
            self.true_positive as f64,
            self.false_positive as f64,
            self.true_negative as f64,
            self.false_negative as f64,
        );
        let denominator = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        if denominator == 0.0 {
            0.0
        } else {
            (tp * tn - fp * fn_) / denominator
        }
    }
}
