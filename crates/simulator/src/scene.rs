//! What is in a candidate before it is observed: the sources, cosmic rays and defects of each
//! kind of candidate ([`Kind`]), the PSFs of its two epochs, and the errors of the subtraction
//! that will be made of it ([`sample_scene`]).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::conditions::{EpochPair, SATURATION_ADU};
use crate::kind::Kind;
use crate::psf::{
    FWHM_PER_SEEING_RANGE, FWHM_PER_SIGMA, Kernel, MOFFAT_BETA_RANGE, Moffat, PSF_AXIS_RATIO_RANGE,
};
use crate::render::Image;

/// Light profile of a source before the atmosphere blurs it.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Point,
    /// Exponential disc (Sérsic n = 1): scale length, axis ratio and position angle.
    Galaxy {
        scale: f32,
        axis_ratio: f32,
        angle: f32,
    },
}

/// A source at (x, y) pixels from the stamp centre with `flux` in science ADU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    x: f32,
    y: f32,
    flux: f32,
    shape: Shape,
}

impl Source {
    /// Draw the source into `image` with `psf` (whose Gaussian σ is `sigma`), moved by `shift`
    /// and its flux scaled by `scale`.
    pub(crate) fn draw(
        &self,
        image: &mut Image,
        (psf, sigma): (&Moffat, f32),
        shift: (f32, f32),
        scale: f32,
    ) {
        let (x, y, flux) = (self.x + shift.0, self.y + shift.1, self.flux * scale);
        match self.shape {
            Shape::Point => image.add_point_source(psf, x, y, flux),
            Shape::Galaxy {
                scale: h,
                axis_ratio,
                angle,
            } => {
                let (c, s) = (angle.cos(), angle.sin());
                let central = flux / (std::f32::consts::TAU * h * h * axis_ratio);
                // Softening the radius by the PSF's σ stands in for the PSF convolution of the
                // disc.
                let soft2 = sigma * sigma;
                image.add_profile(x, y, |dx, dy| {
                    let (u, v) = (dx * c + dy * s, (-dx * s + dy * c) / axis_ratio);
                    central * (-(u * u + v * v + soft2).sqrt() / h).exp()
                });
            }
        }
    }
}

/// Pixel-level additions (ADU of their own image) that the atmosphere did not blur:
/// cosmic rays, hot pixels, bad columns.
pub(crate) type Marks = Vec<(i32, i32, f32)>;

/// Everything that differs between candidates, before any noise is drawn.
#[derive(Debug, Default)]
pub(crate) struct Scene {
    /// In both images.
    pub(crate) static_sources: Vec<Source>,
    /// Only in the science image (new or brightening flux).
    pub(crate) science_sources: Vec<Source>,
    /// Only in the template (sources that vanished, template ghosts).
    pub(crate) template_sources: Vec<Source>,
    pub(crate) science_marks: Marks,
    pub(crate) template_marks: Marks,
    /// Misregistration: the template's sources sit this far (pixels) from the science ones.
    pub(crate) template_shift: (f32, f32),
    /// Error of the matching kernel's variance, as a fraction of the sharp PSF's variance.
    pub(crate) kernel_error: f32,
    /// Relative error of the template's flux scaling.
    pub(crate) flux_scale_error: f32,
    /// The source the candidate is about, for the truth table: (x, y, flux).
    pub(crate) main_source: Option<(f32, f32, f32)>,
}

/// The PSF of each epoch of a pair, drawn per candidate from what real HiTS stars show
/// (see [`crate::psf::FWHM_PER_SEEING_RANGE`] and [`crate::psf::MOFFAT_BETA_RANGE`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PsfDraw {
    /// FWHM in pixels over the conditions table's seeing / pixel scale, per epoch.
    pub(crate) template_fwhm_scale: f32,
    pub(crate) science_fwhm_scale: f32,
    pub(crate) template_beta: f32,
    pub(crate) science_beta: f32,
    /// Axis ratio and major-axis angle of each epoch's PSF.
    pub(crate) template_shape: (f32, f32),
    pub(crate) science_shape: (f32, f32),
}

impl PsfDraw {
    pub(crate) fn sample(rng: &mut ChaCha8Rng) -> Self {
        // One image-quality scale per candidate with a small per-epoch scatter: the measured
        // ratio varies mostly between fields and nights, much less between two epochs.
        let scale = rng.random_range(FWHM_PER_SEEING_RANGE);
        let mut jitter = || scale * rng.random_range(0.97..1.03f32);
        let (template_fwhm_scale, science_fwhm_scale) = (jitter(), jitter());
        PsfDraw {
            template_fwhm_scale,
            science_fwhm_scale,
            template_beta: rng.random_range(MOFFAT_BETA_RANGE),
            science_beta: rng.random_range(MOFFAT_BETA_RANGE),
            template_shape: (
                rng.random_range(PSF_AXIS_RATIO_RANGE),
                rng.random_range(0.0..std::f32::consts::PI),
            ),
            science_shape: (
                rng.random_range(PSF_AXIS_RATIO_RANGE),
                rng.random_range(0.0..std::f32::consts::PI),
            ),
        }
    }
}

/// Observing geometry of one epoch pair, shared by scene sampling and rendering.
pub(crate) struct Setup<'a> {
    pub(crate) pair: EpochPair<'a>,
    pub(crate) template_is_sharp: bool,
    pub(crate) sharp_psf: Moffat,
    pub(crate) sharp_sigma: f32,
    pub(crate) broad_psf: Moffat,
    pub(crate) broad_sigma: f32,
    /// σ of the Gaussian that matches the sharp PSF to the broad one (exact for Gaussian
    /// PSFs; Moffat PSFs, of different β, leave the residual real subtractions show).
    pub(crate) kernel_sigma: f32,
    /// Per-pixel noise of the difference image on empty sky, science ADU.
    pub(crate) difference_sigma: f32,
}

impl<'a> Setup<'a> {
    pub(crate) fn new(pair: EpochPair<'a>, psf: PsfDraw) -> Self {
        let t = pair.template.fwhm_px() * psf.template_fwhm_scale;
        let s = pair.science.fwhm_px() * psf.science_fwhm_scale;
        let template_is_sharp = t <= s;
        let template_psf =
            Moffat::new(t, psf.template_beta).elongated(psf.template_shape.0, psf.template_shape.1);
        let science_psf =
            Moffat::new(s, psf.science_beta).elongated(psf.science_shape.0, psf.science_shape.1);
        let ((sharp, sharp_psf), (broad, broad_psf)) = if template_is_sharp {
            ((t, template_psf), (s, science_psf))
        } else {
            ((s, science_psf), (t, template_psf))
        };
        let sharp_sigma = sharp / FWHM_PER_SIGMA;
        let broad_sigma = broad / FWHM_PER_SIGMA;
        let kernel_sigma = (broad_sigma.powi(2) - sharp_sigma.powi(2)).max(0.0).sqrt();
        // The sharp image's noise is smoothed by the matching kernel: its variance shrinks by
        // the sum of the squared 2-D taps.
        let smoothing: f32 = Kernel::gaussian(kernel_sigma)
            .taps
            .iter()
            .map(|t| t * t)
            .sum::<f32>()
            .powi(2);
        let template_sigma = pair.template.sky_sigma_adu() * pair.flux_scale();
        let science_sigma = pair.science.sky_sigma_adu();
        let (sharp_var, broad_var) = if template_is_sharp {
            (template_sigma.powi(2), science_sigma.powi(2))
        } else {
            (science_sigma.powi(2), template_sigma.powi(2))
        };
        Setup {
            pair,
            template_is_sharp,
            sharp_psf,
            sharp_sigma,
            broad_psf,
            broad_sigma,
            kernel_sigma,
            difference_sigma: (sharp_var * smoothing + broad_var).sqrt(),
        }
    }

    /// Flux of a point source whose peak in the difference has this signal-to-noise.
    pub(crate) fn flux_for_snr(&self, snr: f32) -> f32 {
        snr * self.difference_sigma / self.broad_psf.peak()
    }

    /// The PSF and its Gaussian σ in the template (`true`) or science image.
    pub(crate) fn psf_of(&self, template: bool) -> (&Moffat, f32) {
        if template == self.template_is_sharp {
            (&self.sharp_psf, self.sharp_sigma)
        } else {
            (&self.broad_psf, self.broad_sigma)
        }
    }
}

/// Registration, PSF-matching and flux-scaling errors every subtraction makes, real objects'
/// included: real variable stars and hosted transients carry the same residuals as constant
/// stars. Sizes: registration errors up to σ = 0.2 px per axis (centroid registration of the
/// real constant stars leaves dipoles of that size), PSF-matching errors of 6% of the
/// kernel's variance, zero points that scatter by 2%; `SubtractionResidual` draws larger ones.
pub(crate) fn pipeline_errors(rng: &mut ChaCha8Rng, scene: &mut Scene) {
    let registration = rng.random_range(0.0..0.2f32);
    scene.template_shift = (
        registration * rng.sample::<f32, _>(StandardNormal),
        registration * rng.sample::<f32, _>(StandardNormal),
    );
    scene.kernel_error = 0.06 * rng.sample::<f32, _>(StandardNormal);
    scene.flux_scale_error = 0.02 * rng.sample::<f32, _>(StandardNormal);
}

pub(crate) fn log_uniform(rng: &mut ChaCha8Rng, low: f32, high: f32) -> f32 {
    (rng.random_range(low.ln()..high.ln())).exp()
}

pub(crate) fn within(rng: &mut ChaCha8Rng, half_width: f32) -> (f32, f32) {
    (
        rng.random_range(-half_width..=half_width),
        rng.random_range(-half_width..=half_width),
    )
}

pub(crate) fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

pub(crate) fn point(x: f32, y: f32, flux: f32) -> Source {
    Source {
        x,
        y,
        flux,
        shape: Shape::Point,
    }
}

/// An exponential galaxy whose central surface brightness is `peak_snr` times the science sky σ.
pub(crate) fn galaxy(rng: &mut ChaCha8Rng, setup: &Setup, x: f32, y: f32, peak_snr: f32) -> Source {
    let scale = rng.random_range(1.0..4.0);
    let axis_ratio = rng.random_range(0.35..1.0);
    let flux = peak_snr
        * setup.pair.science.sky_sigma_adu()
        * std::f32::consts::TAU
        * scale
        * scale
        * axis_ratio;
    Source {
        x,
        y,
        flux,
        shape: Shape::Galaxy {
            scale,
            axis_ratio,
            angle: rng.random_range(0.0..std::f32::consts::PI),
        },
    }
}

/// A new source's signal-to-noise: log-uniform, so faint detections near the cut are common.
pub(crate) fn transient_snr(rng: &mut ChaCha8Rng) -> f32 {
    log_uniform(rng, 3.5, 300.0)
}

/// A cosmic ray near (x, y): a 1-pixel hit, a compact 2–4 pixel cluster or a short track,
/// sharper than any PSF.
pub(crate) fn cosmic_ray(rng: &mut ChaCha8Rng, x: i32, y: i32, amplitude: f32) -> Marks {
    let shape = rng.random::<f32>();
    if shape < 0.35 {
        vec![(x, y, amplitude)]
    } else if shape < 0.7 {
        let mut hit = vec![(x, y, amplitude)];
        for _ in 0..rng.random_range(1..=3) {
            let (dx, dy) = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)][rng.random_range(0..5)];
            hit.push((x + dx, y + dy, amplitude * rng.random_range(0.2..1.0)));
        }
        hit
    } else {
        let length = rng.random_range(3.0..9.0f32);
        let angle = rng.random_range(0.0..std::f32::consts::PI);
        let (c, s) = (angle.cos(), angle.sin());
        let steps = (2.0 * length) as i32;
        (0..=steps)
            .map(|i| {
                let t = i as f32 * 0.5 - length / 2.0;
                (
                    (x as f32 + t * c).round() as i32,
                    (y as f32 + t * s).round() as i32,
                    0.5 * amplitude * rng.random_range(0.5..1.0),
                )
            })
            .collect()
    }
}

/// A hot pixel (or two) or a bad column segment through (x, y); negative for dead columns.
pub(crate) fn detector_defect(rng: &mut ChaCha8Rng, x: i32, y: i32, sigma: f32) -> Marks {
    if chance(rng, 0.45) {
        let amplitude = log_uniform(rng, 5.0, 200.0) * sigma;
        let mut hot = vec![(x, y, amplitude)];
        if chance(rng, 0.3) {
            hot.push((x, y + 1, amplitude * rng.random_range(0.3..1.0)));
        }
        hot
    } else {
        let sign = if chance(rng, 0.25) { -1.0 } else { 1.0 };
        let amplitude = sign * rng.random_range(2.0..25.0) * sigma;
        // Full columns run off the canvas; partial ones start at a charge trap near the centre.
        let start = if chance(rng, 0.5) {
            -60
        } else {
            y - rng.random_range(0..8)
        };
        (start..60)
            .map(|row| (x, row, amplitude * rng.random_range(0.8..1.2)))
            .collect()
    }
}

/// A narrow Gaussian blob of `peak` ADU at (x, y): noise spikes and correlated-noise peaks
/// narrower than the PSF.
pub(crate) fn noise_blob(x: f32, y: f32, width: f32, peak: f32) -> Marks {
    let reach = (3.0 * width).ceil() as i32;
    let (cx, cy) = (x.round() as i32, y.round() as i32);
    let mut marks = Vec::new();
    for j in cy - reach..=cy + reach {
        for i in cx - reach..=cx + reach {
            let r2 = (i as f32 - x).powi(2) + (j as f32 - y).powi(2);
            marks.push((i, j, peak * (-0.5 * r2 / (width * width)).exp()));
        }
    }
    marks
}

/// Unrelated stars and galaxies away from the centre, present in both images.
pub(crate) fn add_field_sources(rng: &mut ChaCha8Rng, setup: &Setup, scene: &mut Scene) {
    if !chance(rng, 0.35) {
        return;
    }
    for _ in 0..rng.random_range(1..=2) {
        let (x, y) = loop {
            let (x, y) = within(rng, 12.0);
            if x * x + y * y > 25.0 {
                break (x, y);
            }
        };
        let snr = log_uniform(rng, 3.0, 2000.0);
        let source = if chance(rng, 0.6) {
            point(x, y, setup.flux_for_snr(snr))
        } else {
            galaxy(rng, setup, x, y, snr.min(100.0))
        };
        scene.static_sources.push(source);
    }
}

pub(crate) fn sample_scene(kind: Kind, setup: &Setup, rng: &mut ChaCha8Rng) -> Scene {
    let mut scene = Scene::default();
    pipeline_errors(rng, &mut scene);
    let science_sigma = setup.pair.science.sky_sigma_adu();
    let template_sigma = setup.pair.template.sky_sigma_adu();
    let near_centre = |rng: &mut ChaCha8Rng| (rng.random_range(-2..=2), rng.random_range(-2..=2));
    match kind {
        Kind::EmptySky | Kind::HostGalaxy | Kind::VariableStar => {
            let (x, y) = within(rng, 1.0);
            let flux = setup.flux_for_snr(transient_snr(rng));
            scene.science_sources.push(point(x, y, flux));
            scene.main_source = Some((x, y, flux));
            if kind == Kind::HostGalaxy {
                let r = rng.random_range(0.0..5.0f32);
                let angle = rng.random_range(0.0..std::f32::consts::TAU);
                let (gx, gy) = (x + r * angle.cos(), y + r * angle.sin());
                let host_snr = log_uniform(rng, 2.0, 100.0);
                let host = galaxy(rng, setup, gx, gy, host_snr);
                if chance(rng, 0.4) {
                    let bulge = host.flux * rng.random_range(0.05..0.3);
                    scene.static_sources.push(point(gx, gy, bulge));
                }
                scene.static_sources.push(host);
            } else if kind == Kind::VariableStar {
                scene.static_sources.push(point(
                    x,
                    y,
                    setup.flux_for_snr(log_uniform(rng, 5.0, 2000.0)),
                ));
            }
        }
        Kind::SubtractionResidual => {
            let (x, y) = within(rng, 1.5);
            let flux = setup.flux_for_snr(log_uniform(rng, 10.0, 3000.0));
            scene.static_sources.push(point(x, y, flux));
            scene.main_source = Some((x, y, flux));
            // A flux-scale error alone leaves a PSF-shaped residual that no stamp can tell from
            // a brightening variable star, so it only ever comes on top of a geometric error.
            let first = rng.random_range(0..2);
            for effect in 0..3 {
                if effect != first && !chance(rng, 0.3) {
                    continue;
                }
                let sign = if chance(rng, 0.5) { 1.0 } else { -1.0 };
                match effect {
                    0 => {
                        let (shift, angle) = (
                            rng.random_range(0.1..1.0f32),
                            rng.random_range(0.0..std::f32::consts::TAU),
                        );
                        scene.template_shift = (shift * angle.cos(), shift * angle.sin());
                    }
                    1 => scene.kernel_error = sign * rng.random_range(0.15..0.6),
                    _ => scene.flux_scale_error = sign * rng.random_range(0.03..0.25),
                }
            }
        }
        Kind::CosmicRay => {
            let (x, y) = near_centre(rng);
            let in_science = chance(rng, 0.7);
            let sigma = if in_science {
                science_sigma
            } else {
                template_sigma
            };
            let amplitude = log_uniform(rng, 5.0, 150.0) * sigma;
            let hit = cosmic_ray(rng, x, y, amplitude);
            if in_science {
                scene.science_marks = hit
            } else {
                scene.template_marks = hit
            }
            // Half of them land near a faint static source, as on real sky.
            if chance(rng, 0.5) {
                let (sx, sy) = within(rng, 4.0);
                let snr = log_uniform(rng, 3.0, 30.0);
                let source = if chance(rng, 0.6) {
                    point(sx, sy, setup.flux_for_snr(snr))
                } else {
                    galaxy(rng, setup, sx, sy, snr / 3.0)
                };
                scene.static_sources.push(source);
            }
        }
        Kind::DetectorDefect => {
            let (x, y) = near_centre(rng);
            if chance(rng, 0.7) {
                scene.science_marks = detector_defect(rng, x, y, science_sigma);
            } else {
                scene.template_marks = detector_defect(rng, x, y, template_sigma);
            }
        }
        Kind::SaturatedStar => {
            let (x, y) = within(rng, 3.0);
            let flux = SATURATION_ADU * log_uniform(rng, 1.0, 30.0) / setup.sharp_psf.peak();
            scene.static_sources.push(point(x, y, flux));
            scene.main_source = Some((x, y, flux));
            scene.template_shift = within(rng, 0.3);
            scene.flux_scale_error = rng.random_range(-0.05..0.05);
        }
        Kind::Noise => {
            let (x, y) = within(rng, 2.0);
            let width = rng.random_range(0.5..1.2f32);
            let peak = rng.random_range(5.0..8.0) * setup.difference_sigma;
            if chance(rng, 0.65) {
                scene.science_marks = noise_blob(x, y, width, peak);
            } else {
                scene.template_marks = noise_blob(x, y, width, peak / setup.pair.flux_scale());
            }
        }
        Kind::TemplateDefect => {
            let (x, y) = near_centre(rng);
            let choice = rng.random::<f32>();
            if choice < 0.4 {
                let flux = setup.flux_for_snr(log_uniform(rng, 5.0, 100.0));
                scene.template_sources.push(point(x as f32, y as f32, flux));
            } else if choice < 0.7 {
                let amplitude = log_uniform(rng, 5.0, 150.0) * template_sigma;
                scene.template_marks = cosmic_ray(rng, x, y, amplitude);
            } else {
                scene.template_marks = detector_defect(rng, x, y, template_sigma);
            }
        }
        Kind::RealConstantStar
        | Kind::RealRrLyrae
        | Kind::RealEclipsingBinary
        | Kind::RealSupernova
        | Kind::InjectedPointSource => unreachable!("simulate() refuses real-pixel kinds"),
    }
    add_field_sources(rng, setup, &mut scene);
    scene
}
