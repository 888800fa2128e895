//! Realism check: simulated science stamps next to real HiTS 2015 ones, and the sky level,
//! noise and PSF width of both, measured the same way.

use std::path::{Path, PathBuf};

use hits_core::{Pipeline, STAMP_PIXELS, STAMP_SIDE};
use indicatif::ProgressBar;
use plots::StampPanel;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::candidate::{DETECTION_SNR, centre_value};
use crate::error::SimError;
use crate::real_pixels::stamp_ops::{central_peak, centroid};
use crate::real_pixels::subtract::Exposure;
use crate::real_pixels::{self, ObjectClass, Role, read_sequences};
use crate::realism::{self, FeatureVector, SceneRealism};
use crate::{Candidate, CandidateSet, Conditions, simulate_split};

/// A real science stamp from `real_science_stamps.csv`.
#[derive(Debug, Clone)]
pub struct RealStamp {
    pub name: String,
    pub class: String,
    pub pixels: Vec<f32>,
}

/// Read `name,label,epoch_mjd,p0..p440`.
pub fn read_real_stamps(path: &Path) -> Result<Vec<RealStamp>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimError::io(path, e))?;
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let bad = |message: String| SimError::Parse {
                path: path.into(),
                line: i + 1,
                message,
            };
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != 3 + STAMP_PIXELS {
                return Err(bad(format!(
                    "{} columns, expected {}",
                    cells.len(),
                    3 + STAMP_PIXELS
                )));
            }
            let pixels = cells[3..]
                .iter()
                .map(|c| {
                    c.trim()
                        .parse::<f32>()
                        .map_err(|e| bad(format!("'{c}': {e}")))
                })
                .collect::<Result<Vec<f32>, _>>()?;
            Ok(RealStamp {
                name: cells[0].to_string(),
                class: cells[1].to_string(),
                pixels,
            })
        })
        .collect()
}

/// Sky level, noise and (for a bright enough central source) PSF FWHM of a science stamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StampStats {
    /// Median of the outer pixels, ADU.
    pub sky: f32,
    /// Robust σ (1.4826 MAD of neighbour differences / √2) of the outer pixels, ADU.
    pub noise: f32,
    /// Diameter of the area above half the central peak, pixels.
    pub fwhm: Option<f32>,
}

/// Masked detector regions carry sentinels (-9999, ~1e8); they are not sky.
pub(crate) fn is_usable(v: f32) -> bool {
    v.is_finite() && v > -1000.0 && v < 1e7
}

pub(crate) fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

/// Pixels at least this far (Chebyshev distance) from the centre count as sky.
const OUTER: i32 = 7;
/// A source must peak this many σ above the sky for its FWHM to be measured.
const FWHM_MIN_SNR: f32 = 30.0;

pub fn stamp_stats(pixels: &[f32]) -> Option<StampStats> {
    let half = (STAMP_SIDE / 2) as i32;
    let at = |x: i32, y: i32| pixels[((y + half) * STAMP_SIDE as i32 + x + half) as usize];
    let all = || (-half..=half).flat_map(move |y| (-half..=half).map(move |x| (x, y)));
    let mut outer: Vec<f32> = all()
        .filter(|&(x, y)| x.abs().max(y.abs()) >= OUTER)
        .map(|(x, y)| at(x, y))
        .filter(|v| is_usable(*v))
        .collect();
    if outer.len() < 20 {
        return None;
    }
    let sky = median(&mut outer);
    // Differences of horizontal neighbours cancel the smooth wings of a bright central star,
    // which would otherwise inflate a plain MAD of the outer pixels.
    let mut steps: Vec<f32> = all()
        .filter(|&(x, y)| {
            x < half && x.abs().max(y.abs()) >= OUTER && (x + 1).abs().max(y.abs()) >= OUTER
        })
        .map(|(x, y)| (at(x, y), at(x + 1, y)))
        .filter(|(a, b)| is_usable(*a) && is_usable(*b))
        .map(|(a, b)| (a - b).abs())
        .collect();
    let noise = 1.4826 * median(&mut steps) / std::f32::consts::SQRT_2;
    let peak = all()
        .filter(|&(x, y)| x.abs().max(y.abs()) <= 2)
        .map(|(x, y)| at(x, y))
        .filter(|v| is_usable(*v))
        .fold(f32::MIN, f32::max)
        - sky;
    // Saturated sources have flat tops: their half-maximum area says nothing about the PSF.
    let fwhm = (peak > FWHM_MIN_SNR * noise
        && peak + sky < 0.9 * crate::conditions::SATURATION_ADU)
        .then(|| {
            let area = all()
                .filter(|&(x, y)| {
                    x * x + y * y <= 64 && is_usable(at(x, y)) && at(x, y) - sky >= peak / 2.0
                })
                .count();
            2.0 * (area as f32 / std::f32::consts::PI).sqrt()
        });
    Some(StampStats { sky, noise, fwhm })
}

/// Medians of the measured quantities, simulated vs real, for the printed table.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub quantity: &'static str,
    pub simulated: f32,
    pub real: f32,
    pub simulated_n: usize,
    pub real_n: usize,
}

pub struct CheckReport {
    pub comparisons: Vec<Comparison>,
    pub realism: Option<RealismReport>,
    pub files: Vec<PathBuf>,
}

/// A quantity measured the same way on simulated and real stamps of one scene.
#[derive(Debug, Clone, Serialize)]
pub struct QuantityDistance {
    pub scene: &'static str,
    pub quantity: &'static str,
    pub simulated_median: f64,
    pub real_median: f64,
    /// Two-sample Kolmogorov–Smirnov statistic (0 = same distribution, 1 = disjoint).
    pub ks: f64,
}

/// `realism.json`: how far simulated constant stars are from the real ones, by scene.
#[derive(Debug, Clone, Serialize)]
pub struct RealismReport {
    pub scenes: Vec<SceneRealism>,
    pub distances: Vec<QuantityDistance>,
    /// Fraction of constant-star subtractions that pass the detection cut (bogus candidates).
    pub detected_fraction_simulated: f64,
    pub detected_fraction_real: f64,
    /// Moffat fits to the calibration objects' star epochs: PSF FWHM over the conditions
    /// table's seeing (10th, 50th, 90th percentile) and the median β.
    pub fwhm_per_seeing_percentiles: [f64; 3],
    pub median_beta: f64,
    /// PSF-fitted flux over the zero-point prediction by PSF FWHM (pixels), learned on the
    /// calibration objects' constant stars and applied to every real exposure.
    pub flux_correction: Vec<(f32, f32)>,
}

/// One constant star's stamp measured for the realism check.
struct StarStamp {
    features: FeatureVector,
    residual: Option<FeatureVector>,
    snr_difference: Option<Vec<f32>>,
    /// sky, noise, PSF FWHM (if measurable), peak SNR, centring offset (pixels).
    sky: f64,
    noise: f64,
    fwhm: Option<f64>,
    peak_snr: f64,
    offset: f64,
    /// Held-out object (the classifier is scored on these).
    held_out: bool,
}

fn star_stamp(
    science: &[f32],
    snr_difference: Option<&[f32]>,
    held_out: bool,
) -> Option<StarStamp> {
    let stats = stamp_stats(science)?;
    let flux: Vec<f32> = science.iter().map(|v| v - stats.sky).collect();
    let (_, peak) = central_peak(&flux);
    let (cx, cy) = centroid(&flux);
    let detected = snr_difference.filter(|snr| passes_cut(snr));
    Some(StarStamp {
        features: realism::science_features(science, stats.sky, stats.noise),
        residual: detected.map(realism::difference_features),
        snr_difference: detected.map(<[f32]>::to_vec),
        sky: f64::from(stats.sky),
        noise: f64::from(stats.noise),
        fwhm: stats.fwhm.map(f64::from),
        peak_snr: f64::from(peak / stats.noise),
        offset: f64::from((cx * cx + cy * cy).sqrt()),
        held_out,
    })
}

/// Whether an SNR-difference stamp passes the detection cut.
fn passes_cut(snr_difference: &[f32]) -> bool {
    let image = crate::render::Image {
        side: STAMP_SIDE,
        pixels: snr_difference.to_vec(),
    };
    centre_value(&image).abs() >= DETECTION_SNR
}

/// One real constant star's epochs, measured for the check: each later epoch's science stamp
/// with its residual against the first epoch, and the residuals that pass the cut against
/// each of the 2nd to `template_epochs`-th epochs as single-epoch templates.
fn real_star(
    exposures: &[&Exposure],
    template_epochs: usize,
    held_out: bool,
) -> (Vec<StarStamp>, Vec<FeatureVector>) {
    let (mut stamps, mut later) = (Vec::new(), Vec::new());
    for (t, template) in exposures.iter().enumerate().take(template_epochs) {
        for e in &exposures[t + 1..] {
            let residual = real_pixels::subtract::subtract(template, e);
            let snr = &residual.stamps.snr_difference.pixels;
            if t == 0 {
                stamps.extend(star_stamp(&e.raw, Some(snr), held_out));
            } else if passes_cut(snr) {
                later.push(realism::difference_features(snr));
            }
        }
    }
    (stamps, later)
}

/// Simulated constant stars (fluxes drawn from the real ones) against every epoch of the
/// real constant stars: science stamps, and the subtraction residuals that pass the cut.
///
/// A real residual is a later epoch subtracted from one of the star's first usable epochs,
/// each in turn (as many as the real-pixel templates are built from, `template_epochs`):
/// the stars' fields were observed on the same nights, so against the first epoch alone
/// every real residual would carry one night's template PSF, and the score would measure
/// the simulator against that night rather than against HiTS templates. That score is
/// reported too, as a diagnostic.
fn realism(
    pipeline: &Pipeline,
    conditions: &Conditions,
    sequences: &Path,
    out_dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<RealismReport, SimError> {
    let config = &pipeline.simulate.real_pixels;
    let objects = read_sequences(sequences)?;
    let roles = real_pixels::roles(&objects, config.held_out_fraction);
    let (measured, flux_correction) = real_pixels::measure_all(&objects, &roles, conditions);
    let mut real = Vec::new();
    let mut fluxes = Vec::new();
    let mut fwhm_ratios = Vec::new();
    let mut betas = Vec::new();
    let template_epochs = config.template_epochs.iter().max().map_or(1, |&k| k.max(1));
    // Detected residuals against the 2nd to last of those epochs, and whether held out.
    let mut later_templates: Vec<(FeatureVector, bool)> = Vec::new();
    let constant_stars = objects
        .iter()
        .zip(&roles)
        .zip(&measured)
        .filter(|((object, _), _)| object.class == ObjectClass::Constant);
    for ((_, role), exposures) in constant_stars {
        let held_out = *role == Role::HeldOut;
        let exposures: Vec<&Exposure> = exposures.iter().map(|(_, e)| e).collect();
        for e in &exposures {
            fluxes.push(e.flux.iter().sum::<f32>() / e.flux_unit);
            if !held_out {
                fwhm_ratios.push(f64::from(e.fwhm / e.conditions.fwhm_px()));
                betas.push(f64::from(e.beta));
            }
        }
        let (stamps, later) = real_star(&exposures, template_epochs, held_out);
        real.extend(stamps);
        later_templates.extend(later.into_iter().map(|features| (features, held_out)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(pipeline.seed);
    rng.set_stream(0x7265_616c);
    // As many simulated stars as real science stamps (at least 400) for the science stamps'
    // comparison; for the residuals', more where there are more real residuals.
    let science_stars = real.len().max(400);
    let real_residual_count =
        real.iter().filter(|s| s.residual.is_some()).count() + later_templates.len();
    let all_simulated: Vec<StarStamp> = (0..science_stars.max(real_residual_count))
        .filter_map(|_| {
            let flux = fluxes[rng.random_range(0..fluxes.len())];
            let stamps = crate::candidate::constant_star(conditions, flux, &mut rng);
            star_stamp(
                &stamps.science.pixels,
                Some(&stamps.snr_difference.pixels),
                false,
            )
        })
        .collect();

    let folds: Vec<bool> = real.iter().map(|s| s.held_out).collect();
    let features = |set: &[StarStamp]| set.iter().map(|s| s.features.clone()).collect::<Vec<_>>();
    let residuals = |set: &[StarStamp]| -> (Vec<FeatureVector>, Vec<bool>) {
        set.iter()
            .filter_map(|s| s.residual.clone().map(|r| (r, s.held_out)))
            .unzip()
    };
    let (first_template_residuals, first_template_folds) = residuals(&real);
    let (later_residuals, later_folds): (Vec<_>, Vec<_>) = later_templates.into_iter().unzip();
    let real_residuals = [first_template_residuals.as_slice(), &later_residuals].concat();
    let residual_folds = [first_template_folds.as_slice(), &later_folds].concat();
    let simulated = &all_simulated[..science_stars];
    let (sim_residuals, _) = residuals(&all_simulated);
    let (science_sim_residuals, _) = residuals(simulated);
    let scenes = vec![
        realism::scene_realism(
            "constant stars: science stamps",
            &features(simulated),
            &features(&real),
            &folds,
        ),
        realism::scene_realism(
            "constant stars: detected subtraction residuals (SNR-difference)",
            &sim_residuals,
            &real_residuals,
            &residual_folds,
        ),
        realism::scene_realism(
            "residuals, real templates: first epoch only (one night)",
            &science_sim_residuals,
            &first_template_residuals,
            &first_template_folds,
        ),
    ];

    type Get = fn(&StarStamp) -> Option<f64>;
    let quantities: [(&str, &str, Get); 5] = [
        ("sky level (ADU)", "star-sky.png", |s| Some(s.sky)),
        ("noise sigma (ADU)", "star-noise.png", |s| Some(s.noise)),
        ("PSF FWHM (px)", "star-fwhm.png", |s| s.fwhm),
        ("log10 peak SNR", "star-peak-snr.png", |s| {
            Some(s.peak_snr.max(1e-3).log10())
        }),
        ("centring offset (px)", "star-centring.png", |s| {
            Some(s.offset)
        }),
    ];
    let mut distances = Vec::new();
    for (quantity, file, get) in quantities {
        let sim: Vec<f64> = simulated.iter().filter_map(get).collect();
        let obs: Vec<f64> = real.iter().filter_map(get).collect();
        files.push(histogram(
            out_dir,
            file,
            quantity,
            "constant stars",
            &sim,
            &obs,
        )?);
        distances.push(QuantityDistance {
            scene: "constant stars: science stamps",
            quantity,
            simulated_median: median64(&sim),
            real_median: median64(&obs),
            ks: realism::ks_distance(&sim, &obs),
        });
    }
    let gallery = out_dir.join("residuals-real-vs-sim.png");
    let pick = |set: &[StarStamp], k: usize| -> Vec<Vec<f32>> {
        set.iter()
            .filter_map(|s| s.snr_difference.clone())
            .skip(k * 7)
            .step_by(7)
            .take(GALLERY_ROWS * 2)
            .collect()
    };
    let (real_pick, sim_pick) = (pick(&real, 0), pick(simulated, 0));
    let panels: Vec<StampPanel> = (0..GALLERY_ROWS)
        .filter(|&row| 2 * row + 1 < real_pick.len() && 2 * row + 1 < sim_pick.len())
        .map(|row| StampPanel {
            caption: "constant-star SNR-difference: real (left), simulated (right)".into(),
            channels: [
                real_pick[2 * row].clone(),
                real_pick[2 * row + 1].clone(),
                sim_pick[2 * row].clone(),
                sim_pick[2 * row + 1].clone(),
            ],
        })
        .collect();
    plots::stamp_gallery(
        &gallery,
        "detected constant-star residuals (SNR-difference): real HiTS 2015 vs simulated",
        ["real", "real", "simulated", "simulated"],
        &panels,
    )?;
    files.push(gallery);
    let detected = |set: &[StarStamp]| {
        set.iter().filter(|s| s.residual.is_some()).count() as f64 / set.len().max(1) as f64
    };
    fwhm_ratios.sort_by(f64::total_cmp);
    let percentile = |p: f64| fwhm_ratios[((fwhm_ratios.len() - 1) as f64 * p) as usize];
    let report = RealismReport {
        scenes,
        distances,
        detected_fraction_simulated: detected(simulated),
        detected_fraction_real: detected(&real),
        fwhm_per_seeing_percentiles: [percentile(0.1), percentile(0.5), percentile(0.9)],
        median_beta: median64(&betas),
        flux_correction: flux_correction.knots().to_vec(),
    };
    let json = out_dir.join("realism.json");
    hits_core::io::write_json_atomic(&json, &report)?;
    files.push(json);
    Ok(report)
}

/// `<out_dir>/<file>`: histograms of `quantity` on simulated and real stamps of `what`.
fn histogram(
    out_dir: &Path,
    file: &str,
    quantity: &str,
    what: &str,
    simulated: &[f64],
    real: &[f64],
) -> Result<PathBuf, SimError> {
    let path = out_dir.join(file);
    plots::histograms(
        &path,
        &format!("{quantity}: simulated vs real {what}"),
        quantity,
        &[("simulated", simulated), ("real HiTS 2015", real)],
        30,
        true,
    )?;
    Ok(path)
}

fn median64(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Panel rows of the side-by-side gallery: two real and two simulated science stamps each.
const GALLERY_ROWS: usize = 10;

/// Simulate `count` candidates, measure them and the real stamps, and write the gallery and
/// histograms into `out_dir`.
pub fn run(
    pipeline: &Pipeline,
    real_path: &Path,
    sequences: Option<&Path>,
    out_dir: &Path,
    count: usize,
) -> Result<CheckReport, SimError> {
    let real = read_real_stamps(real_path)?;
    let conditions = Conditions::embedded()?;
    let simulated = simulate_split(
        pipeline,
        &conditions,
        CandidateSet::Check,
        count,
        &ProgressBar::hidden(),
    )?;
    let real_stats: Vec<StampStats> = real.iter().filter_map(|s| stamp_stats(&s.pixels)).collect();
    let sim_stats: Vec<StampStats> = simulated
        .iter()
        .filter_map(|c| stamp_stats(&c.stamps.science.pixels))
        .collect();

    let mut files = Vec::new();
    let gallery = out_dir.join("science-real-vs-sim.png");
    plots::stamp_gallery(
        &gallery,
        "science stamps: real HiTS 2015 (left) vs simulated (right)",
        ["real", "real", "simulated", "simulated"],
        &side_by_side(&real, &simulated),
    )?;
    files.push(gallery);
    let candidates = out_dir.join("sim-candidates.png");
    let panels: Vec<StampPanel> = simulated
        .iter()
        .take(16)
        .map(|c| StampPanel {
            caption: format!(
                "{} label {} {} SNR {:.1}",
                c.id,
                c.label,
                c.truth.kind.name(),
                c.truth.centre_snr
            ),
            channels: c.stamps.channels().map(|i| i.pixels.clone()),
        })
        .collect();
    plots::stamp_gallery(
        &candidates,
        "simulated candidates",
        hits_core::Channel::ALL.map(|c| c.name()),
        &panels,
    )?;
    files.push(candidates);

    let mut comparisons = Vec::new();
    type Measure = fn(&StampStats) -> Option<f32>;
    let quantities: [(&'static str, &str, Measure); 3] = [
        ("sky level (ADU)", "sky.png", |s| Some(s.sky)),
        ("noise sigma (ADU)", "noise.png", |s| Some(s.noise)),
        ("PSF FWHM (px)", "fwhm.png", |s| s.fwhm),
    ];
    for (quantity, file, get) in quantities {
        let sim: Vec<f64> = sim_stats.iter().filter_map(get).map(f64::from).collect();
        let real: Vec<f64> = real_stats.iter().filter_map(get).map(f64::from).collect();
        files.push(histogram(
            out_dir,
            file,
            quantity,
            "science stamps",
            &sim,
            &real,
        )?);
        let med = |v: &[f64]| {
            if v.is_empty() {
                f32::NAN
            } else {
                median(&mut v.iter().map(|x| *x as f32).collect::<Vec<_>>())
            }
        };
        comparisons.push(Comparison {
            quantity,
            simulated: med(&sim),
            real: med(&real),
            simulated_n: sim.len(),
            real_n: real.len(),
        });
    }
    let realism = sequences
        .map(|path| realism(pipeline, &conditions, path, out_dir, &mut files))
        .transpose()?;
    Ok(CheckReport {
        comparisons,
        realism,
        files,
    })
}

/// Rows of two real then two simulated science stamps; simulated ones with a bright central
/// source come first so they can be compared with the real stars.
fn side_by_side(real: &[RealStamp], simulated: &[Candidate]) -> Vec<StampPanel> {
    let mut sims: Vec<&Candidate> = simulated.iter().collect();
    sims.sort_by_key(|c| {
        stamp_stats(&c.stamps.science.pixels)
            .and_then(|s| s.fwhm)
            .is_none()
    });
    (0..GALLERY_ROWS)
        .filter(|&row| 2 * row + 1 < real.len() && 2 * row + 1 < sims.len())
        .map(|row| {
            let (r1, r2) = (&real[2 * row], &real[2 * row + 1]);
            let (s1, s2) = (sims[2 * row], sims[2 * row + 1]);
            StampPanel {
                caption: format!(
                    "{} ({}), {} ({})  |  {}, {}",
                    short(&r1.name),
                    r1.class,
                    short(&r2.name),
                    r2.class,
                    s1.truth.kind.name(),
                    s2.truth.kind.name()
                ),
                channels: [
                    r1.pixels.clone(),
                    r2.pixels.clone(),
                    s1.stamps.science.pixels.clone(),
                    s2.stamps.science.pixels.clone(),
                ],
            }
        })
        .collect()
}

fn short(name: &str) -> &str {
    &name[..name.len().min(18)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_recover_sky_noise_and_fwhm_and_skip_sentinels() {
        use crate::psf::Moffat;
        use crate::render::{Image, observe};
        use rand::SeedableRng;
        let mut model = Image::new(STAMP_SIDE);
        // Bright enough for a FWHM (peak ≈ 360 ADU ≈ 60 σ), faint enough that its Moffat wings
        // raise the outer pixels by only a few ADU.
        model.add_point_source(&Moffat::new(5.0, 4.5), 0.0, 0.0, 15_000.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let (mut seen, variance) = observe(&model, 120.0, &mut rng);
        seen.pixels[0] = -9999.0;
        seen.pixels[20] = 1e8;
        let stats = stamp_stats(&seen.pixels).unwrap();
        assert!((stats.sky - 120.0).abs() < 8.0, "{stats:?}");
        assert!(
            (stats.noise / variance.pixels[0].sqrt() - 1.0).abs() < 0.25,
            "{stats:?}"
        );
        let fwhm = stats.fwhm.unwrap();
        assert!((4.0..6.0).contains(&fwhm), "{fwhm}");
    }

    /// A shipped constant star: against the first epoch only, every later epoch gives its
    /// science stamp and no other residual; with three template epochs the same stamps, and
    /// the detected residuals against the second and third epochs besides.
    #[test]
    fn real_residuals_come_from_each_template_epoch() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/hits2015/real_science_sequences.csv");
        let star: Vec<_> = read_sequences(&path)
            .unwrap()
            .into_iter()
            .filter(|o| o.name == "Blind15A_04_N12_365_1704_g")
            .collect();
        assert_eq!(star.len(), 1);
        let conditions = Conditions::embedded().unwrap();
        let (measured, _) = real_pixels::measure_all(&star, &[Role::Calibration], &conditions);
        let exposures: Vec<&Exposure> = measured[0].iter().map(|(_, e)| e).collect();
        assert!(exposures.len() > 5, "{} epochs", exposures.len());
        let features = |stamps: &[StarStamp]| -> Vec<FeatureVector> {
            stamps.iter().map(|s| s.features.clone()).collect()
        };
        let (first, none) = real_star(&exposures, 1, false);
        assert!(none.is_empty());
        assert_eq!(first.len(), exposures.len() - 1);
        let (same, later) = real_star(&exposures, 3, false);
        assert_eq!(features(&same), features(&first));
        let expected: Vec<FeatureVector> = (1..3)
            .flat_map(|t| exposures[t + 1..].iter().map(move |e| (t, e)))
            .map(|(t, e)| real_pixels::subtract::subtract(exposures[t], e))
            .map(|r| r.stamps.snr_difference.pixels)
            .filter(|snr| passes_cut(snr))
            .map(|snr| realism::difference_features(&snr))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(later, expected);
    }

    #[test]
    fn real_stamps_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/hits2015/real_science_stamps.csv");
        let stamps = read_real_stamps(&path).unwrap();
        assert!(stamps.len() > 50);
        assert!(stamps.iter().all(|s| s.pixels.len() == STAMP_PIXELS));
    }
}
