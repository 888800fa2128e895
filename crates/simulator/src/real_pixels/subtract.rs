//! Real exposures measured from their own pixels, templates combined from early epochs, and
//! their difference as the HiTS pipeline makes it: registration, PSF matching, flux scaling,
//! and the per-pixel noise propagated into the SNR-difference.

use hits_core::STAMP_SIDE;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::sequences::{ObjectClass, RealEpoch};
use super::stamp_ops::{
    blur, border_sky, central_peak, centroid, fit_moffat, shift, shift_variance,
};
use crate::Stamps;
use crate::check::{is_usable, stamp_stats};
use crate::conditions::{Epoch, GAIN_E_PER_ADU, SATURATION_ADU};
use crate::psf::{FWHM_PER_SIGMA, Kernel, Moffat, TYPICAL_FWHM_PER_SEEING, TYPICAL_MOFFAT_BETA};
use crate::render::Image;

/// A star's own stamp measures its PSF when it peaks this many σ above the sky.
const PSF_FIT_MIN_SNR: f32 = 30.0;
/// An object's position is measured (for registration) when it peaks this many σ above the sky.
const CENTROID_MIN_SNR: f32 = 15.0;

/// One real exposure (or a combined template) on its own zero point.
#[derive(Debug, Clone)]
pub struct Exposure {
    /// ADU, sky included: what the template and science channels show.
    pub raw: Vec<f32>,
    /// Sky-subtracted ADU.
    pub flux: Vec<f32>,
    /// Per-pixel variance of `flux`: the measured sky noise plus the sources' Poisson noise.
    pub variance: Vec<f32>,
    pub sky: f32,
    /// Per-pixel noise of empty sky, ADU.
    pub noise: f32,
    /// PSF: Moffat FWHM (pixels) and β.
    pub fwhm: f32,
    pub beta: f32,
    /// The object's position (pixels from the centre) where it is bright enough to measure.
    pub centroid: Option<(f32, f32)>,
    /// The star's total flux from its PSF fit (ADU), where the PSF was fitted.
    pub psf_flux: Option<f32>,
    /// ADU of a magnitude-25 source: exposure time and zero point of the conditions table,
    /// times the [`super::photometry::FluxCorrection`] for the exposure's PSF width.
    pub flux_unit: f32,
    /// The conditions table's row for this exposure (the first one for a template).
    pub conditions: Epoch,
}

impl Exposure {
    /// Measure a real epoch: sky and noise from the outer pixels, the object's centroid and,
    /// for a bright unsaturated star, its PSF; other PSFs take the typical FWHM-to-seeing
    /// ratio and β of real stars. None if the stamp has masked pixels or too little sky.
    pub fn measure(epoch: &RealEpoch, class: ObjectClass, conditions: &Epoch) -> Option<Self> {
        if !epoch.pixels.iter().all(|&v| is_usable(v)) {
            return None;
        }
        let stats = stamp_stats(&epoch.pixels)?;
        let sky = border_sky(&epoch.pixels);
        let flux: Vec<f32> = epoch.pixels.iter().map(|v| v - sky).collect();
        let variance = flux
            .iter()
            .map(|f| stats.noise.powi(2) + f.max(0.0) / GAIN_E_PER_ADU)
            .collect();
        let (_, peak) = central_peak(&flux);
        let snr = peak / stats.noise;
        let centroid = (snr >= CENTROID_MIN_SNR).then(|| centroid(&flux));
        let saturated = epoch.pixels.iter().any(|&v| v >= 0.9 * SATURATION_ADU);
        let fit = match centroid {
            Some(centre) if class.is_star() && snr >= PSF_FIT_MIN_SNR && !saturated => {
                Some(fit_moffat(&flux, centre))
            }
            _ => None,
        };
        let (fwhm, beta) = fit.map_or(
            (
                conditions.fwhm_px() * TYPICAL_FWHM_PER_SEEING,
                TYPICAL_MOFFAT_BETA,
            ),
            |f| (f.fwhm, f.beta),
        );
        Some(Exposure {
            raw: epoch.pixels.clone(),
            flux,
            variance,
            sky,
            noise: stats.noise,
            fwhm,
            beta,
            centroid,
            psf_flux: fit.map(|f| f.flux),
            flux_unit: conditions.flux_unit(),
            conditions: conditions.clone(),
        })
    }

    /// The template made of `epochs`: each registered to the first by its centroid, scaled to
    /// the first's zero point, and averaged; its PSF has the mean second moment.
    pub fn combine(epochs: &[&Exposure]) -> Exposure {
        let first = epochs[0];
        let k = epochs.len() as f32;
        let mut flux = vec![0.0f32; first.flux.len()];
        let mut variance = vec![0.0f32; first.flux.len()];
        for e in epochs {
            let scale = first.flux_unit / e.flux_unit;
            let offset = registration(first.centroid, e.centroid);
            let scaled: Vec<f32> = e.flux.iter().map(|f| f * scale).collect();
            let scaled_var: Vec<f32> = e.variance.iter().map(|v| v * scale * scale).collect();
            for (sum, v) in flux.iter_mut().zip(shift(&scaled, offset)) {
                *sum += v / k;
            }
            for (sum, v) in variance.iter_mut().zip(shift_variance(&scaled_var, offset)) {
                *sum += v / (k * k);
            }
        }
        let fwhm = (epochs.iter().map(|e| e.fwhm.powi(2)).sum::<f32>() / k).sqrt();
        Exposure {
            raw: flux.iter().map(|f| f + first.sky).collect(),
            flux,
            variance,
            sky: first.sky,
            noise: (epochs
                .iter()
                .map(|e| (e.noise * first.flux_unit / e.flux_unit).powi(2))
                .sum::<f32>()
                .sqrt())
                / k,
            fwhm,
            beta: epochs.iter().map(|e| e.beta).sum::<f32>() / k,
            centroid: first.centroid,
            psf_flux: None,
            flux_unit: first.flux_unit,
            conditions: first.conditions.clone(),
        }
    }

    /// This exposure with a point source of `flux` ADU added at (x, y) pixels from the
    /// centre, drawn with the exposure's own PSF, with its Poisson noise, and the sky measured
    /// again with it in the image.
    pub fn with_point_source(&self, (x, y): (f32, f32), flux: f32, rng: &mut ChaCha8Rng) -> Self {
        let mut model = Image::new(STAMP_SIDE);
        model.add_point_source(&Moffat::new(self.fwhm, self.beta), x, y, flux);
        let mut out = self.clone();
        for (i, &m) in model.pixels.iter().enumerate() {
            let noise = (m.max(0.0) / GAIN_E_PER_ADU).sqrt() * rng.sample::<f32, _>(StandardNormal);
            out.raw[i] += m + noise;
            out.flux[i] += m + noise;
            out.variance[i] += m.max(0.0) / GAIN_E_PER_ADU;
        }
        // Measured with the source in the image, as under a real brightening: a bright
        // injection's wings raise the border the sky is measured on. Measured before it, the
        // injected reals alone would carry no such pedestal, a cue no real transient gives.
        let sky = border_sky(&out.raw);
        let raised = sky - out.sky;
        out.flux.iter_mut().for_each(|f| *f -= raised);
        out.sky = sky;
        out
    }
}

/// The shift that moves an image whose object sits at `from` onto `to`; none unless both
/// positions were measured.
fn registration(to: Option<(f32, f32)>, from: Option<(f32, f32)>) -> (f32, f32) {
    match (to, from) {
        (Some(to), Some(from)) => (to.0 - from.0, to.1 - from.1),
        _ => (0.0, 0.0),
    }
}

/// The four stamps of a template/science pair, and aperture photometry of the change.
#[derive(Debug, Clone)]
pub struct Subtraction {
    pub stamps: Stamps,
    /// Flux within one FWHM of the centre: in the matched template (science zero point) ...
    pub template_flux: f32,
    /// ... and in the difference.
    pub difference_flux: f32,
    /// Per-pixel noise of the difference, ADU.
    pub sigma: Vec<f32>,
}

impl Subtraction {
    /// Flux of a point source of `psf` at (x, y) whose peak in the difference has this SNR,
    /// against the noise there (a source on a bright star sees the star's Poisson noise).
    pub fn flux_for_snr(&self, psf: &Moffat, (x, y): (f32, f32), snr: f32) -> f32 {
        let image = Image {
            side: STAMP_SIDE,
            pixels: self.sigma.clone(),
        };
        let sigma = image
            .index(x.round() as i32, y.round() as i32)
            .map_or(f32::NAN, |i| self.sigma[i]);
        snr * sigma / psf.peak()
    }
}

/// Subtract `template` from `science` as HiTS did: the template registered onto the
/// science image and scaled to its zero point, the sharper of the two convolved with the
/// Gaussian that matches its PSF to the other's, and the difference divided by the
/// propagated noise of both.
pub fn subtract(template: &Exposure, science: &Exposure) -> Subtraction {
    let scale = science.flux_unit / template.flux_unit;
    let offset = registration(science.centroid, template.centroid);
    let mut t_flux = shift(
        &template.flux.iter().map(|f| f * scale).collect::<Vec<_>>(),
        offset,
    );
    let mut t_var = shift_variance(
        &template
            .variance
            .iter()
            .map(|v| v * scale * scale)
            .collect::<Vec<_>>(),
        offset,
    );
    let (mut s_flux, mut s_var) = (science.flux.clone(), science.variance.clone());
    let (t_sigma, s_sigma) = (
        template.fwhm / FWHM_PER_SIGMA,
        science.fwhm / FWHM_PER_SIGMA,
    );
    let kernel = Kernel::gaussian((t_sigma.powi(2) - s_sigma.powi(2)).abs().sqrt());
    if t_sigma <= s_sigma {
        t_flux = blur(&t_flux, &kernel);
        t_var = blur(&t_var, &kernel.squared());
    } else {
        s_flux = blur(&s_flux, &kernel);
        s_var = blur(&s_var, &kernel.squared());
    }
    let difference: Vec<f32> = s_flux.iter().zip(&t_flux).map(|(s, t)| s - t).collect();
    let sigma: Vec<f32> = s_var
        .iter()
        .zip(&t_var)
        .map(|(a, b)| (a + b).sqrt())
        .collect();
    let snr_difference = difference.iter().zip(&sigma).map(|(d, s)| d / s).collect();
    let radius2 = science.fwhm.max(2.5).powi(2);
    let half = (STAMP_SIDE / 2) as f32;
    let aperture = |values: &[f32]| -> f32 {
        values
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let (x, y) = (
                    (i % STAMP_SIDE) as f32 - half,
                    (i / STAMP_SIDE) as f32 - half,
                );
                x * x + y * y <= radius2
            })
            .map(|(_, v)| v)
            .sum()
    };
    let image = |pixels: Vec<f32>| Image {
        side: STAMP_SIDE,
        pixels,
    };
    Subtraction {
        template_flux: aperture(&t_flux),
        difference_flux: aperture(&difference),
        sigma,
        stamps: Stamps {
            template: image(shift(&template.raw, offset)),
            science: image(science.raw.clone()),
            difference: image(difference),
            snr_difference: image(snr_difference),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::observe;
    use rand::SeedableRng;

    fn conditions(seeing: f32, zero_point: f32) -> Epoch {
        crate::conditions::test_epoch(seeing, 120.0, zero_point)
    }

    /// A star of `flux` (magnitude-25 units) observed with noise at (x, y).
    fn exposure(
        fwhm: f32,
        zero_point: f32,
        flux: f32,
        (x, y): (f32, f32),
        rng: &mut ChaCha8Rng,
    ) -> Exposure {
        let conditions = conditions(fwhm * 0.27 / TYPICAL_FWHM_PER_SEEING, zero_point);
        let unit = conditions.flux_unit();
        let mut model = Image::new(STAMP_SIDE);
        model.add_point_source(&Moffat::new(fwhm, 4.5), x, y, flux * unit);
        let (seen, _) = observe(&model, 120.0, rng);
        let epoch = RealEpoch {
            epoch: 0,
            mjd: 57070.0,
            pixels: seen.pixels,
        };
        Exposure::measure(&epoch, ObjectClass::Constant, &conditions).unwrap()
    }

    #[test]
    fn a_constant_star_subtracts_to_noise_and_a_brightening_does_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Peaks of about 1,000 ADU, as the real constant stars'.
        let first = exposure(3.6, 25.1, 250.0, (0.2, -0.3), &mut rng);
        let second = exposure(3.9, 24.9, 250.0, (-0.1, 0.2), &mut rng);
        let template = Exposure::combine(&[&first, &second]);
        assert!((template.fwhm - (3.6f32.powi(2) / 2.0 + 3.9f32.powi(2) / 2.0).sqrt()).abs() < 0.1);
        let same = exposure(4.3, 25.0, 250.0, (0.4, 0.1), &mut rng);
        let constant = subtract(&template, &same);
        let snr = constant.stamps.centre_snr().abs();
        assert!(snr < 6.0, "constant star left |SNR| {snr}");
        assert!(
            constant.difference_flux.abs() < 0.05 * constant.template_flux,
            "{} of {}",
            constant.difference_flux,
            constant.template_flux
        );
        let brighter = exposure(4.3, 25.0, 375.0, (0.4, 0.1), &mut rng);
        let variable = subtract(&template, &brighter);
        let ratio = variable.difference_flux / variable.template_flux;
        assert!((0.4..0.6).contains(&ratio), "brightening of {ratio}");
        assert!(variable.stamps.centre_snr() > 20.0);
    }

    #[test]
    fn an_injected_source_appears_in_the_difference_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let template = exposure(3.6, 25.1, 2000.0, (0.0, 0.0), &mut rng);
        let science = exposure(4.0, 25.0, 2000.0, (0.1, 0.1), &mut rng);
        let psf = Moffat::new(science.fwhm, science.beta);
        let flux = subtract(&template, &science).flux_for_snr(&psf, (0.5, -0.5), 40.0);
        let injected = science.with_point_source((0.5, -0.5), flux, &mut rng);
        let result = subtract(&template, &injected);
        let snr = result.stamps.centre_snr();
        assert!(
            (30.0..50.0).contains(&snr),
            "injected at SNR 40, found {snr}"
        );
        assert!(
            result.difference_flux > 0.6 * flux,
            "{} of {flux}",
            result.difference_flux
        );
    }

    /// The sky is measured after the injection, as a pipeline measures it under a real
    /// brightening: a bright source's wings raise the stamp's border, and the raise comes off
    /// every pixel's flux.
    #[test]
    fn a_bright_injection_is_measured_with_the_sky_it_raises() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let science = exposure(5.0, 25.0, 2000.0, (0.0, 0.0), &mut rng);
        let injected = science.with_point_source((0.0, 0.0), 2e6, &mut rng);
        let raised = injected.sky - science.sky;
        assert!(raised > 1.0, "the sky rose by {raised} ADU only");
        let corner = 0;
        let added = injected.raw[corner] - science.raw[corner];
        assert!(
            (injected.flux[corner] - (science.flux[corner] + added - raised)).abs() < 1e-3,
            "the flux is not measured from the new sky"
        );
    }

    #[test]
    fn masked_pixels_are_refused() {
        let mut pixels = vec![120.0; STAMP_SIDE * STAMP_SIDE];
        pixels[3] = -9999.0;
        let epoch = RealEpoch {
            epoch: 0,
            mjd: 0.0,
            pixels,
        };
        assert!(Exposure::measure(&epoch, ObjectClass::Constant, &conditions(1.3, 25.0)).is_none());
    }
}
