//! Candidates built from real HiTS 2015 pixels: every epoch of the 78 objects of
//! `real_science_sequences.csv`.
//!
//! For each object and each entry K of `template_epochs`, the template is the mean of its
//! first K usable epochs (registered and flux-scaled), and every later epoch is a science
//! image subtracted from it ([`subtract()`]). The candidates are:
//! - bogus: a constant star's difference that passes the detection cut (|SNR| ≥ 5 within
//!   2 px of the centre): a real subtraction residual;
//! - real: an RR Lyrae or eclipsing binary epoch that passes the cut brighter by at least
//!   [`BRIGHTENING_FRACTION`] of the template's flux, and a supernova epoch that passes it
//!   positive; fainter changes and fading epochs are left out (neither class);
//! - real: `injections` point sources per science epoch, drawn with that epoch's own PSF at
//!   up to 1 px from the centre, the way Deep-HiTS made its real class.
//!
//! Objects are split by name: a fixed fraction of each class is held out (never trained or
//! tuned on), whatever the pipeline's seed. The one thing learned from real pixels, the
//! zero-point correction of [`photometry`], is learned on the other (calibration) objects.

pub mod photometry;
pub mod sequences;
pub mod stamp_ops;
pub mod subtract;

use std::collections::BTreeMap;

use hits_core::config::RealPixelsConfig;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::candidate::DETECTION_SNR;
use crate::conditions::Conditions;
use crate::psf::Moffat;
use crate::scene::transient_snr;
use crate::{Candidate, Kind, Truth};
pub use photometry::FluxCorrection;
pub use sequences::{ObjectClass, ObjectSequence, read_sequences};
use subtract::{Exposure, subtract};

/// A variable star's epoch is a real candidate when its difference holds at least this
/// fraction of the template's flux (0.2 mag); smaller changes look like the flux-scaling
/// residuals of constant stars.
pub const BRIGHTENING_FRACTION: f32 = 0.2;

/// Where an object's candidates go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Trained and tuned on (with `train = true`).
    Calibration,
    /// The held-out real-pixel split: nothing is trained or tuned on it.
    HeldOut,
}

/// For each object, its role: in each class, the `held_out_fraction` of objects that come
/// first in BLAKE3 order of their names are held out.
pub fn roles(objects: &[ObjectSequence], held_out_fraction: f64) -> Vec<Role> {
    let mut roles = vec![Role::Calibration; objects.len()];
    for class in ObjectClass::ALL {
        let mut members: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i].class == class)
            .collect();
        members.sort_by_key(|&i| *blake3::hash(objects[i].name.as_bytes()).as_bytes());
        let held = (members.len() as f64 * held_out_fraction).round() as usize;
        for &i in &members[..held] {
            roles[i] = Role::HeldOut;
        }
    }
    roles
}

/// The candidates of both roles, and what was left out.
#[derive(Debug)]
pub struct RealPixelSets {
    pub calibration: Vec<Candidate>,
    pub held_out: Vec<Candidate>,
    /// Objects per (role, class).
    pub objects: BTreeMap<(Role, ObjectClass), usize>,
    /// Epochs without a usable conditions row, or with masked pixels.
    pub unusable_epochs: usize,
    /// The zero-point correction learned on the calibration objects' constant stars.
    pub flux_correction: FluxCorrection,
}

/// Every usable epoch of every object, measured (`(epoch number, exposure)`), with flux units
/// corrected by the [`FluxCorrection`] fitted on the calibration objects' constant stars.
pub fn measure_all(
    objects: &[ObjectSequence],
    roles: &[Role],
    conditions: &Conditions,
) -> (Vec<Vec<(u32, Exposure)>>, FluxCorrection) {
    let mut measured: Vec<Vec<(u32, Exposure)>> = objects
        .par_iter()
        .map(|object| {
            object
                .epochs
                .iter()
                .filter_map(|epoch| {
                    let row = conditions.exposure_at(&object.field, epoch.mjd)?;
                    Some((epoch.epoch, Exposure::measure(epoch, object.class, row)?))
                })
                .collect()
        })
        .collect();
    let stars: Vec<Vec<&Exposure>> = measured
        .iter()
        .zip(objects.iter().zip(roles))
        .filter(|(_, (o, role))| o.class == ObjectClass::Constant && **role == Role::Calibration)
        .map(|(exposures, _)| exposures.iter().map(|(_, e)| e).collect())
        .collect();
    let correction = FluxCorrection::fit(&stars);
    for (_, exposure) in measured.iter_mut().flatten() {
        exposure.flux_unit *= correction.at(exposure.fwhm);
    }
    (measured, correction)
}

/// Build every object's candidates; deterministic for a given `seed` (injections only).
pub fn build(
    config: &RealPixelsConfig,
    objects: &[ObjectSequence],
    conditions: &Conditions,
    seed: u64,
) -> RealPixelSets {
    let roles = roles(objects, config.held_out_fraction);
    let (measured, flux_correction) = measure_all(objects, &roles, conditions);
    let built: Vec<Vec<Candidate>> = objects
        .par_iter()
        .zip(&measured)
        .map(|(object, exposures)| candidates_of(object, exposures, config, seed))
        .collect();
    let mut sets = RealPixelSets {
        calibration: Vec::new(),
        held_out: Vec::new(),
        objects: BTreeMap::new(),
        unusable_epochs: 0,
        flux_correction,
    };
    for (((object, role), candidates), exposures) in
        objects.iter().zip(roles).zip(built).zip(&measured)
    {
        *sets.objects.entry((role, object.class)).or_default() += 1;
        sets.unusable_epochs += object.epochs.len() - exposures.len();
        match role {
            Role::Calibration => sets.calibration.extend(candidates),
            Role::HeldOut => sets.held_out.extend(candidates),
        }
    }
    sets
}

/// The kind of a real (not injected) subtraction, or None when it is no candidate.
fn classify(
    class: ObjectClass,
    centre_snr: f32,
    difference_flux: f32,
    template_flux: f32,
) -> Option<Kind> {
    let detected = centre_snr.abs() >= DETECTION_SNR;
    let brightened = centre_snr >= DETECTION_SNR
        && difference_flux >= BRIGHTENING_FRACTION * template_flux.max(0.0);
    match class {
        ObjectClass::Constant => detected.then_some(Kind::RealConstantStar),
        ObjectClass::Supernova => (centre_snr >= DETECTION_SNR).then_some(Kind::RealSupernova),
        ObjectClass::RrLyrae => brightened.then_some(Kind::RealRrLyrae),
        ObjectClass::EclipsingBinary => brightened.then_some(Kind::RealEclipsingBinary),
    }
}

/// A generator for one injection, independent of the order objects are processed in.
fn injection_rng(seed: u64, object: &str, template: usize, epoch: u32, index: usize) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(object.as_bytes());
    hasher.update(&(template as u64).to_le_bytes());
    hasher.update(&u64::from(epoch).to_le_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    let digest = hasher.finalize();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from_le_bytes(
        digest.as_bytes()[..8].try_into().expect("8 bytes"),
    ));
    rng
}

fn candidates_of(
    object: &ObjectSequence,
    exposures: &[(u32, Exposure)],
    config: &RealPixelsConfig,
    seed: u64,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for &k in &config.template_epochs {
        if exposures.len() <= k {
            continue;
        }
        let parts: Vec<&Exposure> = exposures[..k].iter().map(|(_, e)| e).collect();
        let template = Exposure::combine(&parts);
        let template_epoch = exposures[0].0;
        for (epoch, science) in &exposures[k..] {
            let id = format!("rp-{}-k{k}-e{epoch:02}", object.name);
            let truth = |kind: Kind, centre_snr: f32, source: Option<(f32, f32, f32)>| Truth {
                kind,
                centre_snr,
                source_mag: source.map(|(_, _, flux)| science.conditions.magnitude(flux)),
                source_xy: source.map(|(x, y, _)| (x, y)),
                field: object.field.clone(),
                template_epoch,
                science_epoch: *epoch,
                template_seeing: template.conditions.seeing_arcsec,
                science_seeing: science.conditions.seeing_arcsec,
                template_sky: template.sky,
                science_sky: science.sky,
                attempts: 1,
                object: Some(object.name.clone()),
            };
            let plain = subtract(&template, science);
            let snr = plain.stamps.centre_snr();
            if let Some(kind) = classify(
                object.class,
                snr,
                plain.difference_flux,
                plain.template_flux,
            ) {
                candidates.push(Candidate {
                    id: id.clone(),
                    label: kind.label(),
                    stamps: plain.stamps.clone(),
                    truth: truth(kind, snr, None),
                });
            }
            for n in 0..config.injections {
                let mut rng = injection_rng(seed, &object.name, k, *epoch, n);
                let position = (
                    rng.random_range(-1.0..=1.0f32),
                    rng.random_range(-1.0..=1.0f32),
                );
                let psf = Moffat::new(science.fwhm, science.beta);
                let flux = plain.flux_for_snr(&psf, position, transient_snr(&mut rng));
                let injected = science.with_point_source(position, flux, &mut rng);
                let result = subtract(&template, &injected);
                let snr = result.stamps.centre_snr();
                if snr >= DETECTION_SNR {
                    candidates.push(Candidate {
                        id: format!("{id}-inj{n}"),
                        label: Kind::InjectedPointSource.label(),
                        stamps: result.stamps,
                        truth: truth(
                            Kind::InjectedPointSource,
                            snr,
                            Some((position.0, position.1, flux)),
                        ),
                    });
                }
            }
        }
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Vec<ObjectSequence> {
        read_sequences(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/hits2015/real_science_sequences.csv"),
        )
        .unwrap()
    }

    #[test]
    fn objects_are_held_out_by_name_within_each_class() {
        let objects = shipped();
        let roles = roles(&objects, 0.4);
        for class in ObjectClass::ALL {
            let members: Vec<usize> = (0..objects.len())
                .filter(|&i| objects[i].class == class)
                .collect();
            let held = members
                .iter()
                .filter(|&&i| roles[i] == Role::HeldOut)
                .count();
            assert_eq!(
                held,
                (members.len() as f64 * 0.4).round() as usize,
                "{class:?}"
            );
        }
        // The order of the objects does not matter, only their names.
        let mut reversed = objects.clone();
        reversed.reverse();
        let mut again = roles_of_names(&reversed, 0.4);
        again.sort();
        let mut first = roles_of_names(&objects, 0.4);
        first.sort();
        assert_eq!(first, again);
    }

    fn roles_of_names(objects: &[ObjectSequence], fraction: f64) -> Vec<(String, Role)> {
        objects
            .iter()
            .map(|o| o.name.clone())
            .zip(roles(objects, fraction))
            .collect()
    }

    /// On the real constant stars, zero points predict the flux of sharp PSFs and overpredict
    /// that of broad ones: the learned correction is ~1 at 3.5 px and below 0.97 at 7 px.
    #[test]
    fn the_flux_correction_follows_the_psf_width() {
        let objects = shipped();
        let roles = roles(&objects, 0.4);
        let (_, correction) = measure_all(&objects, &roles, &Conditions::embedded().unwrap());
        assert!(correction.knots().len() >= 6, "{correction:?}");
        assert!((correction.at(3.5) - 1.0).abs() < 0.03, "{correction:?}");
        assert!(correction.at(7.0) < 0.97, "{correction:?}");
    }

    #[test]
    fn classes_become_the_right_kinds() {
        use ObjectClass::*;
        assert_eq!(
            classify(Constant, -7.0, -50.0, 1000.0),
            Some(Kind::RealConstantStar)
        );
        assert_eq!(classify(Constant, 4.0, 10.0, 1000.0), None);
        assert_eq!(
            classify(RrLyrae, 30.0, 300.0, 1000.0),
            Some(Kind::RealRrLyrae)
        );
        assert_eq!(
            classify(RrLyrae, 30.0, 100.0, 1000.0),
            None,
            "0.1 of the flux is too little"
        );
        assert_eq!(
            classify(EclipsingBinary, -30.0, -300.0, 1000.0),
            None,
            "fading"
        );
        assert_eq!(
            classify(Supernova, 6.0, 20.0, 5000.0),
            Some(Kind::RealSupernova)
        );
        assert_eq!(classify(Supernova, -6.0, -20.0, 0.0), None);
    }

    /// Two objects of the shipped file (a constant star and an RR Lyrae), built twice: the
    /// same candidates, labels that match their kinds, and all of them past the cut.
    #[test]
    fn real_pixel_candidates_are_deterministic_and_detected() {
        let objects: Vec<ObjectSequence> = shipped()
            .into_iter()
            .filter(|o| {
                o.name.starts_with("Blind15A_04_N16") || o.name.starts_with("Blind15A_04_N12")
            })
            .collect();
        assert_eq!(objects.len(), 2);
        let conditions = Conditions::embedded().unwrap();
        let config = RealPixelsConfig {
            template_epochs: vec![3],
            ..RealPixelsConfig::default()
        };
        let a = build(&config, &objects, &conditions, 5);
        let b = build(&config, &objects, &conditions, 5);
        let all = |s: &RealPixelSets| [s.calibration.clone(), s.held_out.clone()].concat();
        assert_eq!(all(&a), all(&b));
        let candidates = all(&a);
        assert!(candidates.len() > 20, "{}", candidates.len());
        let kinds: std::collections::HashSet<Kind> =
            candidates.iter().map(|c| c.truth.kind).collect();
        assert!(
            kinds.contains(&Kind::InjectedPointSource) && kinds.contains(&Kind::RealConstantStar),
            "{kinds:?}"
        );
        for c in &candidates {
            assert_eq!(c.label, c.truth.kind.label(), "{}", c.id);
            assert!(c.stamps.passes_detection(), "{}", c.id);
            assert!(
                c.stamps.snr_difference.pixels.iter().all(|v| v.is_finite()),
                "{}",
                c.id
            );
        }
        let other_seed = build(&config, &objects, &conditions, 6);
        assert_ne!(all(&other_seed), candidates, "injections ignore the seed");
    }
}
