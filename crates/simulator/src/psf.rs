//! Point-spread functions and the Gaussian PSF-matching kernel.

/// Moffat index β of real HiTS 2015 stars: fits to the calibration objects' star epochs give
/// 3.5–6 (median 4.5; `simulate check` measures it); the simulator draws β from this range
/// for each candidate, so a model cannot learn one PSF shape.
pub const MOFFAT_BETA_RANGE: std::ops::Range<f32> = 3.0..6.0;
/// PSF FWHM of real HiTS 2015 stars over the conditions table's seeing (arcsec / pixel scale):
/// 0.74–0.88 (10th–90th percentile, median 0.82) in Moffat fits to the calibration objects'
/// star epochs. The simulator draws the ratio from this range for each candidate.
pub const FWHM_PER_SEEING_RANGE: std::ops::Range<f32> = 0.74..0.90;
/// The medians of those fits, for real images whose own stars cannot measure the PSF.
pub const TYPICAL_FWHM_PER_SEEING: f32 = 0.82;
pub const TYPICAL_MOFFAT_BETA: f32 = 4.5;
/// FWHM = 2.3548 σ for a Gaussian.
pub const FWHM_PER_SIGMA: f32 = 2.354_82;

/// Axis ratio of real HiTS 2015 PSFs: windowed second moments of the constant stars give
/// 0.88–0.99 (5th–95th percentile, median 0.96); each simulated epoch draws its own, with
/// its own orientation, so no Gaussian kernel can match two epochs exactly.
pub const PSF_AXIS_RATIO_RANGE: std::ops::Range<f32> = 0.88..1.0;

/// A Moffat profile normalised to unit total flux, circular or elliptical.
#[derive(Debug, Clone, Copy)]
pub struct Moffat {
    alpha2: f32,
    beta: f32,
    peak: f32,
    /// Axis ratio (≤ 1) and the cosine and sine of the major axis' angle.
    axis_ratio: f32,
    cos: f32,
    sin: f32,
}

impl Moffat {
    /// A profile of FWHM `fwhm_px` pixels and index `beta` (> 1; larger is closer to a Gaussian).
    pub fn new(fwhm_px: f32, beta: f32) -> Self {
        let alpha = fwhm_px / (2.0 * (2f32.powf(1.0 / beta) - 1.0).sqrt());
        let alpha2 = alpha * alpha;
        Moffat {
            alpha2,
            beta,
            peak: (beta - 1.0) / (std::f32::consts::PI * alpha2),
            axis_ratio: 1.0,
            cos: 1.0,
            sin: 0.0,
        }
    }

    /// The same profile stretched to `axis_ratio` (≤ 1) with its major axis at `angle`
    /// radians, keeping its area (the FWHM is the geometric mean of the axes') and flux.
    pub fn elongated(self, axis_ratio: f32, angle: f32) -> Self {
        Moffat {
            axis_ratio,
            cos: angle.cos(),
            sin: angle.sin(),
            ..self
        }
    }

    /// Fraction of the flux per pixel at offset (dx, dy) pixels from the centre.
    #[inline]
    pub fn at_offset(&self, dx: f32, dy: f32) -> f32 {
        if self.axis_ratio == 1.0 {
            return self.at(dx * dx + dy * dy);
        }
        let u = dx * self.cos + dy * self.sin;
        let v = -dx * self.sin + dy * self.cos;
        self.at(u * u * self.axis_ratio + v * v / self.axis_ratio)
    }

    /// Fraction of the flux per pixel at squared distance `r2` (pixels²) from the centre.
    #[inline]
    pub fn at(&self, r2: f32) -> f32 {
        let u = 1.0 + r2 / self.alpha2;
        self.peak * (-self.beta * u.ln()).exp()
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
        for beta in [2.5, 4.5] {
            let psf = Moffat::new(5.0, beta);
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
    }

    #[test]
    fn an_elongated_moffat_keeps_its_flux_and_stretches_along_its_angle() {
        let psf = Moffat::new(4.0, 4.5).elongated(0.8, std::f32::consts::FRAC_PI_2);
        let mut total = 0.0;
        for y in -100..=100 {
            for x in -100..=100 {
                total += psf.at_offset(x as f32, y as f32) as f64;
            }
        }
        assert!((total - 1.0).abs() < 0.01, "{total}");
        // The major axis is vertical: brighter 3 px above than 3 px to the side.
        assert!(psf.at_offset(0.0, 3.0) > 1.2 * psf.at_offset(3.0, 0.0));
        assert_eq!(psf.at_offset(0.0, 0.0), psf.peak());
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
