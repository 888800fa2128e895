//! `simulate`: write the simulated HiTS candidates (`generate`, the default) or render the
//! realism check against real HiTS 2015 stamps (`check`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hits_core::Pipeline;
use hits_core::Stage;
use hits_core::stage::{DEFAULT_PIPELINE, StageArgs};

#[derive(Parser)]
#[command(about = "HiTS stamp simulator calibrated to real HiTS 2015 observing conditions")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate the train and test splits of `[simulate]` (the default).
    Generate {
        #[command(flatten)]
        stage: StageArgs,
        /// Do nothing unless one of the pipeline's splits reads from `[simulate] out_dir`
        /// (so `just ingest mine` on your own CSVs never simulates).
        #[arg(long)]
        if_used: bool,
    },
    /// Compare simulated science stamps with real ones: PNGs and a table of medians.
    Check {
        #[arg(long, default_value = DEFAULT_PIPELINE)]
        pipeline: PathBuf,
        /// Real HiTS 2015 science stamps.
        #[arg(long, default_value = "data/hits2015/real_science_stamps.csv")]
        real: PathBuf,
        /// Every epoch of real objects, for the realism score (default: the pipeline's
        /// `[simulate.real_pixels] sequences`; none there: no realism score).
        #[arg(long)]
        sequences: Option<PathBuf>,
        /// Output directory (default: `<artifacts>/sim-check`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Simulated candidates to compare.
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    hits_core::run_main(run)
}

fn run() -> anyhow::Result<()> {
    let command = Cli::parse().command.unwrap_or(Command::Generate {
        stage: StageArgs::default(),
        if_used: false,
    });
    match command {
        Command::Generate { stage, if_used } => {
            let pipeline = stage.load()?;
            let out = &pipeline.simulate.out_dir;
            if if_used && !simulator::feeds_a_split(&pipeline) {
                return Ok(());
            }
            let inputs = simulator::input_files(&pipeline);
            if hits_core::stage::skip_if_up_to_date(
                &pipeline,
                simulator::STAGE,
                out,
                &inputs,
                stage.force,
            ) {
                return Ok(());
            }
            let summary = simulator::generate(&pipeline).context("simulation failed")?;
            for file in &summary.files {
                tracing::info!(file = %file.display(), "wrote");
            }
            println!(
                "simulated {} candidates in {:.2} s: {:.0} candidates/s (CSV writing excluded)",
                summary.candidates,
                summary.simulation_seconds,
                summary.candidates_per_second()
            );
            if let Some(real) = &summary.real_pixels {
                let objects = |role| {
                    real.objects
                        .iter()
                        .filter(|((r, _), _)| *r == role)
                        .map(|((_, class), n)| format!("{n} {}", class.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let kinds = |counts: &std::collections::BTreeMap<&str, usize>| {
                    counts
                        .iter()
                        .map(|(kind, n)| format!("{n} {kind}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                use simulator::real_pixels::Role;
                println!(
                    "real pixels: calibration objects ({}) -> {}{}",
                    objects(Role::Calibration),
                    kinds(&real.calibration),
                    if pipeline.simulate.real_pixels.train {
                        " (in the train split)"
                    } else {
                        " (not trained on)"
                    }
                );
                println!(
                    "real pixels: held-out objects ({}) -> {} in {}",
                    objects(Role::HeldOut),
                    kinds(&real.held_out),
                    out.join(simulator::REAL_HOLDOUT_DIR).display()
                );
                if real.unusable_epochs > 0 {
                    println!(
                        "real pixels: {} epochs left out (masked pixels or no conditions row)",
                        real.unusable_epochs
                    );
                }
            }
        }
        Command::Check {
            pipeline,
            real,
            sequences,
            out,
            count,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let out = out.unwrap_or_else(|| pipeline.stage_dir(Stage::SimCheck));
            let sequences = sequences.or_else(|| simulator::input_files(&pipeline).pop());
            let report = simulator::check::run(&pipeline, &real, sequences.as_deref(), &out, count)
                .context("realism check failed")?;
            println!(
                "{:<20} {:>14} {:>14}",
                "median of", "simulated", "real HiTS 2015"
            );
            for c in &report.comparisons {
                println!(
                    "{:<20} {:>9.2} (n={:<4}) {:>7.2} (n={})",
                    c.quantity, c.simulated, c.simulated_n, c.real, c.real_n
                );
            }
            if let Some(realism) = &report.realism {
                println!(
                    "\nrealism (simulated vs real constant stars; held-out objects score the classifier):"
                );
                for scene in &realism.scenes {
                    println!(
                        "  {:<66} classifier ROC AUC {:.3}, orientation-free {:.3} (0.5 = indistinguishable; {} simulated, {} real)",
                        scene.scene,
                        scene.classifier_auc,
                        scene.orientation_free_auc,
                        scene.simulated,
                        scene.real
                    );
                }
                for d in &realism.distances {
                    println!(
                        "  {:<22} median simulated {:>8.3}  real {:>8.3}  KS {:.3}",
                        d.quantity, d.simulated_median, d.real_median, d.ks
                    );
                }
                println!(
                    "  subtractions that pass the detection cut: simulated {:.3}, real {:.3}",
                    realism.detected_fraction_simulated, realism.detected_fraction_real
                );
                let [p10, p50, p90] = realism.fwhm_per_seeing_percentiles;
                println!(
                    "  calibration objects' PSF: FWHM / seeing {p10:.3} / {p50:.3} / {p90:.3} (10/50/90%), median Moffat beta {:.2}",
                    realism.median_beta
                );
                let knots: Vec<String> = realism
                    .flux_correction
                    .iter()
                    .map(|(fwhm, factor)| format!("{factor:.3} at {fwhm:.1} px"))
                    .collect();
                println!(
                    "  zero-point flux correction (PSF flux / predicted): {}",
                    knots.join(", ")
                );
            }
            for file in &report.files {
                println!("wrote {}", file.display());
            }
        }
    }
    Ok(())
}
