//! How far simulated stamps are from real ones, for one kind of scene at a time: a small
//! classifier trained to tell them apart (held-out ROC AUC; 0.5 = indistinguishable) and
//! two-sample Kolmogorov–Smirnov distances of quantities measured the same way on both.

use serde::Serialize;

/// One stamp seen as the realism classifier sees it.
pub type FeatureVector = Vec<f32>;

/// Features of a science stamp of a star: the sky-subtracted pixels over the central peak
/// (PSF shape, centring and noise relative to the source), and log10 of the peak SNR.
pub fn science_features(pixels: &[f32], sky: f32, noise: f32) -> FeatureVector {
    let peak = crate::real_pixels::stamp_ops::central_peak(
        &pixels.iter().map(|v| v - sky).collect::<Vec<_>>(),
    )
    .1
    .max(1e-3);
    let mut features: Vec<f32> = pixels.iter().map(|v| (v - sky) / peak).collect();
    features.push((peak / noise.max(1e-3)).log10());
    features
}

/// Features of an SNR-difference stamp: the pixels over the largest |value|, and log10 of it.
pub fn difference_features(snr: &[f32]) -> FeatureVector {
    let scale = snr.iter().fold(1e-3f32, |a, v| a.max(v.abs()));
    let mut features: Vec<f32> = snr.iter().map(|v| v / scale).collect();
    features.push(scale.log10());
    features
}

/// L2-regularised logistic regression on standardised features, fitted by full-batch
/// gradient descent: small and deterministic, enough to see systematic differences.
struct Logistic {
    mean: Vec<f32>,
    scale: Vec<f32>,
    weights: Vec<f32>,
    bias: f32,
}

impl Logistic {
    fn fit(x: &[FeatureVector], y: &[u8]) -> Self {
        let dims = x[0].len();
        let n = x.len() as f32;
        let mut mean = vec![0.0f32; dims];
        for row in x {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut scale = vec![0.0f32; dims];
        for row in x {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        scale.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
        let z: Vec<Vec<f32>> = x
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&mean)
                    .zip(&scale)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect()
            })
            .collect();
        let (mut weights, mut bias) = (vec![0.0f32; dims], 0.0f32);
        const STEPS: usize = 300;
        const RATE: f32 = 0.5;
        const L2: f32 = 1e-2;
        for _ in 0..STEPS {
            let mut grad = vec![0.0f32; dims];
            let mut grad_bias = 0.0;
            for (row, &label) in z.iter().zip(y) {
                let p = sigmoid(bias + dot(&weights, row));
                let err = p - f32::from(label);
                grad_bias += err / n;
                for (g, v) in grad.iter_mut().zip(row) {
                    *g += err * v / n;
                }
            }
            for (w, g) in weights.iter_mut().zip(&grad) {
                *w -= RATE * (g + L2 * *w);
            }
            bias -= RATE * grad_bias;
        }
        Logistic {
            mean,
            scale,
            weights,
            bias,
        }
    }

    fn predict(&self, row: &[f32]) -> f32 {
        let z: Vec<f32> = row
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) / s)
            .collect();
        sigmoid(self.bias + dot(&self.weights, &z))
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// ROC AUC of `scores` for `labels` (1 = positive), ties counted as half.
pub fn roc_auc(labels: &[u8], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann–Whitney U with mid-ranks for ties.
    let mut ranks = vec![0.0f64; labels.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l == 1)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs.
pub fn ks_distance(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    let (mut i, mut j, mut worst) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        worst = worst.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    worst
}

/// The realism of one kind of scene.
#[derive(Debug, Clone, Serialize)]
pub struct SceneRealism {
    pub scene: String,
    pub simulated: usize,
    pub real: usize,
    /// Held-out ROC AUC of the classifier telling simulated (positive) from real stamps.
    pub classifier_auc: f64,
}

/// Train on the stamps whose `fold` is false, score those whose fold is true.
/// `real_fold` should keep each real object in one fold, so the score is on unseen objects.
pub fn scene_realism(
    scene: &str,
    simulated: &[FeatureVector],
    real: &[FeatureVector],
    real_fold: &[bool],
) -> SceneRealism {
    let mut train = (Vec::new(), Vec::new());
    let mut test = (Vec::new(), Vec::new());
    for (i, row) in simulated.iter().enumerate() {
        let set = if i % 2 == 1 { &mut test } else { &mut train };
        set.0.push(row.clone());
        set.1.push(1u8);
    }
    for (row, &fold) in real.iter().zip(real_fold) {
        let set = if fold { &mut test } else { &mut train };
        set.0.push(row.clone());
        set.1.push(0u8);
    }
    let model = Logistic::fit(&train.0, &train.1);
    let scores: Vec<f32> = test.0.iter().map(|row| model.predict(row)).collect();
    SceneRealism {
        scene: scene.to_string(),
        simulated: simulated.len(),
        real: real.len(),
        classifier_auc: roc_auc(&test.1, &scores),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn sample(rng: &mut ChaCha8Rng, n: usize, shift: f32) -> Vec<FeatureVector> {
        (0..n)
            .map(|_| {
                (0..8)
                    .map(|d| {
                        rng.sample::<f32, _>(StandardNormal) + if d == 3 { shift } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn classifier_auc_is_half_for_one_population_and_high_for_two() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let folds: Vec<bool> = (0..400).map(|i| i % 2 == 0).collect();
        let same = scene_realism(
            "same",
            &sample(&mut rng, 400, 0.0),
            &sample(&mut rng, 400, 0.0),
            &folds,
        );
        assert!(
            (same.classifier_auc - 0.5).abs() < 0.08,
            "{}",
            same.classifier_auc
        );
        let apart = scene_realism(
            "apart",
            &sample(&mut rng, 400, 1.5),
            &sample(&mut rng, 400, 0.0),
            &folds,
        );
        assert!(apart.classifier_auc > 0.8, "{}", apart.classifier_auc);
    }

    #[test]
    fn auc_and_ks_by_hand() {
        assert_eq!(roc_auc(&[1, 0, 1, 0], &[0.9, 0.1, 0.8, 0.2]), 1.0);
        assert_eq!(roc_auc(&[1, 0], &[0.3, 0.3]), 0.5);
        assert_eq!(ks_distance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(ks_distance(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        assert!((ks_distance(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]) - 0.5).abs() < 1e-12);
    }
}
