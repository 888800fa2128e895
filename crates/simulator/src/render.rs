//! Square images on a canvas centred on the stamp (sources, convolution, noise, saturation),
//! and `subtract`: a scene observed in two epochs and subtracted as HiTS did.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use hits_core::STAMP_SIDE;

use crate::candidate::Stamps;
use crate::conditions::{SATURATION_ADU, pixel_variance};
use crate::psf::{Kernel, Moffat};
use crate::real_pixels::stamp_ops::border_sky;
use crate::scene::{Scene, Setup};

/// A square image; coordinates handed to its methods are relative to its central pixel, so
/// the stamp centre is (0, 0) whatever the canvas margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub side: usize,
    pub pixels: Vec<f32>,
}

impl Image {
    pub fn new(side: usize) -> Self {
        debug_assert!(side % 2 == 1, "odd sides keep a central pixel");
        Image {
            side,
            pixels: vec![0.0; side * side],
        }
    }

    fn half(&self) -> i32 {
        (self.side / 2) as i32
    }

    /// Index of the pixel at (x, y) from the centre, if on the canvas.
    pub fn index(&self, x: i32, y: i32) -> Option<usize> {
        let (col, row) = (x + self.half(), y + self.half());
        let inside = (0..self.side as i32).contains(&col) && (0..self.side as i32).contains(&row);
        inside.then(|| row as usize * self.side + col as usize)
    }

    pub fn add_at(&mut self, x: i32, y: i32, value: f32) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i] += value;
        }
    }

    /// `f(dx, dy)` summed into every pixel, with (dx, dy) the offset from (x0, y0).
    pub fn add_profile(&mut self, x0: f32, y0: f32, f: impl Fn(f32, f32) -> f32) {
        let half = self.half() as f32;
        for row in 0..self.side {
            let dy = row as f32 - half - y0;
            for col in 0..self.side {
                let dx = col as f32 - half - x0;
                self.pixels[row * self.side + col] += f(dx, dy);
            }
        }
    }

    pub fn add_point_source(&mut self, psf: &Moffat, x0: f32, y0: f32, flux: f32) {
        self.add_profile(x0, y0, |dx, dy| flux * psf.at_offset(dx, dy));
    }

    /// The central `side` x `side` pixels.
    pub fn crop(&self, side: usize) -> Image {
        let offset = (self.side - side) / 2;
        let mut out = Image::new(side);
        for row in 0..side {
            let from = (row + offset) * self.side + offset;
            out.pixels[row * side..(row + 1) * side]
                .copy_from_slice(&self.pixels[from..from + side]);
        }
        out
    }

    /// Separable convolution keeping only the central `side` x `side` pixels, all of which
    /// see the whole kernel (the canvas margin must be at least the kernel radius).
    pub fn convolve(&self, kernel: &Kernel, side: usize) -> Image {
        let radius = kernel.radius();
        let offset = (self.side - side) / 2;
        assert!(
            offset >= radius,
            "canvas margin {offset} < kernel radius {radius}"
        );
        let start = offset - radius;
        // Horizontal pass over every row the vertical pass will need.
        let rows = side + 2 * radius;
        let mut horizontal = vec![0.0f32; rows * side];
        for r in 0..rows {
            let src = &self.pixels[(start + r) * self.side..(start + r + 1) * self.side];
            let dst = &mut horizontal[r * side..(r + 1) * side];
            // Tap by tap over the whole row (not pixel by pixel over the window): the same
            // additions in the same order, but the inner loop vectorises.
            for (k, &tap) in kernel.taps.iter().enumerate() {
                for (d, s) in dst.iter_mut().zip(&src[start + k..start + k + side]) {
                    *d += tap * s;
                }
            }
        }
        let mut out = Image::new(side);
        for (k, &tap) in kernel.taps.iter().enumerate() {
            for r in 0..side {
                let src = &horizontal[(r + k) * side..(r + k + 1) * side];
                for (o, s) in out.pixels[r * side..(r + 1) * side].iter_mut().zip(src) {
                    *o += tap * s;
                }
            }
        }
        out
    }
}

/// A noiseless model observed by the camera: `sky` added, charge above saturation bled
/// along the column, Poisson + read noise drawn, and pixels clipped at saturation.
/// Returns the observed image and its per-pixel variance (from the noiseless model).
pub fn observe(model: &Image, sky: f32, rng: &mut ChaCha8Rng) -> (Image, Image) {
    let mut level = model.clone();
    level.pixels.iter_mut().for_each(|p| *p += sky);
    bleed(&mut level);
    let variance = Image {
        side: level.side,
        pixels: level.pixels.iter().map(|&p| pixel_variance(p)).collect(),
    };
    let mut observed = level;
    for (p, v) in observed.pixels.iter_mut().zip(&variance.pixels) {
        let noise: f32 = rng.sample(StandardNormal);
        *p = (*p + v.sqrt() * noise).min(SATURATION_ADU);
    }
    (observed, variance)
}

/// CCD blooming: charge above saturation spills up and down the column, filling pixels to
/// saturation — the bleed trails of bright stars.
fn bleed(image: &mut Image) {
    let side = image.side;
    for col in 0..side {
        let mut excess = 0.0;
        let mut centre = 0;
        for row in 0..side {
            let p = &mut image.pixels[row * side + col];
            if *p > SATURATION_ADU {
                excess += *p - SATURATION_ADU;
                centre = row;
                *p = SATURATION_ADU;
            }
        }
        let mut step = 1;
        while excess > 0.0 && step < side {
            for row in [centre as i64 - step as i64, (centre + step) as i64] {
                if (0..side as i64).contains(&row) && excess > 0.0 {
                    let p = &mut image.pixels[row as usize * side + col];
                    let room = (SATURATION_ADU - *p).max(0.0);
                    let moved = room.min(excess);
                    *p += moved;
                    excess -= moved;
                }
            }
            step += 1;
        }
    }
}

/// Observe a scene in both epochs and subtract them as HiTS did: the sharper image is
/// convolved to the broader PSF, the template scaled to the science zero point, and the
/// difference divided by its propagated noise.
pub(crate) fn subtract(scene: &Scene, setup: &Setup, rng: &mut ChaCha8Rng) -> Stamps {
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
        source.draw(&mut science, setup.psf_of(false), (0.0, 0.0), 1.0);
    }
    for source in scene.static_sources.iter().chain(&scene.template_sources) {
        source.draw(
            &mut template,
            setup.psf_of(true),
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
    // Sky-subtracted as a pipeline that has only the stamp subtracts it (and as the real-pixel
    // candidates are): the median of the stamp's border, which a bright star's wings raise,
    // the more the broader its PSF. Its error is a pedestal of the difference.
    let calibrate = |seen: &Image, var: &Image, scale: f32| {
        let sky = border_sky(&seen.crop(STAMP_SIDE).pixels);
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
    let (sharp_flux, sharp_flux_var) = calibrate(&sharp_seen, &sharp_var, sharp_scale);
    let (broad_flux, broad_flux_var) = calibrate(&broad_seen, &broad_var, broad_scale);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    use crate::conditions::{Epoch, EpochPair, test_epoch as epoch};
    use crate::scene::{PsfDraw, point};

    #[test]
    fn convolution_keeps_flux_and_matches_direct_sum() {
        let mut image = Image::new(35);
        image.add_point_source(&Moffat::new(4.0, 4.5), 0.3, -0.6, 1000.0);
        let kernel = Kernel::gaussian(1.5);
        let out = image.convolve(&kernel, 21);
        let r = kernel.radius() as i32;
        let direct: f32 = (-r..=r)
            .flat_map(|j| (-r..=r).map(move |i| (i, j)))
            .map(|(i, j)| {
                image.pixels[image.index(2 - i, -1 - j).unwrap()]
                    * kernel.taps[(i + r) as usize]
                    * kernel.taps[(j + r) as usize]
            })
            .sum();
        let got = out.pixels[out.index(2, -1).unwrap()];
        assert!((got - direct).abs() < 1e-3 * direct, "{got} vs {direct}");
        assert!(out.pixels.iter().sum::<f32>() > 0.8 * 1000.0);
    }

    #[test]
    fn bleeding_conserves_charge_and_caps_pixels() {
        let mut image = Image::new(21);
        image.add_at(0, 0, 3.5 * SATURATION_ADU);
        bleed(&mut image);
        assert!(image.pixels.iter().all(|&p| p <= SATURATION_ADU));
        assert!((image.pixels.iter().sum::<f32>() - 3.5 * SATURATION_ADU).abs() < 1.0);
        // Two pixels either side fill up; the remaining half goes to the next pixel above.
        assert_eq!(
            image.pixels[image.index(0, -2).unwrap()],
            0.5 * SATURATION_ADU
        );
        assert_eq!(image.pixels[image.index(0, 2).unwrap()], 0.0);
        assert_eq!(image.pixels[image.index(1, 0).unwrap()], 0.0);
    }

    #[test]
    fn observed_noise_matches_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (observed, variance) = observe(&Image::new(101), 120.0, &mut rng);
        let n = observed.pixels.len() as f32;
        let mean = observed.pixels.iter().sum::<f32>() / n;
        let var = observed
            .pixels
            .iter()
            .map(|p| (p - mean).powi(2))
            .sum::<f32>()
            / n;
        assert!((mean - 120.0).abs() < 0.3, "{mean}");
        assert!(
            (var / variance.pixels[0] - 1.0).abs() < 0.05,
            "{var} vs {}",
            variance.pixels[0]
        );
    }

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

    /// The pair `template`, `science` with [`GAUSSIAN_LIKE`] PSFs.
    fn gaussian_like<'a>(template: &'a Epoch, science: &'a Epoch) -> Setup<'a> {
        Setup::new(EpochPair { template, science }, GAUSSIAN_LIKE)
    }

    /// Noise-free difference of a constant star: rendering with zero noise amplitude is not
    /// possible through `observe`, so compare the deterministic parts directly.
    #[test]
    fn matched_difference_of_constant_star_is_zero_without_noise() {
        for (t_seeing, s_seeing) in [(1.0, 1.8), (1.9, 1.1), (1.3, 1.3)] {
            let (template, science) = (epoch(t_seeing, 110.0, 25.0), epoch(s_seeing, 130.0, 24.8));
            let setup = gaussian_like(&template, &science);
            let star = point(0.4, -0.3, 5e5);
            let kernel = Kernel::gaussian(setup.kernel_sigma);
            let canvas = STAMP_SIDE + 2 * kernel.radius();
            let mut sci = Image::new(canvas);
            let mut tmp = Image::new(canvas);
            let sharp_psf = (&setup.sharp_psf, setup.sharp_sigma);
            star.draw(&mut sci, sharp_psf, (0.0, 0.0), 1.0);
            star.draw(
                &mut tmp,
                sharp_psf,
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
        let setup = gaussian_like(&template, &science);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut scene = Scene::default();
        scene
            .static_sources
            .push(point(0.0, 0.0, setup.flux_for_snr(500.0)));
        let mut squares = 0.0;
        for _ in 0..40 {
            let stamps = subtract(&scene, &setup, &mut rng);
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

    /// The sky is measured on each stamp's border, which a bright star's wings raise the more
    /// the broader the epoch's PSF: a constant star in a sharp template and a broad science
    /// image leaves a negative pedestal in the difference, as in the real-pixel subtractions.
    #[test]
    fn sky_measured_on_the_stamp_leaves_a_pedestal_under_a_bright_star() {
        let (template, science) = (epoch(0.9, 110.0, 25.0), epoch(1.8, 130.0, 24.9));
        let setup = gaussian_like(&template, &science);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let border_mean = |scene: &Scene, rng: &mut ChaCha8Rng| {
            let stamps = subtract(scene, &setup, rng);
            let d = &stamps.snr_difference;
            let half = (STAMP_SIDE / 2) as i32;
            let border: Vec<f32> = (-half..=half)
                .flat_map(|y| (-half..=half).map(move |x| (x, y)))
                .filter(|(x, y)| x.abs().max(y.abs()) == half)
                .map(|(x, y)| d.pixels[d.index(x, y).unwrap()])
                .collect();
            border.iter().sum::<f32>() / border.len() as f32
        };
        let mut bright = Scene::default();
        bright
            .static_sources
            .push(point(0.0, 0.0, setup.flux_for_snr(3000.0)));
        let (empty, star): (f32, f32) = (0..20)
            .map(|_| {
                (
                    border_mean(&Scene::default(), &mut rng),
                    border_mean(&bright, &mut rng),
                )
            })
            .fold((0.0, 0.0), |(a, b), (e, s)| (a + e / 20.0, b + s / 20.0));
        assert!(empty.abs() < 0.1, "empty sky pedestal {empty}");
        assert!(star < -0.2, "a bright star's pedestal is only {star} σ");
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
            let stamps = subtract(&scene, &setup, rng);
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
}
