//! Real HiTS 2015 observing conditions, embedded so the simulator needs no external file.

use std::path::Path;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::error::SimError;

const CONDITIONS_CSV: &str = include_str!("../../../data/hits2015/observing_conditions.csv");

/// DECam camera constants (HiTS_simulations).
pub const GAIN_E_PER_ADU: f32 = 4.1;
pub const READ_NOISE_E: f32 = 6.1;
pub const SATURATION_ADU: f32 = 40_000.0;
pub const PIXEL_SCALE_ARCSEC: f32 = 0.27;

/// Epochs seeing worse than this are dropped: their PSF is wider than half the stamp and
/// HiTS' own pipeline discarded such frames.
const MAX_SEEING_ARCSEC: f32 = 3.0;

/// One real g-band exposure of a HiTS field.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub field: String,
    pub epoch: u32,
    /// Modified Julian date of the exposure.
    pub mjd: f64,
    pub exp_time_s: f32,
    pub seeing_arcsec: f32,
    pub sky_adu: f32,
    /// Magnitude of a source giving 1 ADU per second.
    pub zero_point: f32,
}

impl Epoch {
    /// PSF FWHM in pixels.
    pub fn fwhm_px(&self) -> f32 {
        self.seeing_arcsec / PIXEL_SCALE_ARCSEC
    }

    /// ADU of a magnitude-25 source in this exposure.
    pub fn flux_unit(&self) -> f32 {
        self.exp_time_s * 10f32.powf(0.4 * (self.zero_point - 25.0))
    }

    /// Magnitude of a source of `flux` ADU in this exposure.
    pub fn magnitude(&self, flux: f32) -> f32 {
        self.zero_point - 2.5 * (flux / self.exp_time_s).log10()
    }

    /// Per-pixel noise of empty sky in ADU: Poisson sky plus read noise.
    pub fn sky_sigma_adu(&self) -> f32 {
        pixel_variance(self.sky_adu).sqrt()
    }
}

/// Variance in ADU² of a pixel holding `level_adu` (sky included): Poisson (in electrons)
/// plus read noise. At these counts (> 100 ADU = 400 e-) a Gaussian of this variance is an
/// excellent approximation of the Poisson distribution.
pub fn pixel_variance(level_adu: f32) -> f32 {
    level_adu.max(0.0) / GAIN_E_PER_ADU + (READ_NOISE_E / GAIN_E_PER_ADU).powi(2)
}

/// The g-band epochs, grouped by field so template and science come from the same field.
#[derive(Debug, Clone)]
pub struct Conditions {
    pub epochs: Vec<Epoch>,
    /// Indices into `epochs`, one list per field with at least two epochs.
    fields: Vec<Vec<usize>>,
}

/// A template and a science exposure of one field.
#[derive(Debug, Clone, Copy)]
pub struct EpochPair<'a> {
    pub template: &'a Epoch,
    pub science: &'a Epoch,
}

impl Conditions {
    /// The embedded `data/hits2015/observing_conditions.csv`.
    pub fn embedded() -> Result<Self, SimError> {
        Self::parse(
            CONDITIONS_CSV,
            Path::new("data/hits2015/observing_conditions.csv"),
        )
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, SimError> {
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines
            .next()
            .map(|(_, l)| l.split(',').collect())
            .unwrap_or_default();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| SimError::Parse {
                    path: origin.into(),
                    line: 1,
                    message: format!("missing column '{name}'"),
                })
        };
        let [field, epoch, mjd, filter, exp_time, seeing, sky, zp] = [
            "field",
            "epoch",
            "mjd",
            "filter",
            "exp_time_s",
            "seeing_arcsec",
            "sky_adu",
            "zero_point",
        ]
        .map(column);
        let (field, epoch, mjd, filter, exp_time, seeing, sky, zp) =
            (field?, epoch?, mjd?, filter?, exp_time?, seeing?, sky?, zp?);
        let mut epochs = Vec::new();
        for (i, line) in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let bad = |message: String| SimError::Parse {
                path: origin.into(),
                line: i + 1,
                message,
            };
            let cell = |c: usize| {
                cells
                    .get(c)
                    .copied()
                    .ok_or_else(|| bad(format!("only {} columns", cells.len())))
            };
            let number = |c: usize| -> Result<f32, SimError> {
                let text = cell(c)?;
                text.parse::<f32>()
                    .map_err(|e| bad(format!("'{text}': {e}")))
            };
            if cell(filter)? != "g" {
                continue;
            }
            let e = Epoch {
                field: cell(field)?.to_string(),
                epoch: number(epoch)? as u32,
                mjd: cell(mjd)?
                    .parse::<f64>()
                    .map_err(|e| bad(format!("mjd '{}': {e}", cell(mjd).unwrap_or_default())))?,
                exp_time_s: number(exp_time)?,
                seeing_arcsec: number(seeing)?,
                sky_adu: number(sky)?,
                zero_point: number(zp)?,
            };
            let usable = e.seeing_arcsec.is_finite() && e.seeing_arcsec <= MAX_SEEING_ARCSEC;
            if usable && e.sky_adu > 0.0 && e.zero_point.is_finite() && e.exp_time_s > 0.0 {
                epochs.push(e);
            }
        }
        let mut names: Vec<&str> = epochs.iter().map(|e| e.field.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let fields: Vec<Vec<usize>> = names
            .iter()
            .map(|name| {
                (0..epochs.len())
                    .filter(|&i| epochs[i].field == *name)
                    .collect::<Vec<_>>()
            })
            .filter(|members| members.len() >= 2)
            .collect();
        if fields.is_empty() {
            return Err(SimError::Parse {
                path: origin.into(),
                line: 1,
                message: "no field has two usable g-band epochs".into(),
            });
        }
        Ok(Conditions { epochs, fields })
    }

    /// A science epoch and a template of the same field; like HiTS, the template usually
    /// (80%) has the better seeing.
    pub fn sample_pair(&self, rng: &mut ChaCha8Rng) -> EpochPair<'_> {
        let field = &self.fields[rng.random_range(0..self.fields.len())];
        let science = field[rng.random_range(0..field.len())];
        // Counted and indexed in place rather than collected: this runs once per attempt.
        let seeing = self.epochs[science].seeing_arcsec;
        let others = || field.iter().copied().filter(move |&i| i != science);
        let sharper = || others().filter(move |&i| self.epochs[i].seeing_arcsec <= seeing);
        let n_sharper = sharper().count();
        let template = if n_sharper > 0 && rng.random::<f32>() < 0.8 {
            sharper().nth(rng.random_range(0..n_sharper))
        } else {
            others().nth(rng.random_range(0..field.len() - 1))
        }
        .expect("index drawn below the pool size");
        EpochPair {
            template: &self.epochs[template],
            science: &self.epochs[science],
        }
    }
}

impl Conditions {
    /// The usable g-band exposure of `field` taken at `mjd` (within 0.01 d, about 15 min),
    /// if the table has one.
    pub fn exposure_at(&self, field: &str, mjd: f64) -> Option<&Epoch> {
        self.epochs
            .iter()
            .filter(|e| e.field == field)
            .map(|e| ((e.mjd - mjd).abs(), e))
            .filter(|(distance, _)| *distance < 0.01)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, e)| e)
    }
}

impl EpochPair<'_> {
    /// Factor turning template ADU into science ADU (common zero point: the science one).
    pub fn flux_scale(&self) -> f32 {
        self.science.exp_time_s / self.template.exp_time_s
            * 10f32.powf(0.4 * (self.science.zero_point - self.template.zero_point))
    }
}

/// A g-band exposure of field "f" for tests.
#[cfg(test)]
pub(crate) fn test_epoch(seeing_arcsec: f32, sky_adu: f32, zero_point: f32) -> Epoch {
    Epoch {
        field: "f".into(),
        epoch: 1,
        mjd: 57070.0,
        exp_time_s: 86.0,
        seeing_arcsec,
        sky_adu,
        zero_point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn embedded_conditions_are_real_hits_g_band() {
        let c = Conditions::embedded().unwrap();
        assert!(c.epochs.len() > 1000, "{} epochs", c.epochs.len());
        let mut seeing: Vec<f32> = c.epochs.iter().map(|e| e.seeing_arcsec).collect();
        seeing.sort_by(f32::total_cmp);
        let median = seeing[seeing.len() / 2];
        assert!((1.2..1.5).contains(&median), "median seeing {median}");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut sharper_templates = 0;
        for _ in 0..500 {
            let pair = c.sample_pair(&mut rng);
            assert_eq!(pair.template.field, pair.science.field);
            assert_ne!(pair.template.epoch, pair.science.epoch);
            sharper_templates +=
                usize::from(pair.template.seeing_arcsec <= pair.science.seeing_arcsec);
        }
        assert!(
            sharper_templates > 300,
            "{sharper_templates}/500 sharper templates"
        );
        let first = &c.epochs[0];
        let found = c.exposure_at(&first.field, first.mjd + 0.001).unwrap();
        assert_eq!((&found.field, found.epoch), (&first.field, first.epoch));
        assert!(c.exposure_at(&first.field, first.mjd + 0.5).is_none());
        assert!(c.exposure_at("no such field", first.mjd).is_none());
    }
}
