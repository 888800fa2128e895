//! Whether P(real) means what it says: the expected calibration error (ECE) and Brier score,
//! the reliability curve behind them, and temperature scaling (Guo et al. 2017), which
//! divides the model's log-odds by one number fitted on the validation candidates.

use serde::{Deserialize, Serialize};

/// Equal-width P(real) bins of the ECE and the reliability diagram.
pub const CALIBRATION_BINS: usize = 15;

/// One bin of the reliability curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub candidates: usize,
    /// Mean P(real) of the bin's candidates (NaN-free: 0 when empty).
    pub mean_p_real: f64,
    /// Fraction of them that are real.
    pub fraction_real: f64,
}

/// Calibration of a set of scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Σ over bins of (candidates in bin / all) · |fraction real − mean P(real)|.
    pub ece: f64,
    /// Mean squared difference between P(real) and the label.
    pub brier: f64,
    pub bins: Vec<ReliabilityBin>,
}

impl Calibration {
    pub fn of(labels: &[u8], p_real: &[f64]) -> Self {
        let n = labels.len().max(1) as f64;
        let mut sums = vec![(0usize, 0.0f64, 0usize); CALIBRATION_BINS];
        for (&label, &p) in labels.iter().zip(p_real) {
            let bin = ((p * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
            sums[bin].0 += 1;
            sums[bin].1 += p;
            sums[bin].2 += usize::from(label);
        }
        let bins: Vec<ReliabilityBin> = sums
            .iter()
            .enumerate()
            .map(|(i, &(count, p_sum, real))| ReliabilityBin {
                lower: i as f64 / CALIBRATION_BINS as f64,
                upper: (i + 1) as f64 / CALIBRATION_BINS as f64,
                candidates: count,
                mean_p_real: if count > 0 { p_sum / count as f64 } else { 0.0 },
                fraction_real: if count > 0 {
                    real as f64 / count as f64
                } else {
                    0.0
                },
            })
            .collect();
        let ece = bins
            .iter()
            .map(|b| b.candidates as f64 / n * (b.fraction_real - b.mean_p_real).abs())
            .sum();
        let brier = labels
            .iter()
            .zip(p_real)
            .map(|(&l, &p)| (p - f64::from(l)).powi(2))
            .sum::<f64>()
            / n;
        Calibration { ece, brier, bins }
    }
}

/// Keeps log-odds finite for scores of exactly 0 or 1.
pub const P_CLAMP: f64 = 1e-7;

/// `p` with its log-odds divided by `temperature` (> 1 softens, < 1 sharpens).
pub fn apply_temperature(p: f64, temperature: f64) -> f64 {
    let p = p.clamp(P_CLAMP, 1.0 - P_CLAMP);
    let logit = (p / (1.0 - p)).ln() / temperature;
    1.0 / (1.0 + (-logit).exp())
}

/// The temperature that minimises the log-loss of `p_real` on `labels`: a golden-section
/// search over ln T in [−3, 3] (the log-loss is convex in 1/T).
pub fn fit_temperature(labels: &[u8], p_real: &[f64]) -> f64 {
    let loss = |ln_t: f64| -> f64 {
        let t = ln_t.exp();
        labels
            .iter()
            .zip(p_real)
            .map(|(&l, &p)| {
                let q = apply_temperature(p, t).clamp(P_CLAMP, 1.0 - P_CLAMP);
                -(if l == 1 { q.ln() } else { (1.0 - q).ln() })
            })
            .sum()
    };
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (-3.0f64, 3.0f64);
    for _ in 0..80 {
        let (c, d) = (b - ratio * (b - a), a + ratio * (b - a));
        if loss(c) < loss(d) {
            b = d;
        } else {
            a = c;
        }
    }
    ((a + b) / 2.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_and_brier_by_hand() {
        // Two candidates in bin [0.8, 0.867): one real, mean 0.85 -> gap 0.35, weight 1/2;
        // two in [0.133, 0.2): none real, mean 0.15 -> gap 0.15, weight 1/2.
        let c = Calibration::of(&[1, 0, 0, 0], &[0.85, 0.85, 0.15, 0.15]);
        assert!((c.ece - 0.25).abs() < 1e-12, "{}", c.ece);
        let brier = (0.15f64.powi(2) + 0.85f64.powi(2) + 2.0 * 0.15f64.powi(2)) / 4.0;
        assert!((c.brier - brier).abs() < 1e-12);
        assert_eq!(c.bins.len(), CALIBRATION_BINS);
        assert_eq!(c.bins.iter().map(|b| b.candidates).sum::<usize>(), 4);
        // p = 1 falls in the last bin.
        assert_eq!(
            Calibration::of(&[1], &[1.0]).bins[CALIBRATION_BINS - 1].candidates,
            1
        );
    }

    #[test]
    fn temperature_one_changes_nothing_and_fitting_undoes_overconfidence() {
        assert!((apply_temperature(0.8, 1.0) - 0.8).abs() < 1e-12);
        // Scores whose log-odds are 3x too large: true P(real) = σ(x), reported σ(3x).
        let mut labels = Vec::new();
        let mut p = Vec::new();
        for i in 0..2000 {
            let x = -3.0 + 6.0 * (i as f64 + 0.5) / 2000.0;
            let truth = 1.0 / (1.0 + (-x).exp());
            // Deterministic labels with the right frequency per stretch of x.
            let label = u8::from(((i * 7919) % 1000) as f64 / 1000.0 < truth);
            labels.push(label);
            p.push(1.0 / (1.0 + (-3.0 * x).exp()));
        }
        let t = fit_temperature(&labels, &p);
        assert!((t - 3.0).abs() < 0.4, "temperature {t}");
        let before = Calibration::of(&labels, &p).ece;
        let calibrated: Vec<f64> = p.iter().map(|&q| apply_temperature(q, t)).collect();
        let after = Calibration::of(&labels, &calibrated).ece;
        assert!(after < before / 2.0, "ECE {before} -> {after}");
    }
}
