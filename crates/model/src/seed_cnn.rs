//! The reference Keras notebook's CNN, replicated layer by layer.
//!
//! ```text
//! input (N, 4, 21, 21)
//! 4 x [Conv2D 2x2 'same' + ReLU -> MaxPool 2x2]   channels 32, 32, 64, 64; side 21->10->5->2->1
//! flatten (N, 64)
//! 3 x Dense 64 + sigmoid
//! Dense 2 (+ softmax, applied by the loss / `p_real`)
//! ```
//!
//! Keras' `padding='same'` with an even kernel pads 0 before and 1 after (its total padding
//! `k - 1 = 1` goes to the bottom/right): [`KERAS_SAME_2X2`]. On the CPU each block is one
//! fused channels-last op ([`crate::channels_last::conv_block`]); elsewhere it runs through
//! burn's `Conv2d` and `MaxPool2d`, on the same parameters. Kernels are
//! Glorot-uniform and biases zero, as Keras' defaults.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::ops::PadMode;

use crate::channels_last::{ChannelsLastOps, conv_blocks};
use crate::kernels::{ActivationLayout, ConvBlock};
use crate::{CHANNELS, CLASSES};

/// The reference CNN; it has no hyper-parameters.
#[derive(Config, Debug)]
pub struct SeedCnnConfig {}

#[derive(Module, Debug)]
pub struct SeedCnn<B: Backend> {
    /// The four 2x2 convolutions (valid padding: [`KERAS_SAME_2X2`] is added before each).
    pub convs: Vec<Conv2d<B>>,
    pub pool: MaxPool2d,
    /// The three sigmoid dense layers.
    pub dense: Vec<Linear<B>>,
    /// The logits layer.
    pub output: Linear<B>,
}

/// Convolution channels of the four blocks.
const CONV_CHANNELS: [usize; 4] = [32, 32, 64, 64];
/// Width of the three sigmoid dense layers.
const DENSE: usize = 64;

fn glorot() -> Initializer {
    Initializer::XavierUniform { gain: 1.0 }
}

impl SeedCnnConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SeedCnn<B> {
        let mut convs = Vec::new();
        let mut inputs = CHANNELS;
        for &outputs in &CONV_CHANNELS {
            let mut conv = Conv2dConfig::new([inputs, outputs], [2, 2])
                .with_padding(PaddingConfig2d::Valid)
                .with_initializer(glorot())
                .init(device);
            conv.bias = Some(Param::from_tensor(Tensor::zeros([outputs], device)));
            convs.push(conv);
            inputs = outputs;
        }
        let linear = |d_in, d_out| {
            let mut layer = LinearConfig::new(d_in, d_out)
                .with_initializer(glorot())
                .init(device);
            layer.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
            layer
        };
        let flat = CONV_CHANNELS[3];
        SeedCnn {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dense: vec![
                linear(flat, DENSE),
                linear(DENSE, DENSE),
                linear(DENSE, DENSE),
            ],
            output: linear(DENSE, CLASSES),
        }
    }
}

/// Keras' 'same' padding for a 2x2 kernel with stride 1: `[(top, bottom), (left, right)]`,
/// one row of zeros at the bottom and one column at the right.
pub const KERAS_SAME_2X2: [(usize, usize); 2] = [(0, 1), (0, 1)];

/// [`KERAS_SAME_2X2`] applied to `(N, C, H, W)` -> `(N, C, H + 1, W + 1)`.
pub fn keras_same_pad_2x2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.pad(KERAS_SAME_2X2, PadMode::Constant(0.0))
}

impl<B: ChannelsLastOps> SeedCnn<B> {
    /// `(N, 4, 21, 21)` stamps -> `(N, 2)` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = if B::channels_last() {
            self.blocks_channels_last(x)
        } else {
            self.blocks(x)
        };
        for dense in &self.dense {
            x = sigmoid(dense.forward(x));
        }
        self.output.forward(x)
    }

    /// The four convolution blocks through burn's layers: `(N, 4, 21, 21)` -> `(N, 64)`.
    fn blocks(&self, mut x: Tensor<B, 4>) -> Tensor<B, 2> {
        for conv in &self.convs {
            // (N, C, S, S) -> (N, C', S, S) -> (N, C', S / 2, S / 2)
            x = self.pool.forward(relu(conv.forward(keras_same_pad_2x2(x))));
        }
        x.flatten(1, 3) // (N, 64, 1, 1) -> (N, 64)
    }

    /// [`blocks`](Self::blocks) as fused channels-last ops, the same values.
    fn blocks_channels_last(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = x.dims()[0];
        let block = |layout| ConvBlock {
            layout,
            kernel: [2, 2],
            padding: KERAS_SAME_2X2,
            pool: true,
            slope: 0.0,
        };
        // (N, S, S, C) -> (N, S / 2, S / 2, C'), channels-last; the first block reads the stamps.
        let blocks: Vec<_> = self
            .convs
            .iter()
            .enumerate()
            .map(|(i, conv)| match i {
                0 => (conv, block(ActivationLayout::ChannelsFirst)),
                _ => (conv, block(ActivationLayout::ChannelsLast)),
            })
            .collect();
        conv_blocks(&blocks, x).reshape([n, CONV_CHANNELS[3]]) // (N, 1, 1, 64) -> (N, 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuAutodiff};
    use crate::test_util::{assert_close, assert_same_values_and_gradient, random};
    use burn::module::AutodiffModule;

    #[test]
    fn fused_blocks_give_burns_values_and_gradients() {
        let model = SeedCnnConfig::new().init::<CpuAutodiff>(&Default::default());
        let x: Tensor<CpuAutodiff, 4> = random([3, CHANNELS, 21, 21], 1);
        let ours = model.blocks_channels_last(x.clone());
        assert_same_values_and_gradient(ours, model.blocks(x.clone()), &model.convs[0].weight);
        // Without autodiff the blocks run as one chain, each candidate through all of them.
        let (model, x) = (model.valid(), x.inner());
        assert!(<Cpu as ChannelsLastOps>::chains_blocks());
        let chained = model.blocks_channels_last(x.clone());
        assert_close(&chained, &model.blocks(x), "the chained blocks");
    }
}
