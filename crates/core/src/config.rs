//! The pipeline configuration (`pipelines/*.toml`) that every stage reads.
//!
//! Unknown keys and wrong types are refused with the file, line and key named, so a typo never
//! silently falls back to a default. Relative paths are relative to the working directory
//! (the repository root when run through `just`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::write_bytes_atomic;
use crate::{Channel, CoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Short name, recorded in every manifest.
    pub name: String,
    /// Seed for the simulator, the train/validation split, initialisation and shuffling.
    pub seed: u64,
    /// Root of the artifacts; each stage writes `<artifacts>/<stage>/`.
    pub artifacts: PathBuf,
    pub simulate: SimulateConfig,
    pub data: DataConfig,
    pub features: FeaturesConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub evaluate: EvaluateConfig,
}

/// The default pipeline: exactly `pipelines/default.toml` (a test keeps the two equal), so a
/// pipeline file needs to state only where it differs.
impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            name: "default".into(),
            seed: 42,
            artifacts: "artifacts".into(),
            simulate: SimulateConfig::default(),
            data: DataConfig::default(),
            features: FeaturesConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            evaluate: EvaluateConfig::default(),
        }
    }
}

/// The stamp simulator (`just data`): how many candidates and which mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateConfig {
    /// Where `train/`, `test/` and `test_labels.csv` are written.
    pub out_dir: PathBuf,
    pub train_candidates: usize,
    pub test_candidates: usize,
    /// Fraction of candidates that are real (label 1).
    pub real_fraction: f64,
    /// Relative weights of the kinds of real candidates.
    pub real_mix: RealMix,
    /// Relative weights of the kinds of bogus candidates.
    pub bogus_mix: BogusMix,
    /// Candidates built from real HiTS 2015 pixels.
    pub real_pixels: RealPixelsConfig,
}

/// The default pipeline's split of real-pixel candidates of held-out objects.
pub const REAL_HOLDOUT_SPLIT: &str = "real_holdout";

/// The simulator's answer key of its unlabelled test split (`id,label`), in `out_dir`: outside
/// the test directory, so that nothing reading the split sees it.
pub const ANSWER_KEY_FILE: &str = "test_labels.csv";

impl SimulateConfig {
    /// Where the simulator writes the test split's answer key.
    pub fn answer_key(&self) -> PathBuf {
        self.out_dir.join(ANSWER_KEY_FILE)
    }
}

impl Default for SimulateConfig {
    fn default() -> Self {
        SimulateConfig {
            out_dir: "data/sim".into(),
            train_candidates: 4026,
            test_candidates: 2000,
            real_fraction: 0.5,
            real_mix: RealMix::default(),
            bogus_mix: BogusMix::default(),
            real_pixels: RealPixelsConfig::default(),
        }
    }
}

/// Candidates built from every epoch of real HiTS 2015 objects (`simulate generate`): real
/// constant-star subtraction residuals (bogus), real brightenings of RR Lyrae, eclipsing
/// binaries and supernovae, and point sources injected into real science images (real).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealPixelsConfig {
    /// `real_science_sequences.csv`; empty builds none.
    pub sequences: PathBuf,
    /// Fraction of each class's objects held out: their candidates go to
    /// `<out_dir>/real_holdout/` and nothing is trained or tuned on them. Which objects are
    /// held out depends on their names only, never on `seed`.
    pub held_out_fraction: f64,
    /// Whether the other objects' candidates join the simulated train split.
    pub train: bool,
    /// One template per entry: the mean of the object's first K usable epochs.
    pub template_epochs: Vec<usize>,
    /// Point sources injected into each real science epoch, per template.
    pub injections: usize,
}

impl Default for RealPixelsConfig {
    fn default() -> Self {
        RealPixelsConfig {
            sequences: "data/hits2015/real_science_sequences.csv".into(),
            held_out_fraction: 0.4,
            train: true,
            template_epochs: vec![1, 2, 3, 4, 5],
            injections: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealMix {
    /// A new point source on empty sky.
    pub empty_sky: f64,
    /// A new point source on a galaxy present in both images.
    pub host_galaxy: f64,
    /// A star present in the template that brightens.
    pub variable_star: f64,
}

impl Default for RealMix {
    fn default() -> Self {
        RealMix {
            empty_sky: 0.45,
            host_galaxy: 0.35,
            variable_star: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BogusMix {
    /// Misregistration, PSF-mismatch and flux-scale residuals (dipoles, rings) around stars.
    pub subtraction_residual: f64,
    /// Cosmic-ray hits and short tracks in the science or template image.
    pub cosmic_ray: f64,
    /// Hot pixels and bad columns.
    pub detector_defect: f64,
    /// Residuals of saturated stars.
    pub saturated_star: f64,
    /// Noise fluctuations at the detection threshold.
    pub noise: f64,
    /// Defects in the template, seen as negative flux in the difference.
    pub template_defect: f64,
}

impl Default for BogusMix {
    fn default() -> Self {
        BogusMix {
            subtraction_residual: 0.35,
            cosmic_ray: 0.2,
            detector_defect: 0.12,
            saturated_star: 0.08,
            noise: 0.15,
            template_defect: 0.1,
        }
    }
}

/// How candidate CSVs are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// A header row; the first column is the candidate id, then 441 pixel columns.
    /// The labels file has the columns `<id_column>,label`.
    IdHeader,
    /// No header; exactly 441 pixel columns, candidates aligned by row across the files.
    /// The labels file has one column, one row per candidate.
    Plain,
}

/// Per-candidate truth the simulator writes beside a split's CSVs (`id`, `kind`, ...); `evaluate`
/// reads it, where present, for figures per kind of candidate.
pub const TRUTH_FILE: &str = "truth.csv";

/// File names of the channel CSVs and the labels inside a split's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelFiles {
    pub template: String,
    pub science: String,
    pub difference: String,
    pub snr_difference: String,
    pub labels: String,
}

impl Default for ChannelFiles {
    fn default() -> Self {
        ChannelFiles {
            template: "template.csv".into(),
            science: "science.csv".into(),
            difference: "difference.csv".into(),
            snr_difference: "snr_difference.csv".into(),
            labels: "labels.csv".into(),
        }
    }
}

impl DataConfig {
    /// The files `ingest` reads for `split`: the channel CSVs in [`Channel::ALL`] order, then
    /// the labels when the split is labelled.
    pub fn split_files(&self, split: &SplitConfig) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Channel::ALL
            .iter()
            .map(|&c| split.dir.join(self.files.channel(c)))
            .collect();
        if split.labelled {
            files.push(split.dir.join(&self.files.labels));
        }
        files
    }
}

impl ChannelFiles {
    pub fn channel(&self, channel: Channel) -> &str {
        match channel {
            Channel::Template => &self.template,
            Channel::Science => &self.science,
            Channel::Difference => &self.difference,
            Channel::SnrDifference => &self.snr_difference,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Directory holding the channel CSVs (and labels when `labelled`).
    pub dir: PathBuf,
    /// Whether the split has a labels file.
    pub labelled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub layout: Layout,
    /// Name of the id column in the `id_header` layout.
    pub id_column: String,
    /// Whether `plain` files start with a header row (the `id_header` layout always has one).
    pub header: bool,
    pub files: ChannelFiles,
    /// The splits to ingest, by name (`train` is what `train` learns from).
    pub splits: BTreeMap<String, SplitConfig>,
    /// What `ingest` does with a candidate whose four stamps repeat an earlier one's.
    pub duplicates: DuplicatePolicy,
}

/// `refuse` or `drop`, as in the pipeline file (command-line flags parse it too).
impl std::str::FromStr for DuplicatePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "refuse" => Ok(DuplicatePolicy::Refuse),
            "drop" => Ok(DuplicatePolicy::Drop),
            _ => Err(format!("'{text}': expected refuse or drop")),
        }
    }
}

/// `id_header` or `plain`, as in the pipeline file (command-line flags parse it too).
impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "id_header" => Ok(Layout::IdHeader),
            "plain" => Ok(Layout::Plain),
            _ => Err(format!("'{text}': expected id_header or plain")),
        }
    }
}

/// What `ingest` does with duplicate candidates (identical stamps in all four channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Refuse the split, naming both rows (the default: a duplicate usually means a broken
    /// export).
    Refuse,
    /// Keep the first, drop the others, and list every dropped id with its twin in the ingest
    /// report and on stderr (real surveys do carry a few identical stamps upstream).
    Drop,
}

impl Default for DataConfig {
    fn default() -> Self {
        let split = |dir: &str, labelled| SplitConfig {
            dir: dir.into(),
            labelled,
        };
        DataConfig {
            layout: Layout::IdHeader,
            id_column: "id".into(),
            header: false,
            files: ChannelFiles::default(),
            splits: BTreeMap::from([
                ("train".to_string(), split("data/sim/train", true)),
                ("test".to_string(), split("data/sim/test", false)),
                (
                    REAL_HOLDOUT_SPLIT.to_string(),
                    split("data/sim/real_holdout", true),
                ),
            ]),
            duplicates: DuplicatePolicy::Refuse,
        }
    }
}

/// How stamps are scaled before they reach a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// Raw values.
    None,
    /// Each channel of each stamp scaled to [0, 1] by its own min and max (as Deep-HiTS).
    MinmaxPerStamp,
    /// Per channel: subtract the mean and divide by the standard deviation of the
    /// training split; the statistics are stored and reused for every other split.
    Zscore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    pub normalisation: Normalisation,
    /// The split whose statistics define `zscore` normalisation.
    pub statistics_split: String,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            normalisation: Normalisation::MinmaxPerStamp,
            statistics_split: "train".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The reference Keras notebook's CNN (41,986 parameters).
    SeedCnn,
    /// Rotation-invariant CNN after Enhanced Deep-HiTS (Reyes et al. 2018).
    RotInvCnn,
}

/// The network and the settings of its kind (`[model]`, tagged by `kind`): a setting that
/// another kind would ignore is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// The reference Keras notebook's CNN; it has no settings.
    SeedCnn {},
    RotInvCnn {
        /// Dropout before the classifier.
        #[serde(default = "default_rot_inv_dropout")]
        dropout: f64,
        /// Filters of the first two convolutions; the last three have twice as many.
        /// Deep-HiTS used 32; the cost of the tower grows with its square.
        #[serde(default = "default_rot_inv_filters")]
        filters: usize,
    },
}

fn default_rot_inv_dropout() -> f64 {
    0.5
}

fn default_rot_inv_filters() -> usize {
    32
}

impl ModelConfig {
    /// A model of `kind` with that kind's default settings.
    pub fn of_kind(kind: ModelKind) -> Self {
        match kind {
            ModelKind::SeedCnn => ModelConfig::SeedCnn {},
            ModelKind::RotInvCnn => ModelConfig::RotInvCnn {
                dropout: default_rot_inv_dropout(),
                filters: default_rot_inv_filters(),
            },
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::SeedCnn {} => ModelKind::SeedCnn,
            ModelConfig::RotInvCnn { .. } => ModelKind::RotInvCnn,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::SeedCnn {}
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimiserConfig {
    /// Keras' RMSprop: learning rate 1e-3, rho 0.9, epsilon 1e-7.
    Rmsprop {
        learning_rate: f64,
        rho: f64,
        epsilon: f64,
    },
    Adam {
        learning_rate: f64,
        beta1: f64,
        beta2: f64,
        epsilon: f64,
    },
    /// SGD with momentum; the learning rate is multiplied by `gamma` every `step_epochs` epochs.
    Sgd {
        learning_rate: f64,
        momentum: f64,
        step_epochs: usize,
        gamma: f64,
    },
}

impl OptimiserConfig {
    /// Keras' RMSprop defaults, the reference notebook's optimiser.
    pub fn keras_rmsprop() -> Self {
        OptimiserConfig::Rmsprop {
            learning_rate: 1e-3,
            rho: 0.9,
            epsilon: 1e-7,
        }
    }

    /// Adam with the defaults of its paper (and Keras, but for epsilon 1e-8).
    pub fn adam() -> Self {
        OptimiserConfig::Adam {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The labelled split to learn from.
    pub split: String,
    /// Fraction held out for validation (stratified by label).
    pub validation_fraction: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimiser: OptimiserConfig,
    /// Random 90-degree rotations and flips of each training stamp.
    pub augment: bool,
    /// Weight the loss by inverse class frequency.
    pub class_weights: bool,
    /// Stop after this many epochs without a lower validation loss; `None` (0 in a pipeline
    /// file) never stops early.
    #[serde(with = "zero_is_never")]
    pub early_stopping_patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            split: "train".into(),
            validation_fraction: 1.0 / 3.0,
            epochs: 50,
            batch_size: 50,
            optimiser: OptimiserConfig::adam(),
            augment: true,
            class_weights: false,
            early_stopping_patience: Some(15),
        }
    }
}

/// A patience of 0 in a file means "never": TOML has no null, and a pipeline file must be able
/// to turn off a default that is on.
mod zero_is_never {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.unwrap_or(0) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        let n = usize::deserialize(d)?;
        Ok((n > 0).then_some(n))
    }
}

/// How `evaluate` picks the P(real) threshold that `submit` applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdRule {
    /// A fixed threshold, e.g. 0.5.
    Fixed { value: f64 },
    /// The threshold with the lowest false-negative rate whose false-positive rate on the
    /// validation set does not exceed `fpr` (e.g. 0.01).
    TargetFpr { fpr: f64 },
    /// The threshold where the false-positive and false-negative rates are closest.
    EqualErrorRate,
}

/// How `evaluate` calibrates P(real) before choosing the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// The model's P(real) as it is.
    None,
    /// Temperature scaling fitted on the validation candidates (log-odds divided by one
    /// number); `submit` applies it too. It keeps the ranking, so ROC AUC is unchanged.
    Temperature,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateConfig {
    pub threshold: ThresholdRule,
    pub calibration: CalibrationMethod,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig {
            threshold: ThresholdRule::TargetFpr { fpr: 0.01 },
            calibration: CalibrationMethod::Temperature,
        }
    }
}

impl Pipeline {
    /// Read and check a pipeline file.
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parse pipeline TOML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, CoreError> {
        let config_error = |message: String| CoreError::Config {
            path: origin.to_path_buf(),
            message,
        };
        let pipeline: Pipeline =
            toml::from_str(text).map_err(|e| config_error(one_line_toml_error(&e, text)))?;
        pipeline.validate().map_err(config_error)?;
        Ok(pipeline)
    }

    /// Checks that serde cannot express, done once so stages can trust the values.
    fn validate(&self) -> Result<(), String> {
        let fraction = |name: &str, v: f64, open_high: bool| {
            let ok = v > 0.0 && if open_high { v < 1.0 } else { v <= 1.0 };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{name} = {v} must lie in (0, 1{}",
                    if open_high { ")" } else { "]" }
                ))
            }
        };
        fraction("simulate.real_fraction", self.simulate.real_fraction, true)?;
        let (real, bogus) = (&self.simulate.real_mix, &self.simulate.bogus_mix);
        let real_weights = [real.empty_sky, real.host_galaxy, real.variable_star];
        let bogus_weights = [
            bogus.subtraction_residual,
            bogus.cosmic_ray,
            bogus.detector_defect,
            bogus.saturated_star,
            bogus.noise,
            bogus.template_defect,
        ];
        for (name, weights) in [
            ("real_mix", &real_weights[..]),
            ("bogus_mix", &bogus_weights[..]),
        ] {
            if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
                || weights.iter().sum::<f64>() <= 0.0
            {
                return Err(format!(
                    "simulate.{name} weights must be >= 0 with a positive sum: {weights:?}"
                ));
            }
        }
        let real_pixels = &self.simulate.real_pixels;
        fraction(
            "simulate.real_pixels.held_out_fraction",
            real_pixels.held_out_fraction,
            true,
        )?;
        if real_pixels.template_epochs.is_empty() || real_pixels.template_epochs.contains(&0) {
            return Err(format!(
                "simulate.real_pixels.template_epochs = {:?} must list at least one count, each at least 1",
                real_pixels.template_epochs
            ));
        }
        fraction(
            "train.validation_fraction",
            self.train.validation_fraction,
            true,
        )?;
        if self.train.batch_size == 0 || self.train.epochs == 0 {
            return Err("train.batch_size and train.epochs must be at least 1".into());
        }
        if let ModelConfig::RotInvCnn { filters: 0, .. } = self.model {
            return Err("model.filters must be at least 1".into());
        }
        if self.data.splits.is_empty() {
            return Err("data.splits names no split".into());
        }
        if self.data.id_column.is_empty() {
            return Err("data.id_column must not be empty".into());
        }
        match self.evaluate.threshold {
            ThresholdRule::Fixed { value } if !(0.0..=1.0).contains(&value) => {
                return Err(format!(
                    "evaluate.threshold.value = {value} must lie in [0, 1]"
                ));
            }
            ThresholdRule::TargetFpr { fpr } => fraction("evaluate.threshold.fpr", fpr, true)?,
            _ => {}
        }
        Ok(())
    }

    /// The configuration of split `name`, or an error listing the splits there are.
    pub fn split(&self, name: &str) -> Result<&SplitConfig, CoreError> {
        self.data.splits.get(name).ok_or_else(|| CoreError::Config {
            path: "pipeline".into(),
            message: format!(
                "no split named '{name}' in [data.splits] (have: {})",
                self.data
                    .splits
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// `<artifacts>/<stage>`.
    pub fn stage_dir(&self, stage: Stage) -> PathBuf {
        self.artifacts.join(stage.name())
    }

    /// The resolved configuration as TOML, as written beside every stage's artifacts.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a pipeline always serialises")
    }

    /// BLAKE3 of [`Pipeline::to_toml`]: equal for equal configurations.
    pub fn config_hash(&self) -> String {
        blake3::hash(self.to_toml().as_bytes()).to_hex().to_string()
    }

    /// BLAKE3 of the parts of the configuration `stage` reads ([`Stage::settings`]).
    /// Recorded in the stage's manifest, so that changing, say, `[evaluate]` does not make
    /// the trained model stale.
    pub fn stage_config_hash(&self, stage: Stage) -> String {
        let Some(keys) = stage.settings() else {
            return self.config_hash();
        };
        let mut table = toml::Table::try_from(self).expect("a pipeline always serialises");
        table.retain(|key, _| keys.contains(&key));
        let text = toml::to_string(&table).expect("a TOML table always serialises");
        blake3::hash(text.as_bytes()).to_hex().to_string()
    }

    /// Write the configuration a stage used to `<dir>/pipeline.toml`.
    pub fn write_used(&self, dir: &Path) -> Result<PathBuf, CoreError> {
        let path = dir.join("pipeline.toml");
        write_bytes_atomic(&path, self.to_toml().as_bytes())?;
        Ok(path)
    }
}

/// toml's messages span several lines with a source excerpt; keep them to one line.
/// toml's multi-line report as one line that quotes the offending line, so the key is named
/// even when toml's message only names the expected type.
fn one_line_toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let quoted = text[line_start..line_end].trim();
    format!("line {line}, column {column} (`{quoted}`): {message}")
}

/// A step of the pipeline: the name of its directory under `artifacts/` (and of its `just`
/// recipe) and the pipeline settings it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Simulate,
    SimCheck,
    Ingest,
    Features,
    Train,
    Evaluate,
    Submit,
    Export,
}

impl Stage {
    /// The stages `just all` runs, in order.
    pub const PIPELINE: [Stage; 7] = [
        Stage::Simulate,
        Stage::Ingest,
        Stage::Features,
        Stage::Train,
        Stage::Evaluate,
        Stage::Submit,
        Stage::Export,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::Simulate => "simulate",
            Stage::SimCheck => "sim-check",
            Stage::Ingest => "ingest",
            Stage::Features => "features",
            Stage::Train => "train",
            Stage::Evaluate => "evaluate",
            Stage::Submit => "submit",
            Stage::Export => "export",
        }
    }

    /// The top-level pipeline keys whose settings the stage reads, besides its input files
    /// (whose hashes carry the earlier stages' settings); `None`: the whole configuration.
    pub const fn settings(self) -> Option<&'static [&'static str]> {
        match self {
            Stage::Simulate => Some(&["seed", "simulate", "data"]),
            Stage::Ingest => Some(&["data"]),
            Stage::Features => Some(&["data", "features"]),
            Stage::Train => Some(&["seed", "data", "features", "model", "train"]),
            Stage::SimCheck | Stage::Evaluate | Stage::Submit | Stage::Export => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, String> {
        Pipeline::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn mix_weights_are_checked_at_load() {
        let mut p = Pipeline::default();
        p.simulate.bogus_mix.noise = -1.0;
        let err = parse(&p.to_toml()).unwrap_err();
        assert!(err.contains("simulate.bogus_mix weights"), "{err}");
        let mut p = Pipeline::default();
        p.simulate.real_mix = RealMix {
            empty_sky: 0.0,
            host_galaxy: 0.0,
            variable_star: 0.0,
        };
        let err = parse(&p.to_toml()).unwrap_err();
        assert!(err.contains("simulate.real_mix weights"), "{err}");
    }

    #[test]
    fn type_errors_quote_the_line_with_the_key() {
        let err = parse("name = \"x\"\nseed = \"forty-two\"\n").unwrap_err();
        assert!(
            err.contains("test.toml")
                && err.contains("line 2")
                && err.contains("`seed = \"forty-two\"`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn shipped_pipelines_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut seen = 0;
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Pipeline::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let err = parse("[train]\nepochz = 3\n").unwrap_err();
        assert!(
            err.starts_with("test.toml: ") && err.contains("epochz"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_type_is_refused() {
        let err = parse("[train]\nepochs = \"many\"\n").unwrap_err();
        assert!(err.contains("test.toml"), "{err}");
    }

    #[test]
    fn out_of_range_fraction_is_refused() {
        let err = parse("[train]\nvalidation_fraction = 1.5\n").unwrap_err();
        assert!(err.contains("validation_fraction"), "{err}");
    }

    #[test]
    fn a_model_without_filters_is_refused() {
        let rot_inv = "[model]\nkind = \"rot_inv_cnn\"\n";
        assert_eq!(
            parse(&format!("{rot_inv}filters = 16\n")).unwrap().model,
            ModelConfig::RotInvCnn {
                dropout: 0.5,
                filters: 16
            }
        );
        let err = parse(&format!("{rot_inv}filters = 0\n")).unwrap_err();
        assert!(err.contains("model.filters"), "{err}");
    }

    #[test]
    fn a_setting_of_another_model_kind_is_refused() {
        assert_eq!(
            parse("[model]\nkind = \"seed_cnn\"\n").unwrap().model,
            ModelConfig::SeedCnn {}
        );
        let err = parse("[model]\nkind = \"seed_cnn\"\ndropout = 0.5\n").unwrap_err();
        assert!(err.contains("dropout"), "{err}");
    }

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../pipelines/{name}.toml"))
    }

    #[test]
    fn the_default_pipeline_is_pipelines_default_toml() {
        let file = Pipeline::load(&shipped("default")).unwrap();
        assert_eq!(Pipeline::default(), file);
    }

    /// Every value a shipped pipeline file sets differs from the default's, so the file says
    /// exactly how that pipeline differs. A table tagged by `kind` counts as one value.
    #[test]
    fn shipped_pipelines_state_only_their_differences() {
        fn redundant(file: &toml::Table, default: &toml::Table, at: &str, out: &mut Vec<String>) {
            for (key, value) in file {
                let here = format!("{at}{key}");
                match (value, default.get(key)) {
                    (toml::Value::Table(f), Some(toml::Value::Table(d)))
                        if f.get("kind") == d.get("kind") =>
                    {
                        redundant(f, d, &format!("{here}."), out)
                    }
                    (v, Some(d)) if v == d => out.push(here),
                    _ => {}
                }
            }
        }
        let default = toml::Table::try_from(Pipeline::default()).unwrap();
        for name in ["seed", "rot_inv_cnn"] {
            let text = std::fs::read_to_string(shipped(name)).unwrap();
            let file: toml::Table = toml::from_str(&text).unwrap();
            let mut same = Vec::new();
            redundant(&file, &default, "", &mut same);
            assert!(same.is_empty(), "{name}.toml repeats the default: {same:?}");
        }
    }

    #[test]
    fn real_pixel_settings_are_checked() {
        let p = parse("[simulate.real_pixels]\nsequences = \"s.csv\"\ntemplate_epochs = [2]\n")
            .unwrap();
        assert_eq!(p.simulate.real_pixels.template_epochs, [2]);
        assert_eq!(p.simulate.real_pixels.sequences, Path::new("s.csv"));
        for (text, key) in [
            ("held_out_fraction = 0.0", "held_out_fraction"),
            ("held_out_fraction = 1.0", "held_out_fraction"),
            ("template_epochs = []", "template_epochs"),
            ("template_epochs = [1, 0]", "template_epochs"),
        ] {
            let err = parse(&format!("[simulate.real_pixels]\n{text}\n")).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn flags_parse_as_the_pipeline_file_spells_them() {
        assert_eq!("drop".parse(), Ok(DuplicatePolicy::Drop));
        assert_eq!("refuse".parse(), Ok(DuplicatePolicy::Refuse));
        assert!(
            "Drop"
                .parse::<DuplicatePolicy>()
                .unwrap_err()
                .contains("refuse or drop")
        );
        assert_eq!("id_header".parse(), Ok(Layout::IdHeader));
        assert_eq!("plain".parse(), Ok(Layout::Plain));
        assert!("csv".parse::<Layout>().is_err());
        let p = parse("[data]\nduplicates = \"drop\"\n").unwrap();
        assert_eq!(p.data.duplicates, DuplicatePolicy::Drop);
    }

    #[test]
    fn optimiser_is_tagged_by_kind() {
        let p = parse("[train.optimiser]\nkind = \"sgd\"\nlearning_rate = 0.1\nmomentum = 0.9\nstep_epochs = 5\ngamma = 0.5\n").unwrap();
        assert!(matches!(
            p.train.optimiser,
            OptimiserConfig::Sgd { step_epochs: 5, .. }
        ));
    }

    #[test]
    fn threshold_rules_parse_and_are_checked() {
        let p = parse("[evaluate]\nthreshold = { kind = \"fixed\", value = 0.5 }\n").unwrap();
        assert_eq!(p.evaluate.threshold, ThresholdRule::Fixed { value: 0.5 });
        let p = parse("[evaluate]\nthreshold = { kind = \"target_fpr\", fpr = 0.01 }\n").unwrap();
        assert_eq!(p.evaluate.threshold, ThresholdRule::TargetFpr { fpr: 0.01 });
        let p = parse("[evaluate.threshold]\nkind = \"equal_error_rate\"\n").unwrap();
        assert_eq!(p.evaluate.threshold, ThresholdRule::EqualErrorRate);
        let err = parse("[evaluate]\nthreshold = { kind = \"fixed\", value = 1.5 }\n").unwrap_err();
        assert!(err.contains("evaluate.threshold.value"), "{err}");
        let err =
            parse("[evaluate]\nthreshold = { kind = \"target_fpr\", fpr = 0 }\n").unwrap_err();
        assert!(err.contains("evaluate.threshold.fpr"), "{err}");
        let err = parse("[evaluate]\nthreshold = { kind = \"fixed\", fpr = 0.1 }\n").unwrap_err();
        assert!(err.contains("fpr"), "{err}");
    }

    #[test]
    fn stage_hash_ignores_sections_the_stage_does_not_read() {
        let p = Pipeline::default();
        let mut later = p.clone();
        later.evaluate.threshold = ThresholdRule::EqualErrorRate;
        later.name = "other".into();
        for stage in [
            Stage::Simulate,
            Stage::Ingest,
            Stage::Features,
            Stage::Train,
        ] {
            assert_eq!(p.stage_config_hash(stage), later.stage_config_hash(stage));
        }
        assert_ne!(
            p.stage_config_hash(Stage::Evaluate),
            later.stage_config_hash(Stage::Evaluate)
        );
        let mut features = p.clone();
        features.features.normalisation = Normalisation::Zscore;
        assert_eq!(
            p.stage_config_hash(Stage::Ingest),
            features.stage_config_hash(Stage::Ingest)
        );
        assert_ne!(
            p.stage_config_hash(Stage::Features),
            features.stage_config_hash(Stage::Features)
        );
        assert_ne!(
            p.stage_config_hash(Stage::Train),
            features.stage_config_hash(Stage::Train)
        );
    }

    #[test]
    fn round_trip_keeps_hash() {
        let p = Pipeline::default();
        let again = parse(&p.to_toml()).unwrap();
        assert_eq!(p, again);
        assert_eq!(p.config_hash(), again.config_hash());
        // Settings that differ from the default survive the trip too (None is written as 0).
        let mut p = Pipeline::default();
        p.train.early_stopping_patience = None;
        p.model = ModelConfig::of_kind(ModelKind::RotInvCnn);
        assert_eq!(parse(&p.to_toml()).unwrap(), p);
    }
}

#[cfg(test)]
mod stage_names {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for stage in Stage::PIPELINE.into_iter().chain([Stage::SimCheck]) {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.name()));
            assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), stage);
        }
        assert!(serde_json::from_str::<Stage>("\"trian\"").is_err());
    }
}
