//! Burn CNNs that classify HiTS candidate stamps into real (1) and bogus (0).
//!
//! * [`SeedCnn`]: an exact replica of the reference Keras notebook's network (41,986 parameters).
//! * [`RotInvCnn`]: a rotation-invariant CNN after Enhanced Deep-HiTS (Reyes et al. 2018).
//! * [`Classifier`]: either of the two, as train / evaluate / submit handle them.
//! * [`backend`]: the one place where the compute backend is chosen (CPU `Flex`, or CUDA with
//!   the `cuda` feature and a GPU present).
//! * [`metadata`]: `model.json` beside every saved model record, checked when loading.
//!
//! Every model takes `(N, 4, 21, 21)` stamps in the channel order of
//! [`hits_core::Channel::ALL`] and returns `(N, 2)` logits: column 0 bogus, column 1 real.

pub mod backend;
pub mod channels_last;
pub mod classifier;
pub mod error;
pub mod kernels;
pub mod metadata;
pub mod rot_inv_cnn;
pub mod seed_cnn;
#[cfg(test)]
mod test_util;

pub use classifier::{Classifier, stamps_tensor};
pub use error::ModelError;
pub use metadata::{InputSpec, ModelMetadata};
pub use rot_inv_cnn::{RotInvCnn, RotInvCnnConfig};
pub use seed_cnn::{SeedCnn, SeedCnnConfig};

/// Channels of a model input.
pub const CHANNELS: usize = 4;
/// Side of a model input in pixels.
pub const SIDE: usize = hits_core::STAMP_SIDE;
/// Classes of the model output: 0 bogus, 1 real.
pub const CLASSES: usize = 2;
