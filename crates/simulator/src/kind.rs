//! The kinds of candidates: the real and bogus taxonomy and how a mix of them is sampled
//! (the mix weights are checked when the pipeline is loaded).

use hits_core::config::{BogusMix, RealMix};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// What a candidate is. The simulated kinds ([`Kind::REAL`], [`Kind::BOGUS`]) come first;
/// the last five are built from real HiTS pixels ([`crate::real_pixels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    EmptySky,
    HostGalaxy,
    VariableStar,
    SubtractionResidual,
    CosmicRay,
    DetectorDefect,
    SaturatedStar,
    Noise,
    TemplateDefect,
    /// A real constant star's subtraction residual that passes the detection cut (bogus).
    RealConstantStar,
    /// A significant brightening of a real RR Lyrae star (real).
    RealRrLyrae,
    /// A significant brightening of a real eclipsing binary (real).
    RealEclipsingBinary,
    /// A real supernova detected in the difference (real).
    RealSupernova,
    /// A point source injected into a real science image, as Deep-HiTS made its reals (real).
    InjectedPointSource,
}

impl Kind {
    /// The simulated real kinds, drawn by `[simulate.real_mix]`.
    pub const REAL: [Kind; 3] = [Kind::EmptySky, Kind::HostGalaxy, Kind::VariableStar];
    /// The simulated bogus kinds, drawn by `[simulate.bogus_mix]`.
    pub const BOGUS: [Kind; 6] = [
        Kind::SubtractionResidual,
        Kind::CosmicRay,
        Kind::DetectorDefect,
        Kind::SaturatedStar,
        Kind::Noise,
        Kind::TemplateDefect,
    ];

    /// The snake_case name, as in the `[simulate.*_mix]` keys and `truth.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::EmptySky => "empty_sky",
            Kind::HostGalaxy => "host_galaxy",
            Kind::VariableStar => "variable_star",
            Kind::SubtractionResidual => "subtraction_residual",
            Kind::CosmicRay => "cosmic_ray",
            Kind::DetectorDefect => "detector_defect",
            Kind::SaturatedStar => "saturated_star",
            Kind::Noise => "noise",
            Kind::TemplateDefect => "template_defect",
            Kind::RealConstantStar => "real_constant_star",
            Kind::RealRrLyrae => "real_rr_lyrae",
            Kind::RealEclipsingBinary => "real_eclipsing_binary",
            Kind::RealSupernova => "real_supernova",
            Kind::InjectedPointSource => "injected_point_source",
        }
    }

    /// Whether the simulator draws this kind (the others are built from real pixels).
    pub fn is_simulated(self) -> bool {
        Kind::REAL.contains(&self) || Kind::BOGUS.contains(&self)
    }

    pub fn label(self) -> u8 {
        match self {
            Kind::EmptySky
            | Kind::HostGalaxy
            | Kind::VariableStar
            | Kind::RealRrLyrae
            | Kind::RealEclipsingBinary
            | Kind::RealSupernova
            | Kind::InjectedPointSource => 1,
            Kind::SubtractionResidual
            | Kind::CosmicRay
            | Kind::DetectorDefect
            | Kind::SaturatedStar
            | Kind::Noise
            | Kind::TemplateDefect
            | Kind::RealConstantStar => 0,
        }
    }

    /// Draw a kind of the given label from the configured weights.
    pub fn sample(label: u8, real: &RealMix, bogus: &BogusMix, rng: &mut ChaCha8Rng) -> Kind {
        let real = [
            (Kind::EmptySky, real.empty_sky),
            (Kind::HostGalaxy, real.host_galaxy),
            (Kind::VariableStar, real.variable_star),
        ];
        let bogus = [
            (Kind::SubtractionResidual, bogus.subtraction_residual),
            (Kind::CosmicRay, bogus.cosmic_ray),
            (Kind::DetectorDefect, bogus.detector_defect),
            (Kind::SaturatedStar, bogus.saturated_star),
            (Kind::Noise, bogus.noise),
            (Kind::TemplateDefect, bogus.template_defect),
        ];
        let weighted: &[(Kind, f64)] = if label == 1 { &real } else { &bogus };
        let total: f64 = weighted.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random::<f64>() * total;
        for &(kind, weight) in weighted {
            if pick < weight {
                return kind;
            }
            pick -= weight;
        }
        weighted
            .iter()
            .rev()
            .find(|(_, w)| *w > 0.0)
            .map_or(weighted[0].0, |(k, _)| *k)
    }
}
