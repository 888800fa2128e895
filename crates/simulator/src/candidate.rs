//! A candidate: a scene of its kind (`scene`) observed and subtracted
//! (`render::subtract`) into the four stamps (template, science, difference,
//! SNR-difference), redrawn until it passes the detection cut.

use rand_chacha::ChaCha8Rng;

use crate::error::SimError;
use crate::kind::Kind;
use crate::render::{Image, subtract};
use crate::scene::{PsfDraw, Scene, Setup, pipeline_errors, point, sample_scene, within};

/// The detection cut every candidate passes: |SNR| of at least this ...
pub const DETECTION_SNR: f32 = 5.0;
/// ... within this many pixels of the stamp centre.
pub const DETECTION_RADIUS: i32 = 2;
/// Resampling attempts before a kind is declared unable to pass the detection cut.
const MAX_ATTEMPTS: u32 = 1000;

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
    subtract(&scene, &setup, rng)
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
        let stamps = subtract(&scene, &setup, rng);
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
