//! Flux scaling between epochs, corrected for what the conditions table's zero points miss.
//!
//! The table's zero point and exposure time predict a star's flux well in good seeing, but a
//! PSF-fitted flux falls short of them as the PSF widens (by ~2% at FWHM 5–6 px and ~6% above
//! 6 px on the real constant stars: the zero points behave as if measured in a fixed
//! aperture). A survey pipeline fits the flux ratio of two epochs on the stars of the whole
//! CCD; a 21x21 stamp has only its own object, so the correction is learned instead from the
//! calibration objects' constant stars, as a function of PSF width.

use super::subtract::Exposure;
use crate::check::median;

/// PSF-fitted flux over the zero-point prediction, as a function of PSF FWHM: medians in
/// equal-count FWHM bins, linearly interpolated between their centres and flat beyond.
#[derive(Debug, Clone, PartialEq)]
pub struct FluxCorrection {
    /// (median FWHM of the bin, median ratio), by increasing FWHM.
    knots: Vec<(f32, f32)>,
}

/// Bins of the correction; each needs this many stars' epochs to count.
const BINS: usize = 8;
const MIN_PER_BIN: usize = 20;

impl FluxCorrection {
    /// No correction.
    pub fn none() -> Self {
        FluxCorrection { knots: Vec::new() }
    }

    /// Fit on the epochs of constant stars, one list per star: each epoch's PSF flux over its
    /// predicted flux, relative to the star's median (which removes the star's magnitude).
    pub fn fit(stars: &[Vec<&Exposure>]) -> Self {
        let mut samples: Vec<(f32, f32)> = Vec::new();
        for epochs in stars {
            let ratios: Vec<(f32, f32)> = epochs
                .iter()
                .filter_map(|e| e.psf_flux.map(|f| (e.fwhm, f / e.flux_unit)))
                .filter(|(_, r)| r.is_finite() && *r > 0.0)
                .collect();
            if ratios.len() < 3 {
                continue;
            }
            let median = median(&mut ratios.iter().map(|(_, r)| *r).collect::<Vec<_>>());
            samples.extend(ratios.iter().map(|&(fwhm, r)| (fwhm, r / median)));
        }
        if samples.len() < BINS * MIN_PER_BIN {
            return Self::none();
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let per_bin = samples.len() / BINS;
        let knots = samples
            .chunks(per_bin)
            .filter(|bin| bin.len() >= MIN_PER_BIN)
            .map(|bin| {
                (
                    median(&mut bin.iter().map(|s| s.0).collect::<Vec<_>>()),
                    median(&mut bin.iter().map(|s| s.1).collect::<Vec<_>>()),
                )
            })
            .collect();
        FluxCorrection { knots }
    }

    /// The factor by which a PSF of `fwhm` pixels delivers more (> 1) or less flux than the
    /// zero point predicts.
    pub fn at(&self, fwhm: f32) -> f32 {
        let Some(&(first_x, first_y)) = self.knots.first() else {
            return 1.0;
        };
        if fwhm <= first_x {
            return first_y;
        }
        for pair in self.knots.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if fwhm <= x1 {
                return y0 + (y1 - y0) * (fwhm - x0) / (x1 - x0).max(1e-6);
            }
        }
        self.knots.last().map_or(1.0, |k| k.1)
    }

    /// (FWHM, factor) knots, for reports.
    pub fn knots(&self) -> &[(f32, f32)] {
        &self.knots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_knots_and_is_flat_beyond() {
        let c = FluxCorrection {
            knots: vec![(4.0, 1.0), (6.0, 0.9)],
        };
        assert_eq!(c.at(3.0), 1.0);
        assert!((c.at(5.0) - 0.95).abs() < 1e-6);
        assert_eq!(c.at(8.0), 0.9);
        assert_eq!(FluxCorrection::none().at(5.0), 1.0);
    }
}
