//! How far simulated stamps are from real ones, for one kind of scene at a time: a small
//! classifier trained to tell them apart (held-out ROC AUC; 0.5 = indistinguishable) and
//! two-sample Kolmogorov–Smirnov distances of quantities measured the same way on both.

use hits_core::{STAMP_PIXELS, STAMP_SIDE};
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
    /// The same with every stamp turned by one of the 8 rotations and flips of the square
    /// (by its index): what is left once the orientation of the stamps tells nothing. The
    /// real stamps come from a few dozen exposures whose PSFs share an orientation; the
    /// gap between the two AUCs is what that orientation alone separates.
    pub orientation_free_auc: f64,
}

/// `pixels` (row-major, `STAMP_SIDE` wide) turned by element `k` (0..8) of the square's
/// symmetry group: `k % 4` quarter turns, then a transpose when `k >= 4`.
fn dihedral(pixels: &[f32], k: usize) -> Vec<f32> {
    let side = STAMP_SIDE;
    (0..side * side)
        .map(|i| {
            let (mut x, mut y) = (i % side, i / side);
            if k >= 4 {
                (x, y) = (y, x);
            }
            for _ in 0..k % 4 {
                (x, y) = (side - 1 - y, x);
            }
            pixels[y * side + x]
        })
        .collect()
}

/// The stamp part of each feature vector (its first `STAMP_PIXELS` values) turned by an
/// element of the square's symmetry group chosen by the row's index.
fn without_orientation(rows: &[FeatureVector]) -> Vec<FeatureVector> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let mut turned = dihedral(&row[..STAMP_PIXELS], i % 8);
            turned.extend_from_slice(&row[STAMP_PIXELS..]);
            turned
        })
        .collect()
}

/// Train on the stamps whose `fold` is false, score those whose fold is true.
/// `real_fold` should keep each real object in one fold, so the score is on unseen objects.
pub fn scene_realism(
    scene: &str,
    simulated: &[FeatureVector],
    real: &[FeatureVector],
    real_fold: &[bool],
) -> SceneRealism {
    SceneRealism {
        scene: scene.to_string(),
        simulated: simulated.len(),
        real: real.len(),
        classifier_auc: held_out_auc(simulated, real, real_fold),
        orientation_free_auc: held_out_auc(
            &without_orientation(simulated),
            &without_orientation(real),
            real_fold,
        ),
    }
}

fn held_out_auc(simulated: &[FeatureVector], real: &[FeatureVector], real_fold: &[bool]) -> f64 {
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
    roc_auc(&test.1, &scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// `n` stamp-like feature vectors of noise; `pixel_shift` brightens one off-centre pixel
    /// (an oriented difference), `scale_shift` the last, non-pixel feature.
    fn sample(
        rng: &mut ChaCha8Rng,
        n: usize,
        pixel_shift: f32,
        scale_shift: f32,
    ) -> Vec<FeatureVector> {
        (0..n)
            .map(|_| {
                (0..=STAMP_PIXELS)
                    .map(|d| {
                        let shift = match d {
                            3 => pixel_shift,
                            STAMP_PIXELS => scale_shift,
                            _ => 0.0,
                        };
                        rng.sample::<f32, _>(StandardNormal) + shift
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
            &sample(&mut rng, 400, 0.0, 0.0),
            &sample(&mut rng, 400, 0.0, 0.0),
            &folds,
        );
        for auc in [same.classifier_auc, same.orientation_free_auc] {
            assert!((auc - 0.5).abs() < 0.1, "{auc}");
        }
        // A difference in one corner pixel: separable as it is, hardly once the stamps are
        // turned; a difference outside the stamp stays separable either way.
        let oriented = scene_realism(
            "oriented",
            &sample(&mut rng, 400, 3.0, 0.0),
            &sample(&mut rng, 400, 0.0, 0.0),
            &folds,
        );
        assert!(oriented.classifier_auc > 0.8, "{oriented:?}");
        assert!(oriented.orientation_free_auc < 0.7, "{oriented:?}");
        let scale = scene_realism(
            "scale",
            &sample(&mut rng, 400, 0.0, 3.0),
            &sample(&mut rng, 400, 0.0, 0.0),
            &folds,
        );
        assert!(scale.orientation_free_auc > 0.8, "{scale:?}");
    }

    #[test]
    fn dihedral_gives_the_eight_turns_and_flips_of_the_square() {
        let stamp: Vec<f32> = (0..STAMP_PIXELS).map(|i| i as f32).collect();
        assert_eq!(dihedral(&stamp, 0), stamp);
        let turns: std::collections::BTreeSet<Vec<u32>> = (0..8)
            .map(|k| dihedral(&stamp, k).iter().map(|&v| v as u32).collect())
            .collect();
        assert_eq!(turns.len(), 8);
        // Four quarter turns are the identity; a transpose twice too.
        let mut turned = stamp.clone();
        for _ in 0..4 {
            turned = dihedral(&turned, 1);
        }
        assert_eq!(turned, stamp);
        assert_eq!(dihedral(&dihedral(&stamp, 4), 4), stamp);
        // A quarter turn moves the top-left corner to a neighbouring corner, not the opposite one.
        let corner = dihedral(&stamp, 1)[0];
        assert!(
            corner == (STAMP_SIDE - 1) as f32 || corner == ((STAMP_SIDE - 1) * STAMP_SIDE) as f32
        );
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
