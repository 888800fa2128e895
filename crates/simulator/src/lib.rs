//! HiTS stamp simulator calibrated to the real HiTS 2015 observing conditions.
//!
//! Each candidate draws a real template/science epoch pair of one field, renders a scene
//! (a new point source, a host galaxy, a variable star, or one of the bogus artefacts) with
//! Moffat PSFs, sky, Poisson and read noise and saturation, and subtracts the images as the
//! HiTS pipeline did. Every candidate passes a detection cut near the centre, so brightness
//! alone does not tell real from bogus.

pub mod candidate;
pub mod check;
pub mod conditions;
pub mod error;
pub mod kind;
pub mod psf;
pub mod real_pixels;
pub mod realism;
pub mod render;
mod scene;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hits_core::Stage;
use hits_core::config::TRUTH_FILE;
use hits_core::digest::FileDigest;
use hits_core::manifest::Manifest;
use hits_core::{Channel, Pipeline};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub use candidate::{Stamps, Truth};
pub use conditions::Conditions;
pub use error::SimError;
pub use kind::Kind;

/// The stage name in manifests and skip messages.
pub const STAGE: Stage = Stage::Simulate;

/// Which set of candidates; part of every candidate's random stream and of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateSet {
    Train,
    Test,
    /// Candidates drawn only for `simulate check`.
    Check,
}

impl CandidateSet {
    pub fn name(self) -> &'static str {
        match self {
            CandidateSet::Train => "train",
            CandidateSet::Test => "test",
            CandidateSet::Check => "check",
        }
    }

    fn stream(self) -> u64 {
        (self as u64 + 1) << 32
    }
}

/// One simulated candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `<split>-<6-digit index from 1>`, unique across splits.
    pub id: String,
    pub label: u8,
    pub stamps: Stamps,
    pub truth: Truth,
}

/// A generator independent of thread scheduling: candidate `index` of `split` always uses
/// the same ChaCha stream of `seed`.
fn rng_for(seed: u64, split: CandidateSet, index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(split.stream() | u64::from(index));
    rng
}

/// Labels of a split: exactly round(n · real_fraction) reals, in a seeded random order.
fn split_labels(seed: u64, split: CandidateSet, n: usize, real_fraction: f64) -> Vec<u8> {
    let reals = (n as f64 * real_fraction).round() as usize;
    let mut labels: Vec<u8> = (0..n).map(|i| u8::from(i < reals)).collect();
    let mut rng = rng_for(seed, split, u32::MAX);
    for i in (1..n).rev() {
        labels.swap(i, rng.random_range(0..=i));
    }
    labels
}

/// Simulate `n` candidates of `split` in parallel; `progress` advances once per candidate.
pub fn simulate_split(
    pipeline: &Pipeline,
    conditions: &Conditions,
    split: CandidateSet,
    n: usize,
    progress: &ProgressBar,
) -> Result<Vec<Candidate>, SimError> {
    let config = &pipeline.simulate;
    if n >= u32::MAX as usize {
        return Err(SimError::Config(format!(
            "{n} candidates is too many for one split"
        )));
    }
    let labels = split_labels(pipeline.seed, split, n, config.real_fraction);
    labels
        .par_iter()
        .enumerate()
        .map(|(i, &label)| {
            let mut rng = rng_for(pipeline.seed, split, i as u32);
            let kind = Kind::sample(label, &config.real_mix, &config.bogus_mix, &mut rng);
            let (stamps, truth) = candidate::simulate(kind, conditions, &mut rng)?;
            progress.inc(1);
            Ok(Candidate {
                id: format!("{}-{:06}", split.name(), i + 1),
                label,
                stamps,
                truth,
            })
        })
        .collect()
}

/// The split directory (under `[simulate] out_dir`) of the held-out real-pixel candidates.
pub const REAL_HOLDOUT_DIR: &str = "real_holdout";

/// What [`generate`] wrote and how fast it simulated.
#[derive(Debug)]
pub struct Summary {
    pub files: Vec<PathBuf>,
    pub candidates: usize,
    pub simulation_seconds: f64,
    /// Real-pixel candidates added to the train split, and held out.
    pub real_pixels: Option<RealPixelCounts>,
}

/// How many real-pixel candidates [`generate`] wrote, by role and kind.
#[derive(Debug)]
pub struct RealPixelCounts {
    pub calibration: BTreeMap<&'static str, usize>,
    pub held_out: BTreeMap<&'static str, usize>,
    pub objects: BTreeMap<(real_pixels::Role, real_pixels::ObjectClass), usize>,
    pub unusable_epochs: usize,
}

fn count_kinds(candidates: &[Candidate]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for c in candidates {
        *counts.entry(c.truth.kind.name()).or_default() += 1;
    }
    counts
}

impl Summary {
    pub fn candidates_per_second(&self) -> f64 {
        self.candidates as f64 / self.simulation_seconds.max(1e-9)
    }
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>5} [{bar:40}] {pos}/{len} candidates ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Simulate the train and test splits of `pipeline.simulate` and write them under `out_dir`:
/// channel CSVs, `train/labels.csv` and `train/truth.csv`, the answer key `test_labels.csv` and
/// `test_truth.csv` (kept outside `test/`),
/// the configuration used and a manifest of the outputs.
pub fn generate(pipeline: &Pipeline) -> Result<Summary, SimError> {
    let config = &pipeline.simulate;
    let conditions = Conditions::embedded()?;
    let out = &config.out_dir;
    let mut files = Vec::new();
    // Digests of the files written, taken while writing them.
    let mut digests = Vec::new();
    let mut simulation_seconds = 0.0;
    let total = config.train_candidates + config.test_candidates;
    let started = std::time::Instant::now();
    let real = real_pixel_sets(pipeline, &conditions)?;
    simulation_seconds += started.elapsed().as_secs_f64();
    let bar = progress_bar(total);
    for (split, n) in [
        (CandidateSet::Train, config.train_candidates),
        (CandidateSet::Test, config.test_candidates),
    ] {
        bar.set_message(split.name());
        let started = std::time::Instant::now();
        let mut candidates = simulate_split(pipeline, &conditions, split, n, &bar)?;
        simulation_seconds += started.elapsed().as_secs_f64();
        if let (CandidateSet::Train, Some(real)) = (split, &real)
            && config.real_pixels.train
        {
            candidates.extend(real.calibration.iter().cloned());
        }
        let dir = out.join(split.name());
        // The test answer key and truth (which holds labels too) stay outside the test directory.
        let (labels, truth) = match split {
            CandidateSet::Train => (dir.join(&pipeline.data.files.labels), dir.join(TRUTH_FILE)),
            _ => (pipeline.simulate.answer_key(), out.join("test_truth.csv")),
        };
        write_split(
            pipeline,
            &dir,
            &candidates,
            &labels,
            &truth,
            &mut files,
            &mut digests,
        )?;
        let reals = candidates.iter().filter(|c| c.label == 1).count();
        tracing::info!(split = split.name(), candidates = candidates.len(), reals, dir = %dir.display(), "wrote split");
    }
    bar.finish();
    if let Some(real) = &real {
        let dir = out.join(REAL_HOLDOUT_DIR);
        let (labels, truth) = (dir.join(&pipeline.data.files.labels), dir.join(TRUTH_FILE));
        write_split(
            pipeline,
            &dir,
            &real.held_out,
            &labels,
            &truth,
            &mut files,
            &mut digests,
        )?;
    }
    let config = pipeline.write_used(out)?;
    digests.push(FileDigest::of(&config)?);
    files.push(config);
    write_manifest(pipeline, out, digests)?;
    Ok(Summary {
        files,
        candidates: total,
        simulation_seconds,
        real_pixels: real.map(|r| RealPixelCounts {
            calibration: count_kinds(&r.calibration),
            held_out: count_kinds(&r.held_out),
            objects: r.objects,
            unusable_epochs: r.unusable_epochs,
        }),
    })
}

/// Whether any of the pipeline's splits reads the simulator's output directory.
pub fn feeds_a_split(pipeline: &Pipeline) -> bool {
    let out = &pipeline.simulate.out_dir;
    pipeline
        .data
        .splits
        .values()
        .any(|split| split.dir.starts_with(out))
}

/// The files [`generate`] reads besides its embedded tables: the real-pixel sequences, if any.
pub fn input_files(pipeline: &Pipeline) -> Vec<PathBuf> {
    let sequences = &pipeline.simulate.real_pixels.sequences;
    if sequences.as_os_str().is_empty() {
        Vec::new()
    } else {
        vec![sequences.clone()]
    }
}

/// The real-pixel candidates `[simulate.real_pixels]` asks for, if it names a sequences file.
fn real_pixel_sets(
    pipeline: &Pipeline,
    conditions: &Conditions,
) -> Result<Option<real_pixels::RealPixelSets>, SimError> {
    let config = &pipeline.simulate.real_pixels;
    if config.sequences.as_os_str().is_empty() {
        return Ok(None);
    }
    let objects = real_pixels::read_sequences(&config.sequences)?;
    Ok(Some(real_pixels::build(
        config,
        &objects,
        conditions,
        pipeline.seed,
    )))
}

/// The four channel CSVs of `candidates` into `dir`, their labels and truth.
fn write_split(
    pipeline: &Pipeline,
    dir: &Path,
    candidates: &[Candidate],
    labels: &Path,
    truth: &Path,
    files: &mut Vec<PathBuf>,
    digests: &mut Vec<FileDigest>,
) -> Result<(), SimError> {
    for channel in Channel::ALL {
        let path = dir.join(pipeline.data.files.channel(channel));
        digests.push(writer::write_channel(&path, candidates, channel.index())?);
        files.push(path);
    }
    digests.push(writer::write_labels(labels, candidates)?);
    digests.push(writer::write_truth(truth, candidates)?);
    files.extend([labels.to_path_buf(), truth.to_path_buf()]);
    Ok(())
}

fn write_manifest(
    pipeline: &Pipeline,
    out: &Path,
    digests: Vec<FileDigest>,
) -> Result<(), SimError> {
    let mut manifest = Manifest::new(STAGE, env!("CARGO_PKG_VERSION"), pipeline);
    for input in input_files(pipeline) {
        manifest.add_input(&input)?;
    }
    for digest in digests {
        manifest.add_output_digest(digest);
    }
    manifest.write(out, hits_core::stage::elapsed_seconds())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(seed: u64, dir: &Path, train: usize, test: usize, real_fraction: f64) -> Pipeline {
        let mut p = Pipeline {
            seed,
            ..Pipeline::default()
        };
        p.simulate.out_dir = dir.to_path_buf();
        p.simulate.train_candidates = train;
        p.simulate.test_candidates = test;
        p.simulate.real_fraction = real_fraction;
        p.simulate.real_pixels.sequences = PathBuf::new();
        p
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn same_seed_same_bytes_other_seed_different() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        for (dir, seed) in dirs.iter().zip([7, 7, 8]) {
            generate(&tiny(seed, dir.path(), 24, 10, 0.5)).unwrap();
        }
        for file in [
            "train/difference.csv",
            "train/labels.csv",
            "test/snr_difference.csv",
            "test_labels.csv",
        ] {
            let [a, b, c] = [0, 1, 2].map(|i| read(&dirs[i].path().join(file)));
            assert_eq!(a, b, "{file} differs for the same seed");
            if file.ends_with("difference.csv") {
                assert_ne!(a, c, "{file} identical for another seed");
            }
        }
    }

    #[test]
    fn csv_layout_has_header_ids_and_442_columns() {
        let dir = tempfile::tempdir().unwrap();
        generate(&tiny(1, dir.path(), 12, 6, 0.5)).unwrap();
        let mut ids = std::collections::HashSet::new();
        for (split, n) in [("train", 12), ("test", 6)] {
            for channel in Channel::ALL {
                let text = read(
                    &dir.path()
                        .join(split)
                        .join(format!("{}.csv", channel.name())),
                );
                let mut lines = text.lines();
                let header: Vec<&str> = lines.next().unwrap().split(',').collect();
                assert_eq!(header.len(), 442);
                assert_eq!((header[0], header[1], header[441]), ("id", "p0", "p440"));
                let rows: Vec<&str> = lines.collect();
                assert_eq!(rows.len(), n);
                for (i, row) in rows.iter().enumerate() {
                    let cells: Vec<&str> = row.split(',').collect();
                    assert_eq!(cells.len(), 442);
                    assert_eq!(cells[0], format!("{split}-{:06}", i + 1));
                    assert!(
                        cells[1..]
                            .iter()
                            .all(|c| c.parse::<f32>().is_ok_and(f32::is_finite)),
                        "{row}"
                    );
                    ids.insert(cells[0].to_string());
                }
            }
        }
        assert_eq!(ids.len(), 18, "ids not unique across splits");
        assert!(
            !dir.path().join("test/labels.csv").exists(),
            "test labels must stay apart"
        );
        assert_eq!(read(&dir.path().join("test_labels.csv")).lines().count(), 7);
        assert!(read(&dir.path().join("train/labels.csv")).starts_with("id,label\ntrain-000001,"));
        assert!(
            dir.path().join("pipeline.toml").exists() && dir.path().join("manifest.json").exists()
        );
    }

    #[test]
    fn labels_follow_real_fraction_and_kinds_match_labels() {
        let conditions = Conditions::embedded().unwrap();
        for fraction in [0.5, 0.3] {
            let mut p = Pipeline::default();
            p.simulate.real_fraction = fraction;
            let candidates = simulate_split(
                &p,
                &conditions,
                CandidateSet::Check,
                60,
                &ProgressBar::hidden(),
            )
            .unwrap();
            let reals = candidates.iter().filter(|c| c.label == 1).count();
            assert_eq!(reals, (60.0 * fraction).round() as usize);
            for c in &candidates {
                assert_eq!(c.label, c.truth.kind.label(), "{}", c.id);
                assert!(
                    c.stamps.passes_detection() && c.truth.centre_snr.abs() >= 5.0,
                    "{} {}",
                    c.id,
                    c.truth.centre_snr
                );
            }
            // The order is shuffled, not all reals first.
            assert!(candidates[..reals].iter().any(|c| c.label == 0));
        }
    }

    /// Two real objects (a constant star and an RR Lyrae) of the shipped sequences: with
    /// everything held out, their candidates form `real_holdout/` and stay out of `train/`.
    #[test]
    fn real_pixel_candidates_are_written_apart_from_the_train_split() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = read(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/hits2015/real_science_sequences.csv"),
        );
        let mut lines = shipped.lines();
        let mut text = format!("{}\n", lines.next().unwrap());
        for line in lines.filter(|l| {
            l.starts_with("Blind15A_04_N16_183_3343_g,")
                || l.starts_with("Blind15A_04_N12_365_1704_g,")
        }) {
            text += line;
            text += "\n";
        }
        let sequences = dir.path().join("sequences.csv");
        std::fs::write(&sequences, text).unwrap();
        let mut p = tiny(3, &dir.path().join("sim"), 10, 4, 0.5);
        p.simulate.real_pixels.sequences = sequences.clone();
        p.simulate.real_pixels.template_epochs = vec![3];
        // Both objects are the only ones of their class: a fraction above 0.5 holds them out.
        p.simulate.real_pixels.held_out_fraction = 0.9;
        let summary = generate(&p).unwrap();
        let held = summary.real_pixels.unwrap();
        assert!(held.calibration.is_empty(), "{:?}", held.calibration);
        assert!(
            held.held_out["real_constant_star"] > 0,
            "{:?}",
            held.held_out
        );
        let train_labels = read(&dir.path().join("sim/train/labels.csv"));
        assert_eq!(
            train_labels.lines().count(),
            11,
            "only the simulated candidates"
        );
        let truth = read(&dir.path().join("sim/real_holdout/truth.csv"));
        assert!(truth.lines().next().unwrap().ends_with(",object"));
        let rows: Vec<&str> = truth.lines().skip(1).collect();
        assert_eq!(rows.len(), held.held_out.values().sum::<usize>());
        assert!(
            rows.iter()
                .all(|r| r.starts_with("rp-Blind15A_04_N1") && r.ends_with("_g")),
            "{rows:?}"
        );
        let labels = read(&dir.path().join("sim/real_holdout/labels.csv"));
        assert_eq!(labels.lines().count(), rows.len() + 1);
        // The manifest names the sequences file as an input, so a changed file re-simulates.
        let manifest = read(&dir.path().join("sim/manifest.json"));
        assert!(manifest.contains("sequences.csv"), "{manifest}");
    }

    #[test]
    fn only_pipelines_reading_the_simulation_need_it() {
        let mut p = Pipeline::default();
        assert!(feeds_a_split(&p));
        for split in p.data.splits.values_mut() {
            split.dir = "my/own/csvs".into();
        }
        assert!(!feeds_a_split(&p));
    }
}
