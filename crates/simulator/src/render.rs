//! Square images on a canvas centred on the stamp: sources, convolution, noise, saturation.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::conditions::{SATURATION_ADU, pixel_variance};
use crate::psf::{Kernel, Moffat};

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
}
