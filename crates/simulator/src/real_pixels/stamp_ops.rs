//! Measurements and resampling of real 21x21 stamps: centroid, Moffat PSF fit, sub-pixel
//! shift and Gaussian blur with the edges extended.

use hits_core::STAMP_SIDE;

use crate::psf::{Kernel, Moffat};
use crate::render::Image;

const HALF: i32 = (STAMP_SIDE / 2) as i32;

fn at(pixels: &[f32], x: i32, y: i32) -> f32 {
    pixels[((y + HALF) * STAMP_SIDE as i32 + x + HALF) as usize]
}

fn offsets(radius: i32) -> impl Iterator<Item = (i32, i32)> {
    (-radius..=radius).flat_map(move |y| (-radius..=radius).map(move |x| (x, y)))
}

/// Sky level: the median of the two outermost rings (Chebyshev distance ≥ 9 from the centre).
/// Survey pipelines take the sky from far larger areas; this stays as clear of the central
/// star's wings as a 21x21 stamp allows (a bright star raises pixels 7 px out by ~1 σ).
pub fn border_sky(pixels: &[f32]) -> f32 {
    let mut border: Vec<f32> = offsets(HALF)
        .filter(|(x, y)| x.abs().max(y.abs()) >= HALF - 1)
        .map(|(x, y)| at(pixels, x, y))
        .collect();
    border.sort_by(f32::total_cmp);
    border[border.len() / 2]
}

/// The brightest pixel within 2 px of the centre and its value.
pub fn central_peak(flux: &[f32]) -> ((i32, i32), f32) {
    offsets(2)
        .map(|(x, y)| ((x, y), at(flux, x, y)))
        .fold(
            ((0, 0), f32::MIN),
            |best, p| if p.1 > best.1 { p } else { best },
        )
}

/// Width (σ, pixels) of the Gaussian window of [`centroid`], about a typical HiTS PSF's.
const CENTROID_WINDOW_SIGMA: f32 = 1.5;

/// The source's position in pixels from the stamp centre: the Gaussian-windowed first
/// moment, iterated with the window on the current estimate (SExtractor's XWIN), starting
/// from the brightest central pixel. A fixed window would pull the estimate towards the
/// pixel it is centred on.
pub fn centroid(flux: &[f32]) -> (f32, f32) {
    let ((bx, by), _) = central_peak(flux);
    let (mut cx, mut cy) = (bx as f32, by as f32);
    let two_s2 = 2.0 * CENTROID_WINDOW_SIGMA * CENTROID_WINDOW_SIGMA;
    for _ in 0..20 {
        let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (x, y) in offsets(HALF) {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let r2 = dx * dx + dy * dy;
            if r2 > 16.0 * CENTROID_WINDOW_SIGMA * CENTROID_WINDOW_SIGMA {
                continue;
            }
            let w = (-r2 / two_s2).exp() * at(flux, x, y);
            sum += w;
            sx += w * dx;
            sy += w * dy;
        }
        if sum <= 0.0 {
            return (bx as f32, by as f32);
        }
        // The factor 2 makes the step exact for a Gaussian source (Bertin's XWIN).
        let (step_x, step_y) = (2.0 * sx / sum, 2.0 * sy / sum);
        cx = (cx + step_x).clamp(-3.0, 3.0);
        cy = (cy + step_y).clamp(-3.0, 3.0);
        if step_x.abs() < 1e-3 && step_y.abs() < 1e-3 {
            break;
        }
    }
    (cx, cy)
}

/// The Moffat profile that best fits a star: FWHM (pixels), β, and total flux (ADU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoffatFit {
    pub fwhm: f32,
    pub beta: f32,
    pub flux: f32,
}

/// The Moffat profile that best fits (least squares, free amplitude) the sky-subtracted
/// `flux` within 6 px of `centre`: a coarse grid of FWHM and β, then finer FWHM steps.
pub fn fit_moffat(flux: &[f32], centre: (f32, f32)) -> MoffatFit {
    let samples: Vec<(f32, f32)> = offsets(HALF)
        .map(|(x, y)| {
            let r2 = (x as f32 - centre.0).powi(2) + (y as f32 - centre.1).powi(2);
            (r2, at(flux, x, y))
        })
        .filter(|(r2, _)| *r2 <= 36.0)
        .collect();
    // Residual sum of squares at the best amplitude mv / mm (the profile has unit flux, so
    // the amplitude is the star's total flux), and that amplitude.
    let misfit = |fwhm: f32, beta: f32| {
        let psf = Moffat::new(fwhm, beta);
        let (mut mm, mut mv, mut vv) = (0.0f64, 0.0f64, 0.0f64);
        for &(r2, v) in &samples {
            let m = f64::from(psf.at(r2));
            mm += m * m;
            mv += m * f64::from(v);
            vv += f64::from(v) * f64::from(v);
        }
        (vv - mv * mv / mm, (mv / mm) as f32)
    };
    let best_of = |candidates: &mut dyn Iterator<Item = (f32, f32)>| {
        candidates
            .map(|(fwhm, beta)| {
                let (rss, flux) = misfit(fwhm, beta);
                (rss, MoffatFit { fwhm, beta, flux })
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, fit)| fit)
            .expect("the grids are not empty")
    };
    let coarse = best_of(
        &mut [2.5f32, 3.0, 3.5, 4.5, 6.0, 10.0]
            .into_iter()
            .flat_map(|beta| (0..=28).map(move |i| (1.5 + 0.25 * i as f32, beta))),
    );
    best_of(&mut (-10..=10).map(|i| ((coarse.fwhm + 0.025 * i as f32).max(1.0), coarse.beta)))
}

/// Lanczos-3 taps for a shift by `d` pixels: source offsets from `base` and their weights.
fn lanczos_taps(d: f32) -> (i32, [f32; 6]) {
    let lanczos = |x: f32| {
        if x.abs() < 1e-6 {
            1.0
        } else if x.abs() >= 3.0 {
            0.0
        } else {
            let px = std::f32::consts::PI * x;
            3.0 * px.sin() * (px / 3.0).sin() / (px * px)
        }
    };
    // out(i) = in(i - d): the source position i - d lies between base and base + 1.
    let base = (-d).floor();
    let frac = -d - base;
    let mut weights = [0.0; 6];
    for (k, w) in weights.iter_mut().enumerate() {
        *w = lanczos(frac - (k as f32 - 2.0));
    }
    let sum: f32 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= sum);
    (base as i32 - 2, weights)
}

/// The stamp moved by (dx, dy) pixels, `out(x, y) = in(x - dx, y - dy)`, by separable
/// Lanczos-3 interpolation (as SWarp resamples survey images) with the edges extended.
pub fn shift(pixels: &[f32], offset: (f32, f32)) -> Vec<f32> {
    resample(pixels, offset, false)
}

/// The variance of [`shift`]ed independent pixels of variance `variance`: the same
/// interpolation with squared weights (resampling averages noise down).
pub fn shift_variance(variance: &[f32], offset: (f32, f32)) -> Vec<f32> {
    resample(variance, offset, true)
}

fn resample(pixels: &[f32], (dx, dy): (f32, f32), squared_weights: bool) -> Vec<f32> {
    let side = STAMP_SIDE as i32;
    let clamp = |i: i32| i.clamp(0, side - 1) as usize;
    let taps = |d: f32| {
        let (base, mut weights) = lanczos_taps(d);
        if squared_weights {
            weights.iter_mut().for_each(|w| *w *= *w);
        }
        (base, weights)
    };
    let (x0, wx) = taps(dx);
    let (y0, wy) = taps(dy);
    let mut rows = vec![0.0f32; pixels.len()];
    for y in 0..STAMP_SIDE {
        for x in 0..side {
            rows[y * STAMP_SIDE + x as usize] = wx
                .iter()
                .enumerate()
                .map(|(k, w)| w * pixels[y * STAMP_SIDE + clamp(x + x0 + k as i32)])
                .sum();
        }
    }
    let mut out = vec![0.0f32; pixels.len()];
    for y in 0..side {
        for x in 0..STAMP_SIDE {
            out[y as usize * STAMP_SIDE + x] = wy
                .iter()
                .enumerate()
                .map(|(k, w)| w * rows[clamp(y + y0 + k as i32) * STAMP_SIDE + x])
                .sum();
        }
    }
    out
}

/// The stamp convolved with the separable `kernel`, its edge pixels extended outwards.
pub fn blur(pixels: &[f32], kernel: &Kernel) -> Vec<f32> {
    let radius = kernel.radius();
    let mut canvas = Image::new(STAMP_SIDE + 2 * radius);
    let last = STAMP_SIDE as i64 - 1;
    for row in 0..canvas.side {
        let from_row = (row as i64 - radius as i64).clamp(0, last) as usize;
        for col in 0..canvas.side {
            let from_col = (col as i64 - radius as i64).clamp(0, last) as usize;
            canvas.pixels[row * canvas.side + col] = pixels[from_row * STAMP_SIDE + from_col];
        }
    }
    canvas.convolve(kernel, STAMP_SIDE).pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star(fwhm: f32, beta: f32, x: f32, y: f32) -> Vec<f32> {
        let mut image = Image::new(STAMP_SIDE);
        image.add_point_source(&Moffat::new(fwhm, beta), x, y, 10_000.0);
        image.pixels
    }

    #[test]
    fn centroid_and_fit_recover_a_moffat_star() {
        let pixels = star(4.2, 4.5, 0.3, -0.4);
        let (cx, cy) = centroid(&pixels);
        assert!(
            (cx - 0.3).abs() < 0.02 && (cy + 0.4).abs() < 0.02,
            "{cx} {cy}"
        );
        let fit = fit_moffat(&pixels, (0.3, -0.4));
        assert!((fit.fwhm - 4.2).abs() < 0.06, "{fit:?}");
        assert_eq!(fit.beta, 4.5);
        assert!((fit.flux / 10_000.0 - 1.0).abs() < 0.02, "{fit:?}");
    }

    #[test]
    fn shift_moves_a_star_and_keeps_its_flux() {
        let pixels = star(4.0, 4.5, 0.0, 0.0);
        let moved = shift(&pixels, (0.4, -0.7));
        let (cx, cy) = centroid(&moved);
        assert!(
            (cx - 0.4).abs() < 0.03 && (cy + 0.7).abs() < 0.03,
            "{cx} {cy}"
        );
        let expected = star(4.0, 4.5, 0.4, -0.7);
        let worst = moved
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let peak = expected.iter().fold(0.0f32, |a, b| a.max(*b));
        assert!(worst < 0.02 * peak, "worst {worst} of peak {peak}");
        // A whole-pixel shift is exact away from the edges.
        let whole = shift(&pixels, (1.0, 0.0));
        assert!((whole[10 * STAMP_SIDE + 11] - pixels[10 * STAMP_SIDE + 10]).abs() < 1e-3);
    }

    /// White noise shifted by half a pixel has a lower variance; `shift_variance` predicts it.
    #[test]
    fn shifted_noise_has_the_predicted_variance() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut observed, mut n) = (0.0f64, 0.0f64);
        for _ in 0..200 {
            let noise: Vec<f32> = (0..STAMP_SIDE * STAMP_SIDE)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            let moved = shift(&noise, (0.5, 0.5));
            for y in 4..17 {
                for x in 4..17 {
                    observed += f64::from(moved[y * STAMP_SIDE + x]).powi(2);
                    n += 1.0;
                }
            }
        }
        let predicted = shift_variance(&vec![1.0; STAMP_SIDE * STAMP_SIDE], (0.5, 0.5))[220];
        let observed = observed / n;
        assert!(
            predicted < 0.8,
            "half-pixel Lanczos averages noise: {predicted}"
        );
        assert!(
            (observed / f64::from(predicted) - 1.0).abs() < 0.05,
            "{observed} vs {predicted}"
        );
    }

    #[test]
    fn blur_widens_a_star_and_keeps_a_flat_image_flat() {
        let flat = vec![7.0; STAMP_SIDE * STAMP_SIDE];
        assert!(
            blur(&flat, &Kernel::gaussian(1.5))
                .iter()
                .all(|v| (v - 7.0).abs() < 1e-4)
        );
        let pixels = star(3.0, 4.5, 0.0, 0.0);
        let blurred = blur(&pixels, &Kernel::gaussian(1.5));
        let fwhm = fit_moffat(&blurred, (0.0, 0.0)).fwhm;
        // Gaussian widths add in quadrature: sqrt(3² + (2.355 · 1.5)²) ≈ 4.6.
        assert!((4.2..5.0).contains(&fwhm), "{fwhm}");
    }
}
