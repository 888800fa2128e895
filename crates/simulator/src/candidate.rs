//! The scenes that produce each kind of candidate ([`Kind`]), and their rendering into the
//! four stamps (template, science, difference, SNR-difference).

use hits_core::STAMP_SIDE;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::conditions::{EpochPair, SATURATION_ADU};
use crate::error::SimError;
use crate::kind::Kind;
use crate::psf::{
    FWHM_PER_SEEING_RANGE, FWHM_PER_SIGMA, Kernel, MOFFAT_BETA_RANGE, Moffat, PSF_AXIS_RATIO_RANGE,
};
use crate::render::{Image, observe};

/// The detection cut every candidate passes: |SNR| of at least this ...
pub const DETECTION_SNR: f32 = 5.0;
/// ... within this many pixels of the stamp centre.
pub const DETECTION_RADIUS: i32 = 2;
/// Resampling attempts before a kind is declared unable to pass the detection cut.
const MAX_ATTEMPTS: u32 = 1000;

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
struct Source {
    x: f32,
    y: f32,
    flux: f32,
    shape: Shape,
}

/// Pixel-level additions (ADU of their own image) that the atmosphere did not blur:
/// cosmic rays, hot pixels, bad columns.
type Marks = Vec<(i32, i32, f32)>;

/// Everything that differs between candidates, before any noise is drawn.
#[derive(Debug, Default)]
struct Scene {
    /// In both images.
    static_sources: Vec<Source>,
    /// Only in the science image (new or brightening flux).
    science_sources: Vec<Source>,
    /// Only in the template (sources that vanished, template ghosts).
    template_sources: Vec<Source>,
    science_marks: Marks,
    template_marks: Marks,
    /// Misregistration: the template's sources sit this far (pixels) from the science ones.
    template_shift: (f32, f32),
    /// Error of the matching kernel's variance, as a fraction of the sharp PSF's variance.
    kernel_error: f32,
    /// Relative error of the template's flux scaling.
    flux_scale_error: f32,
    /// The source the candidate is about, for the truth table: (x, y, flux).
    main_source: Option<(f32, f32, f32)>,
}

/// The PSF of each epoch of a pair, drawn per candidate from what real HiTS stars show
/// (see [`crate::psf::FWHM_PER_SEEING_RANGE`] and [`crate::psf::MOFFAT_BETA_RANGE`]).
#[derive(Debug, Clone, Copy)]
struct PsfDraw {
    /// FWHM in pixels over the conditions table's seeing / pixel scale, per epoch.
    template_fwhm_scale: f32,
    science_fwhm_scale: f32,
    template_beta: f32,
    science_beta: f32,
    /// Axis ratio and major-axis angle of each epoch's PSF.
    template_shape: (f32, f32),
    science_shape: (f32, f32),
}

impl PsfDraw {
    fn sample(rng: &mut ChaCha8Rng) -> Self {
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
struct Setup<'a> {
    pair: EpochPair<'a>,
    template_is_sharp: bool,
    sharp_psf: Moffat,
    sharp_sigma: f32,
    broad_psf: Moffat,
    broad_sigma: f32,
    /// σ of the Gaussian that matches the sharp PSF to the broad one (exact for Gaussian
    /// PSFs; Moffat PSFs, of different β, leave the residual real subtractions show).
    kernel_sigma: f32,
    /// Per-pixel noise of the difference image on empty sky, science ADU.
    difference_sigma: f32,
}

impl<'a> Setup<'a> {
    fn new(pair: EpochPair<'a>, psf: PsfDraw) -> Self {
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
    fn flux_for_snr(&self, snr: f32) -> f32 {
        snr * self.difference_sigma / self.broad_psf.peak()
    }

    /// The PSF and its Gaussian σ in the template (`true`) or science image.
    fn psf_of(&self, template: bool) -> (&Moffat, f32) {
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
fn pipeline_errors(rng: &mut ChaCha8Rng, scene: &mut Scene) {
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

fn within(rng: &mut ChaCha8Rng, half_width: f32) -> (f32, f32) {
    (
        rng.random_range(-half_width..=half_width),
        rng.random_range(-half_width..=half_width),
    )
}

fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

fn point(x: f32, y: f32, flux: f32) -> Source {
    Source {
        x,
        y,
        flux,
        shape: Shape::Point,
    }
}

/// An exponential galaxy whose central surface brightness is `peak_snr` times the science sky σ.
fn galaxy(rng: &mut ChaCha8Rng, setup: &Setup, x: f32, y: f32, peak_snr: f32) -> Source {
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
fn cosmic_ray(rng: &mut ChaCha8Rng, x: i32, y: i32, amplitude: f32) -> Marks {
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
fn detector_defect(rng: &mut ChaCha8Rng, x: i32, y: i32, sigma: f32) -> Marks {
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
fn noise_blob(x: f32, y: f32, width: f32, peak: f32) -> Marks {
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
fn add_field_sources(rng: &mut ChaCha8Rng, setup: &Setup, scene: &mut Scene) {
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

fn sample_scene(kind: Kind, setup: &Setup, rng: &mut ChaCha8Rng) -> Scene {
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

/// The value of largest magnitude within [`DETECTION_RADIUS`] of the centre, with its sign.
pub fn centre_value(image: &Image) -> f32 {
    let r = DETECTION_RADIUS;
    (-r..=r)
        .flat_map(|y| (-r..=r).map(move |x| (x, y)))
        .filter_map(|(x, y)| image.index(x, y).map(|i| image.pixels[i]))
        .fold(
            0.0f32,
            |best, v| if v.abs() > best.abs() { v } else { best },
        )
}

/// The four 21x21 stamps of a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamps {
    pub template: Image,
    pub science: Image,
    pub difference: Image,
    pub snr_difference: Image,
}

impl Stamps {
    /// In the pipeline's channel order.
    pub fn channels(&self) -> [&Image; 4] {
        [
            &self.template,
            &self.science,
            &self.difference,
            &self.snr_difference,
        ]
    }

    /// The SNR of largest magnitude within [`DETECTION_RADIUS`] of the centre, with its sign.
    pub fn centre_snr(&self) -> f32 {
        centre_value(&self.snr_difference)
    }

    pub fn passes_detection(&self) -> bool {
        self.centre_snr().abs() >= DETECTION_SNR
    }
}

/// Draw `source` with `psf` (whose Gaussian σ is `sigma`), moved by `shift` and scaled by `scale`.
fn draw_source(
    image: &mut Image,
    (psf, sigma): (&Moffat, f32),
    source: &Source,
    shift: (f32, f32),
    scale: f32,
) {
    let (x, y, flux) = (source.x + shift.0, source.y + shift.1, source.flux * scale);
    match source.shape {
        Shape::Point => image.add_point_source(psf, x, y, flux),
        Shape::Galaxy {
            scale: h,
            axis_ratio,
            angle,
        } => {
            let (c, s) = (angle.cos(), angle.sin());
            let central = flux / (std::f32::consts::TAU * h * h * axis_ratio);
            // Softening the radius by the PSF's σ stands in for the PSF convolution of the disc.
            let soft2 = sigma * sigma;
            image.add_profile(x, y, |dx, dy| {
                let (u, v) = (dx * c + dy * s, (-dx * s + dy * c) / axis_ratio);
                central * (-(u * u + v * v + soft2).sqrt() / h).exp()
            });
        }
    }
}

/// Observe a scene in both epochs and subtract them as HiTS did: the sharper image is
/// convolved to the broader PSF, the template scaled to the science zero point, and the
/// difference divided by its propagated noise.
fn render(scene: &Scene, setup: &Setup, rng: &mut ChaCha8Rng) -> Stamps {
    let match_var = setup.kernel_sigma.powi(2) + scene.kernel_error * setup.sharp_sigma.powi(2);
    let match_kernel = Kernel::gaussian(match_var.max(0.0).sqrt());
    let to_template = 1.0 / setup.pair.flux_scale();

    // Each epoch is drawn with its own PSF; the sharp one on a canvas wide enough for the
    // matching kernel. A Gaussian kernel cannot turn one Moffat into another exactly, so
    // bright static sources leave the faint rings real subtractions leave.
    let mut science = Image::new(if setup.template_is_sharp {
        STAMP_SIDE
    } else {
        STAMP_SIDE + 2 * match_kernel.radius()
    });
    let mut template = Image::new(if setup.template_is_sharp {
        STAMP_SIDE + 2 * match_kernel.radius()
    } else {
        STAMP_SIDE
    });
    for source in scene.static_sources.iter().chain(&scene.science_sources) {
        draw_source(&mut science, setup.psf_of(false), source, (0.0, 0.0), 1.0);
    }
    for source in scene.static_sources.iter().chain(&scene.template_sources) {
        draw_source(
            &mut template,
            setup.psf_of(true),
            source,
            scene.template_shift,
            to_template,
        );
    }
    let (mut sharp, mut broad, sharp_marks, broad_marks) = if setup.template_is_sharp {
        (
            template,
            science,
            &scene.template_marks,
            &scene.science_marks,
        )
    } else {
        (
            science,
            template,
            &scene.science_marks,
            &scene.template_marks,
        )
    };
    for &(x, y, v) in sharp_marks {
        sharp.add_at(x, y, v);
    }
    for &(x, y, v) in broad_marks {
        broad.add_at(x, y, v);
    }
    let (sharp_epoch, broad_epoch) = if setup.template_is_sharp {
        (setup.pair.template, setup.pair.science)
    } else {
        (setup.pair.science, setup.pair.template)
    };
    let (sharp_seen, sharp_var) = observe(&sharp, sharp_epoch.sky_adu, rng);
    let (broad_seen, broad_var) = observe(&broad, broad_epoch.sky_adu, rng);

    // Sky-subtracted, on the science zero point (with any deliberate flux-scale error).
    let template_scale = setup.pair.flux_scale() * (1.0 + scene.flux_scale_error);
    let (sharp_scale, broad_scale) = if setup.template_is_sharp {
        (template_scale, 1.0)
    } else {
        (1.0, template_scale)
    };
    let calibrate = |seen: &Image, var: &Image, sky: f32, scale: f32| {
        let flux = Image {
            side: seen.side,
            pixels: seen.pixels.iter().map(|p| (p - sky) * scale).collect(),
        };
        let var = Image {
            side: var.side,
            pixels: var.pixels.iter().map(|v| v * scale * scale).collect(),
        };
        (flux, var)
    };
    let (sharp_flux, sharp_flux_var) =
        calibrate(&sharp_seen, &sharp_var, sharp_epoch.sky_adu, sharp_scale);
    let (broad_flux, broad_flux_var) =
        calibrate(&broad_seen, &broad_var, broad_epoch.sky_adu, broad_scale);
    let matched = sharp_flux.convolve(&match_kernel, STAMP_SIDE);
    let matched_var = sharp_flux_var.convolve(&match_kernel.squared(), STAMP_SIDE);
    let (science_part, template_part) = if setup.template_is_sharp {
        (&broad_flux, &matched)
    } else {
        (&matched, &broad_flux)
    };
    let difference = Image {
        side: STAMP_SIDE,
        pixels: science_part
            .pixels
            .iter()
            .zip(&template_part.pixels)
            .map(|(s, t)| s - t)
            .collect(),
    };
    let snr_difference = Image {
        side: STAMP_SIDE,
        pixels: difference
            .pixels
            .iter()
            .zip(matched_var.pixels.iter().zip(&broad_flux_var.pixels))
            .map(|(d, (a, b))| d / (a + b).sqrt())
            .collect(),
    };
    let (template, science) = if setup.template_is_sharp {
        (sharp_seen.crop(STAMP_SIDE), broad_seen)
    } else {
        (broad_seen, sharp_seen.crop(STAMP_SIDE))
    };
    Stamps {
        template,
        science,
        difference,
        snr_difference,
    }
}

/// A constant star of `flux` (ADU of a magnitude-25 source) near the centre, observed in a
/// random epoch pair with the simulator's PSFs and pipeline errors: the simulated twin of a
/// real constant star, for the realism check. Not cut on detection.
pub fn constant_star(
    conditions: &crate::conditions::Conditions,
    flux: f32,
    rng: &mut ChaCha8Rng,
) -> Stamps {
    let pair = conditions.sample_pair(rng);
    let setup = Setup::new(pair, PsfDraw::sample(rng));
    let mut scene = Scene::default();
    pipeline_errors(rng, &mut scene);
    let (x, y) = within(rng, 0.5);
    scene
        .static_sources
        .push(point(x, y, flux * pair.science.flux_unit()));
    render(&scene, &setup, rng)
}

/// Per-candidate facts for analysing errors by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub kind: Kind,
    /// Signed peak SNR within the detection radius.
    pub centre_snr: f32,
    /// Magnitude (science zero point) and position of the candidate's source, if it has one.
    pub source_mag: Option<f32>,
    pub source_xy: Option<(f32, f32)>,
    pub field: String,
    pub template_epoch: u32,
    pub science_epoch: u32,
    pub template_seeing: f32,
    pub science_seeing: f32,
    pub template_sky: f32,
    pub science_sky: f32,
    /// Scenes drawn until one passed the detection cut.
    pub attempts: u32,
    /// The real HiTS object whose pixels the candidate is made of (real-pixel candidates only).
    pub object: Option<String>,
}

/// Draw epoch pairs and scenes of `kind` until one passes the detection cut.
pub fn simulate(
    kind: Kind,
    conditions: &crate::conditions::Conditions,
    rng: &mut ChaCha8Rng,
) -> Result<(Stamps, Truth), SimError> {
    if !kind.is_simulated() {
        return Err(SimError::Config(format!(
            "{} candidates are built from real pixels, not simulated",
            kind.name()
        )));
    }
    for attempt in 1..=MAX_ATTEMPTS {
        let pair = conditions.sample_pair(rng);
        let setup = Setup::new(pair, PsfDraw::sample(rng));
        let scene = sample_scene(kind, &setup, rng);
        let stamps = render(&scene, &setup, rng);
        if stamps.passes_detection() {
            let pair = setup.pair;
            let truth = Truth {
                kind,
                centre_snr: stamps.centre_snr(),
                source_mag: scene
                    .main_source
                    .map(|(_, _, flux)| pair.science.magnitude(flux)),
                source_xy: scene.main_source.map(|(x, y, _)| (x, y)),
                field: pair.science.field.clone(),
                template_epoch: pair.template.epoch,
                science_epoch: pair.science.epoch,
                template_seeing: pair.template.seeing_arcsec,
                science_seeing: pair.science.seeing_arcsec,
                template_sky: pair.template.sky_adu,
                science_sky: pair.science.sky_adu,
                attempts: attempt,
                object: None,
            };
            return Ok((stamps, truth));
        }
    }
    Err(SimError::Config(format!(
        "{} never passed the detection cut in {MAX_ATTEMPTS} attempts",
        kind.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Conditions;
    use rand::SeedableRng;

    /// Both epochs at the table's seeing with a near-Gaussian profile (Moffat β → ∞), which a
    /// Gaussian kernel matches exactly.
    const GAUSSIAN_LIKE: PsfDraw = PsfDraw {
        template_fwhm_scale: 1.0,
        science_fwhm_scale: 1.0,
        template_beta: 400.0,
        science_beta: 400.0,
        template_shape: (1.0, 0.0),
        science_shape: (1.0, 0.0),
    };

    use crate::conditions::test_epoch as epoch;

    /// Noise-free difference of a constant star: rendering with zero noise amplitude is not
    /// possible through `observe`, so compare the deterministic parts directly.
    #[test]
    fn matched_difference_of_constant_star_is_zero_without_noise() {
        for (t_seeing, s_seeing) in [(1.0, 1.8), (1.9, 1.1), (1.3, 1.3)] {
            let (template, science) = (epoch(t_seeing, 110.0, 25.0), epoch(s_seeing, 130.0, 24.8));
            let setup = Setup::new(
                EpochPair {
                    template: &template,
                    science: &science,
                },
                GAUSSIAN_LIKE,
            );
            let star = point(0.4, -0.3, 5e5);
            let kernel = Kernel::gaussian(setup.kernel_sigma);
            let canvas = STAMP_SIDE + 2 * kernel.radius();
            let mut sci = Image::new(canvas);
            let mut tmp = Image::new(canvas);
            let sharp_psf = (&setup.sharp_psf, setup.sharp_sigma);
            draw_source(&mut sci, sharp_psf, &star, (0.0, 0.0), 1.0);
            draw_source(
                &mut tmp,
                sharp_psf,
                &star,
                (0.0, 0.0),
                1.0 / setup.pair.flux_scale(),
            );
            let (sharp, broad, sharp_scale) = if setup.template_is_sharp {
                (tmp, sci, setup.pair.flux_scale())
            } else {
                (sci, tmp, 1.0)
            };
            let broad_scale = if setup.template_is_sharp {
                1.0
            } else {
                setup.pair.flux_scale()
            };
            let matched = sharp.convolve(&kernel, STAMP_SIDE);
            let broad = broad.convolve(&kernel, STAMP_SIDE);
            let peak = broad.pixels.iter().fold(0.0f32, |a, b| a.max(*b)) * broad_scale;
            let worst = matched
                .pixels
                .iter()
                .zip(&broad.pixels)
                .map(|(m, b)| (m * sharp_scale - b * broad_scale).abs())
                .fold(0.0, f32::max);
            assert!(peak > 1000.0);
            assert!(
                worst < 1e-4 * peak,
                "residual {worst} of peak {peak} for seeing {t_seeing}/{s_seeing}"
            );
        }
    }

    #[test]
    fn noisy_constant_star_leaves_only_noise_in_the_snr_difference() {
        let (template, science) = (epoch(1.1, 110.0, 25.0), epoch(1.6, 130.0, 24.9));
        let setup = Setup::new(
            EpochPair {
                template: &template,
                science: &science,
            },
            GAUSSIAN_LIKE,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut scene = Scene::default();
        scene
            .static_sources
            .push(point(0.0, 0.0, setup.flux_for_snr(500.0)));
        let mut squares = 0.0;
        for _ in 0..40 {
            let stamps = render(&scene, &setup, &mut rng);
            squares += stamps
                .snr_difference
                .pixels
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                / 441.0;
        }
        // A bright star subtracted perfectly leaves unit-variance noise (an unmatched one would not).
        let rms = (squares / 40.0).sqrt();
        assert!((0.85..1.15).contains(&rms), "SNR-difference rms {rms}");
    }

    /// Epochs whose PSFs differ in shape (Moffat β 2.5 against 6) cannot be matched by a
    /// Gaussian: a bright constant star leaves a residual far above the noise, as in real
    /// HiTS subtractions, while the near-Gaussian pair above leaves none.
    #[test]
    fn psf_shape_mismatch_leaves_a_residual_of_bright_stars() {
        let (template, science) = (epoch(1.1, 110.0, 25.0), epoch(1.6, 130.0, 24.9));
        let pair = EpochPair {
            template: &template,
            science: &science,
        };
        let mismatched = PsfDraw {
            template_beta: 2.5,
            science_beta: 6.0,
            ..GAUSSIAN_LIKE
        };
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let worst = |psf: PsfDraw, rng: &mut ChaCha8Rng| {
            let setup = Setup::new(pair, psf);
            let mut scene = Scene::default();
            scene
                .static_sources
                .push(point(0.0, 0.0, setup.flux_for_snr(3000.0)));
            let stamps = render(&scene, &setup, rng);
            stamps
                .snr_difference
                .pixels
                .iter()
                .fold(0.0f32, |a, v| a.max(v.abs()))
        };
        let (matched, mismatched) = (worst(GAUSSIAN_LIKE, &mut rng), worst(mismatched, &mut rng));
        assert!(matched < 5.0, "near-Gaussian PSFs left |SNR| {matched}");
        assert!(
            mismatched > 10.0,
            "mismatched PSFs left only |SNR| {mismatched}"
        );
    }

    #[test]
    fn snr_difference_is_difference_over_sigma() {
        let conditions = Conditions::embedded().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (stamps, _) = simulate(Kind::EmptySky, &conditions, &mut rng).unwrap();
        // On empty sky far from the source σ is the sky noise of both images combined, so
        // difference / snr recovers a σ close to it everywhere.
        for (d, s) in stamps
            .difference
            .pixels
            .iter()
            .zip(&stamps.snr_difference.pixels)
        {
            assert!(s.is_finite());
            let sigma = d / s;
            assert!(
                sigma > 3.0 && sigma < 500.0 || d.abs() < 1e-3,
                "implied σ {sigma}"
            );
        }
    }

    #[test]
    fn every_kind_passes_the_detection_cut_with_the_right_label() {
        let conditions = Conditions::embedded().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for kind in Kind::REAL.into_iter().chain(Kind::BOGUS) {
            for _ in 0..5 {
                let (stamps, truth) = simulate(kind, &conditions, &mut rng).unwrap();
                assert!(
                    stamps.centre_snr().abs() >= DETECTION_SNR,
                    "{} {}",
                    kind.name(),
                    truth.centre_snr
                );
                assert_eq!(kind.label(), u8::from(Kind::REAL.contains(&kind)));
            }
        }
    }
}
