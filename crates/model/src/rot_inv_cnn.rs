//! A rotation-invariant CNN after Enhanced Deep-HiTS (Reyes et al. 2018).
//!
//! The four 90-degree rotations of a stamp pass through one shared convolutional tower; their
//! dense features are averaged (cyclic average pooling), so the output is invariant to
//! rotating the input by any multiple of 90 degrees.
//!
//! ```text
//! input (N, 4, 21, 21) -> 4 rotations stacked along the batch: (4N, 4, 21, 21)
//! zero-pad 3                       (4N, 4, 27, 27)
//! conv 4x4, F                      (4N, F, 24, 24)
//! conv 3x3 pad 1, F                (4N, F, 24, 24)
//! max-pool 2                       (4N, F, 12, 12)
//! 3 x conv 3x3 pad 1, 2F           (4N, 2F, 12, 12)
//! max-pool 2                       (4N, 2F, 6, 6)
//! flatten, dense 64                (4N, 64)
//! mean over the 4 rotations        (N, 64)
//! dense 64, dropout                (N, 64)
//! dense 2                          (N, 2) logits
//! ```
//! Every convolution and hidden dense layer is followed by a leaky ReLU (slope 0.01). Deep-HiTS
//! used F = 32 filters.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use crate::channels_last::{ChannelsLastOps, conv_blocks};
use crate::kernels::{ActivationLayout, ConvBlock};
use crate::{CHANNELS, CLASSES, SIDE};

fn act<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    leaky_relu(x, SLOPE)
}

/// Slope of the leaky ReLU after every convolution and hidden dense layer.
pub const SLOPE: f64 = 0.01;
const DENSE: usize = 64;
/// Side after padding (27), the 4x4 conv (24) and two poolings.
const TOWER_SIDE: usize = (SIDE + 2 * 3 - 3) / 4;

#[derive(Config, Debug)]
pub struct RotInvCnnConfig {
    /// Dropout before the classifier.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// F: filters of the first two convolutions; the last three have 2F.
    #[config(default = 32)]
    pub filters: usize,
}

#[derive(Module, Debug)]
pub struct RotInvCnn<B: Backend> {
    pub conv1: Conv2d<B>,
    /// Followed by the first pooling.
    pub conv2: Conv2d<B>,
    pub conv3: Conv2d<B>,
    pub conv4: Conv2d<B>,
    /// Followed by the second pooling.
    pub conv5: Conv2d<B>,
    pub pool: MaxPool2d,
    /// Per rotation, before the rotations are averaged.
    pub dense_rotation: Linear<B>,
    pub dense: Linear<B>,
    pub dropout: Dropout,
    /// The logits layer.
    pub output: Linear<B>,
}

impl RotInvCnnConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> RotInvCnn<B> {
        let conv = |c_in, c_out, k, pad| {
            Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device)
        };
        let (f, f2) = (self.filters, 2 * self.filters);
        RotInvCnn {
            conv1: conv(CHANNELS, f, 4, 3),
            conv2: conv(f, f, 3, 1),
            conv3: conv(f, f2, 3, 1),
            conv4: conv(f2, f2, 3, 1),
            conv5: conv(f2, f2, 3, 1),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dense_rotation: LinearConfig::new(f2 * TOWER_SIDE * TOWER_SIDE, DENSE).init(device),
            dense: LinearConfig::new(DENSE, DENSE).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(DENSE, CLASSES).init(device),
        }
    }
}

/// Rotate `(N, C, H, W)` images by 90 degrees counter-clockwise in the (H, W) plane.
pub fn rot90<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.swap_dims(2, 3).flip([2])
}

impl<B: ChannelsLastOps> RotInvCnn<B> {
    /// `(N, 4, 21, 21)` stamps -> `(N, 2)` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = x.dims()[0];
        let r1 = rot90(x.clone());
        let r2 = rot90(r1.clone());
        let r3 = rot90(r2.clone());
        // (4N, 4, 21, 21), rotation-major.
        let x = Tensor::cat(vec![x, r1, r2, r3], 0);
        let x = if B::channels_last() {
            self.tower_channels_last(x)
        } else {
            self.tower(x)
        };
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = act(self.dense_rotation.forward(x)); // (4N, 64)
        // Cyclic average pooling over the rotations: (4, N, 64) -> (N, 64).
        let x = x.reshape([4, n, DENSE]).mean_dim(0).reshape([n, DENSE]);
        let x = self.dropout.forward(act(self.dense.forward(x)));
        self.output.forward(x)
    }

    /// The convolutional tower through burn's layers: `(4N, 4, 21, 21)` -> `(4N, 2F, 6, 6)`.
    fn tower(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = act(self.conv1.forward(x)); // (4N, F, 24, 24)
        let x = self.pool.forward(act(self.conv2.forward(x))); // (4N, F, 12, 12)
        let x = act(self.conv3.forward(x));
        let x = act(self.conv4.forward(x));
        self.pool.forward(act(self.conv5.forward(x))) // (4N, 2F, 6, 6)
    }

    /// [`tower`](Self::tower) as fused channels-last blocks, the same values.
    fn tower_channels_last(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let block = |pad, pool| ConvBlock {
            layout: ActivationLayout::ChannelsLast,
            kernel: [3, 3],
            padding: [(pad, pad); 2],
            pool,
            slope: SLOPE as f32,
        };
        let first = ConvBlock {
            layout: ActivationLayout::ChannelsFirst, // the stamps
            kernel: [4, 4],
            ..block(3, false)
        };
        let blocks = [
            (&self.conv1, first),          // (4N, 24, 24, F)
            (&self.conv2, block(1, true)), // (4N, 12, 12, F)
            (&self.conv3, block(1, false)),
            (&self.conv4, block(1, false)),
            (&self.conv5, block(1, true)), // (4N, 6, 6, 2F)
        ];
        // The dense layer's weights are ordered (C, H, W), as burn's path flattens.
        conv_blocks(&blocks, x).permute([0, 3, 1, 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, CpuAutodiff};
    use crate::test_util::{assert_close, assert_same_values_and_gradient, random};
    use burn::module::AutodiffModule;

    #[test]
    fn fused_tower_gives_burns_values_and_gradients() {
        let model = RotInvCnnConfig::new().init::<CpuAutodiff>(&Default::default());
        let x: Tensor<CpuAutodiff, 4> = random([2, CHANNELS, 21, 21], 3);
        let ours = model.tower_channels_last(x.clone());
        assert_same_values_and_gradient(ours, model.tower(x.clone()), &model.conv1.weight);
        // Without autodiff the blocks run as one chain, each candidate through all of them.
        let (model, x) = (model.valid(), x.inner());
        assert!(<Cpu as ChannelsLastOps>::chains_blocks());
        let chained = model.tower_channels_last(x.clone());
        assert_close(&chained, &model.tower(x), "the chained blocks");
    }
}
