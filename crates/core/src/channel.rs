//! The four images of a HiTS candidate.

use serde::{Deserialize, Serialize};

/// Side of a candidate stamp in pixels.
pub const STAMP_SIDE: usize = 21;
/// Pixels in one channel of a stamp (21 x 21, row-major).
pub const STAMP_PIXELS: usize = STAMP_SIDE * STAMP_SIDE;
/// Values in one model input: 4 channels x 21 x 21.
pub const TENSOR_LEN: usize = Channel::ALL.len() * STAMP_PIXELS;

/// One image of a candidate. The order of [`Channel::ALL`] is the channel order of every
/// tensor the pipeline writes: template, science, difference, SNR-difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The reference image, taken before the candidate appeared.
    Template,
    /// The new image.
    Science,
    /// Science minus the PSF-matched template.
    Difference,
    /// Difference divided by its per-pixel noise.
    SnrDifference,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Template,
        Channel::Science,
        Channel::Difference,
        Channel::SnrDifference,
    ];

    /// The snake_case name used in file names, Arrow columns and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Template => "template",
            Channel::Science => "science",
            Channel::Difference => "difference",
            Channel::SnrDifference => "snr_difference",
        }
    }

    /// Position of this channel in a (4, 21, 21) tensor.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The channel order as one comma-separated string, as stored in artifact metadata.
    pub fn order_string() -> String {
        Channel::ALL.map(Channel::name).join(",")
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_template_science_difference_snr() {
        assert_eq!(
            Channel::order_string(),
            "template,science,difference,snr_difference"
        );
        for (i, c) in Channel::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        assert_eq!(TENSOR_LEN, 1764);
    }
}
