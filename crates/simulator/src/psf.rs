//! Point-spread functions and the Gaussian PSF-matching kernel.

/// Moffat index: ground-based seeing-limited PSFs have β ≈ 2.5–3 (Trujillo et al. 2001).
pub const MOFFAT_BETA: f32 = 2.5;
/// FWHM = 2.3548 σ for a Gaussian.
pub const FWHM_PER_SIGMA: f32 = 2.354_82;

/// A circular Moffat profile normalised to unit total flux.
#[derive(Debug, Clone, Copy)]
pub struct Moffat {
    alpha2: f32,
    peak: f32,
}

impl Moffat {
    pub fn new(fwhm_px: f32) -> Self {
        let alpha = fwhm_px / (2.0 * (2f32.powf(1.0 / MOFFAT_BETA) - 1.0).sqrt());
        let alpha2 = alpha * alpha;
        Moffat {
            alpha2,
            peak: (MOFFAT_BETA - 1.0) / (std::f32::consts::PI * alpha2),
        }
    }

    /// Fraction of the flux per pixel at squared distance `r2` (pixels²) from the centre.
    #[inline]
    pub fn at(&self, r2: f32) -> f32 {
        let u = 1.0 + r2 / self.alpha2;
        // u^-2.5 without powf: this is the simulator's innermost loop.
        self.peak / (u * u * u.sqrt())
    }

    /// Fraction of the flux in the central pixel.
    pub fn peak(&self) -> f32 {
        self.peak
    }
}

/// A normalised 1-D Gaussian; the 2-D kernel is its outer product (separable convolution).
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub taps: Vec<f32>,
}

impl Kernel {
    /// Truncated at 3.5 σ; a σ too small to matter gives the identity kernel.
    pub fn gaussian(sigma: f32) -> Self {
        if sigma.is_nan() || sigma <= 0.05 {
            return Kernel { taps: vec![1.0] };
        }
        let radius = (3.5 * sigma).ceil() as i32;
        let mut taps: Vec<f32> = (-radius..=radius)
            .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
            .collect();
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Kernel { taps }
    }

    /// The kernel that matches a PSF of FWHM `sharp` to one of FWHM `broad`: Gaussian widths
    /// add in quadrature.
    pub fn matching(sharp_fwhm: f32, broad_fwhm: f32) -> Self {
        let s2 = (broad_fwhm / FWHM_PER_SIGMA).powi(2) - (sharp_fwhm / FWHM_PER_SIGMA).powi(2);
        Self::gaussian(s2.max(0.0).sqrt())
    }

    pub fn radius(&self) -> usize {
        self.taps.len() / 2
    }

    /// Squared taps: convolving a variance map with them propagates independent pixel noise.
    pub fn squared(&self) -> Self {
        Kernel {
            taps: self.taps.iter().map(|t| t * t).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moffat_has_the_requested_fwhm_and_unit_flux() {
        let psf = Moffat::new(5.0);
        let half = psf.at(2.5 * 2.5) / psf.at(0.0);
        assert!((half - 0.5).abs() < 1e-4, "{half}");
        let mut total = 0.0;
        for y in -200..=200 {
            for x in -200..=200 {
                total += psf.at((x * x + y * y) as f32) as f64;
            }
        }
        assert!((total - 1.0).abs() < 0.01, "{total}");
    }

    #[test]
    fn matching_kernel_is_normalised_with_quadrature_width() {
        let k = Kernel::matching(4.0, 5.0);
        assert!((k.taps.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let var: f32 = k
            .taps
            .iter()
            .enumerate()
            .map(|(i, t)| t * (i as f32 - k.radius() as f32).powi(2))
            .sum();
        let expected = (25.0 - 16.0) / FWHM_PER_SIGMA.powi(2);
        assert!((var - expected).abs() < 0.02, "{var} vs {expected}");
        assert_eq!(Kernel::matching(5.0, 4.0).taps, vec![1.0]);
    }
}
