//! A burn backend extension: fused channels-last convolution blocks (convolution, pooling,
//! bias and activation in one op) with the CPU [`crate::kernels`], differentiable
//! through `Autodiff`.
//!
//! [`ChannelsLastOps`] is implemented for the CPU backend, where it replaces burn's
//! per-stamp convolution, and for `Autodiff<B>` with a hand-written backward pass. Other
//! backends (CUDA) keep burn's own convolution: models ask
//! [`ChannelsLastOps::channels_last`] which path to take, and the weights are the same
//! [`Conv2d`] parameters either way, so model records do not depend on the backend.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{Flex, FlexDevice, FlexTensor, Layout as FlexLayout};

use std::sync::Arc;

use crate::kernels::{self, ActivationLayout, ChainLink, ConvBlock, InstructionSet};

/// Backend operations for fused channels-last convolution blocks. The provided methods run
/// the CPU kernels on the tensor's values; a backend declares whether to use them, and may
/// give direct access to its values instead of a copy.
pub trait ChannelsLastOps: Backend {
    /// Whether models should take the channels-last path on this backend.
    fn channels_last() -> bool {
        false
    }

    /// Call `f` with the tensor's values, row-major.
    fn with_values<R>(x: FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        f(&copy_values::<Self>(x))
    }

    /// A tensor of `dims` holding `values`, row-major, on `device`.
    fn from_values(values: Vec<f32>, dims: &[usize], device: &Self::Device) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, dims.to_vec()), device)
    }

    /// The fused block [`kernels::conv_block`]: `x` holds `dims = [N, H, W, C_in]` stored
    /// in `spec.layout`, `weight` is `(C_out, C_in, kH, kW)`, `bias` `(C_out)`. Returns the
    /// channels-last `(N, H', W', C_out)` output and, when pooling and `keep_argmax`, each
    /// output value's window position (for the backward pass). Autodiff backends decide
    /// `keep_argmax` themselves.
    fn conv_block(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        dims: [usize; 4],
        spec: ConvBlock,
        keep_argmax: bool,
    ) -> (FloatTensor<Self>, Option<Arc<[u8]>>) {
        let device = Self::float_device(&x);
        let c_out = dims4::<Self>(&weight)[0];
        let (out, argmax) = Self::with_values(x, |x| {
            Self::with_values(weight, |w| {
                Self::with_values(bias, |b| {
                    kernels::conv_block(InstructionSet::best(), x, dims, w, b, &spec, keep_argmax)
                })
            })
        });
        let [h, w] = spec.output_size(dims[1], dims[2]);
        let out = Self::from_values(out, &[dims[0], h, w, c_out], &device);
        (out, argmax.map(Arc::from))
    }

    /// Whether runs of blocks may go through [`conv_chain`](Self::conv_chain): on the CPU,
    /// where no backward pass needs each block's output.
    fn chains_blocks() -> bool {
        false
    }

    /// [`kernels::conv_chain`]: `x` holds `dims = [N, H, W, C_in]` in the first link's
    /// layout. Returns the last block's channels-last output and its dimensions.
    fn conv_chain(
        x: FloatTensor<Self>,
        links: &[ChainLink],
        dims: [usize; 4],
    ) -> (FloatTensor<Self>, [usize; 4]) {
        let device = Self::float_device(&x);
        let (out, dims) = Self::with_values(x, |x| {
            kernels::conv_chain(InstructionSet::best(), x, dims, links)
        });
        (Self::from_values(out, &dims, &device), dims)
    }

    /// The gradients of [`conv_block`](Self::conv_block) with respect to `x` (when
    /// `input_grad`), `weight` and `bias`, from the gradient of its output.
    #[allow(clippy::too_many_arguments)] // the forward pass's inputs and outputs
    fn conv_block_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output: FloatTensor<Self>,
        argmax: Option<&[u8]>,
        grad: FloatTensor<Self>,
        dims: [usize; 4],
        spec: ConvBlock,
        input_grad: bool,
    ) -> ConvBlockGrads<Self> {
        let device = Self::float_device(&x);
        let weight_dims = dims4::<Self>(&weight);
        let grads = Self::with_values(x, |x| {
            Self::with_values(weight, |w| {
                Self::with_values(output, |out| {
                    Self::with_values(grad, |grad| {
                        let pass = kernels::BackwardPass {
                            input: x,
                            dims,
                            weight: w,
                            output: out,
                            argmax,
                            output_grad: grad,
                        };
                        kernels::conv_block_backward(
                            InstructionSet::best(),
                            &pass,
                            &spec,
                            input_grad,
                        )
                    })
                })
            })
        });
        let [n, h, w, c] = dims;
        let stored = match spec.layout {
            ActivationLayout::ChannelsLast => [n, h, w, c],
            ActivationLayout::ChannelsFirst => [n, c, h, w],
        };
        ConvBlockGrads {
            input: grads
                .input
                .map(|dx| Self::from_values(dx, &stored, &device)),
            weight: Self::from_values(grads.weight, &weight_dims, &device),
            bias: Self::from_values(grads.bias, &[weight_dims[0]], &device),
        }
    }
}

/// [`ChannelsLastOps::conv_block_backward`]'s gradients.
pub struct ConvBlockGrads<B: Backend> {
    pub input: Option<FloatTensor<B>>,
    pub weight: FloatTensor<B>,
    pub bias: FloatTensor<B>,
}

/// A float tensor's values as a new `f32` vector, row-major.
fn copy_values<B: Backend>(x: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(x))
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 values")
}

fn dims4<B: Backend>(x: &FloatTensor<B>) -> [usize; 4] {
    use burn::tensor::TensorMetadata;
    x.shape().dims()
}

/// The CPU backend hands its buffers to the kernels without copies.
impl ChannelsLastOps for Flex {
    fn channels_last() -> bool {
        true
    }

    fn chains_blocks() -> bool {
        true
    }

    fn with_values<R>(x: FlexTensor, f: impl FnOnce(&[f32]) -> R) -> R {
        if x.dtype() != DType::F32 {
            return f(&copy_values::<Self>(x));
        }
        let x = x.to_contiguous(); // a no-op for the kernels' own outputs
        let values: &[f32] = x.storage();
        f(&values[..x.layout().num_elements()])
    }

    fn from_values(values: Vec<f32>, dims: &[usize], _: &FlexDevice) -> FlexTensor {
        FlexTensor::new(
            Bytes::from_elems(values),
            FlexLayout::contiguous(Shape::from(dims.to_vec())),
            DType::F32,
        )
    }
}

#[cfg(feature = "cuda")]
impl ChannelsLastOps for burn::backend::Cuda {}

impl<B: ChannelsLastOps, C: CheckpointStrategy> ChannelsLastOps for Autodiff<B, C> {
    fn channels_last() -> bool {
        B::channels_last()
    }

    fn conv_block(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        dims: [usize; 4],
        spec: ConvBlock,
        _: bool,
    ) -> (FloatTensor<Self>, Option<Arc<[u8]>>) {
        #[derive(Debug)]
        struct ConvBlockBackward;

        /// The block's input, weight, output and pooling positions.
        type State<B> = (
            FloatTensor<B>,
            FloatTensor<B>,
            FloatTensor<B>,
            Option<Arc<[u8]>>,
            [usize; 4],
            ConvBlock,
        );

        impl<B: ChannelsLastOps> Backward<B, 3> for ConvBlockBackward {
            type State = State<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [x_node, weight_node, bias_node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, output, argmax, dims, spec) = ops.state;
                let block = B::conv_block_backward(
                    x,
                    weight,
                    output,
                    argmax.as_deref(),
                    grad,
                    dims,
                    spec,
                    x_node.is_some(),
                );
                if let (Some(node), Some(dx)) = (x_node, block.input) {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = weight_node {
                    grads.register::<B>(node.id, block.weight);
                }
                if let Some(node) = bias_node {
                    grads.register::<B>(node.id, block.bias);
                }
            }
        }

        let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
        let out = match ConvBlockBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, argmax) = B::conv_block(
                    x.primitive.clone(),
                    weight.primitive.clone(),
                    bias.primitive,
                    dims,
                    spec,
                    true,
                );
                let state = (
                    x.primitive,
                    weight.primitive,
                    out.clone(),
                    argmax,
                    dims,
                    spec,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                B::conv_block(
                    x.primitive,
                    weight.primitive,
                    bias.primitive,
                    dims,
                    spec,
                    false,
                )
                .0,
            ),
        };
        (out, None)
    }
}

/// A training backend whose inference backend has the channels-last ops too.
pub trait TrainBackend: AutodiffBackend<InnerBackend: ChannelsLastOps> + ChannelsLastOps {}

impl<B> TrainBackend for B where B: AutodiffBackend<InnerBackend: ChannelsLastOps> + ChannelsLastOps {}

/// The fused block `act(pool(conv(x)) + bias)` of [`kernels::conv_block`] with `conv`'s
/// weight and bias: `x` is channels-last `(N, H, W, C_in)`, or channels-first
/// `(N, C_in, H, W)` when `spec.layout` says so (stamps); the output is channels-last
/// `(N, H', W', C_out)`.
pub fn conv_block<B: ChannelsLastOps>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    spec: ConvBlock,
) -> Tensor<B, 4> {
    let dims = input_dims(x.dims(), spec);
    let (weight, bias) = block_params(conv, dims, spec);
    let (out, _) = B::conv_block(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
        dims,
        spec,
        false, // an autodiff backend keeps what its backward pass needs
    );
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// [`conv_block`] with each `(conv, spec)` in turn. Where the backend chains blocks (CPU
/// inference) they run as one [`kernels::conv_chain`], each candidate through all of them.
pub fn conv_blocks<B: ChannelsLastOps>(
    blocks: &[(&Conv2d<B>, ConvBlock)],
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let Some((_, first)) = blocks.first() else {
        return x;
    };
    if !B::chains_blocks() {
        return blocks
            .iter()
            .fold(x, |x, (conv, spec)| conv_block(conv, x, *spec));
    }
    let dims = input_dims(x.dims(), *first);
    let mut next = dims;
    // Each block's weight and bias values, checked against its input.
    let params: Vec<(Vec<f32>, Vec<f32>)> = blocks
        .iter()
        .map(|(conv, spec)| {
            let (weight, bias) = block_params(conv, next, *spec);
            let [h, w] = spec.output_size(next[1], next[2]);
            next = [next[0], h, w, weight.dims()[0]];
            (
                copy_values::<B>(weight.into_primitive().tensor()),
                copy_values::<B>(bias.into_primitive().tensor()),
            )
        })
        .collect();
    let links: Vec<ChainLink> = blocks
        .iter()
        .zip(&params)
        .map(|((_, spec), (weight, bias))| ChainLink {
            weight,
            bias,
            spec: *spec,
        })
        .collect();
    let (out, _) = B::conv_chain(x.into_primitive().tensor(), &links, dims);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `[N, H, W, C]` of a block's input of shape `shape`, stored as `spec.layout` says.
fn input_dims(shape: [usize; 4], spec: ConvBlock) -> [usize; 4] {
    match (spec.layout, shape) {
        (ActivationLayout::ChannelsLast, [n, h, w, c])
        | (ActivationLayout::ChannelsFirst, [n, c, h, w]) => [n, h, w, c],
    }
}

/// `conv`'s weight `(C_out, C_in, kH, kW)` and bias (zeros without one), checked against
/// the block and its input's `dims`.
fn block_params<B: Backend>(
    conv: &Conv2d<B>,
    dims: [usize; 4],
    spec: ConvBlock,
) -> (Tensor<B, 4>, Tensor<B, 1>) {
    let weight = conv.weight.val();
    let [c_out, c_in, k_h, k_w] = weight.dims();
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([c_out], &weight.device()),
    };
    assert_eq!(
        dims[3], c_in,
        "input has {} channels, the kernel {c_in}",
        dims[3]
    );
    assert_eq!(
        spec.kernel,
        [k_h, k_w],
        "the block's kernel size is the weight's"
    );
    (weight, bias)
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::activation::leaky_relu;
    use burn::tensor::ops::PadMode;

    use super::*;
    use crate::backend::{Cpu, CpuAutodiff};
    use crate::test_util::{assert_close, random};

    /// (C_in, C_out, kernel, padding, pool, slope).
    type Case = (usize, usize, usize, [(usize, usize); 2], bool, f32);

    /// SeedCnn's and RotInvCnn's blocks, channel counts that are not a multiple of the
    /// 16-channel tile, no padding, an odd pooled side, uneven padding, padding wider than
    /// the kernel, and pooled ReLU blocks with rows of 16 taps or more (the backward pass's
    /// `axpy` form), one of them not a whole number of 16-lane vectors.
    const CASES: [Case; 10] = [
        (4, 32, 2, [(0, 1), (0, 1)], true, 0.0),
        (4, 32, 4, [(3, 3), (3, 3)], false, 0.01),
        (3, 5, 3, [(1, 1), (1, 1)], true, 0.01),
        (2, 20, 3, [(1, 1), (1, 1)], false, 0.0),
        (2, 3, 4, [(0, 0), (0, 0)], true, 0.0),
        (2, 2, 3, [(1, 0), (0, 2)], false, 0.3),
        (2, 3, 2, [(2, 3), (3, 2)], false, 0.2),
        (3, 17, 2, [(3, 1), (0, 2)], true, 0.1),
        (8, 20, 2, [(0, 1), (0, 1)], true, 0.0),
        (9, 33, 3, [(1, 1), (1, 1)], true, 0.0),
    ];

    /// burn's layers: channels-first `x` -> pad -> conv -> activation -> pool, channels-last.
    fn burns<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, spec: ConvBlock) -> Tensor<B, 4> {
        let y = conv.forward(x.pad(spec.padding, PadMode::Constant(0.0)));
        let y = leaky_relu(y, spec.slope.into());
        let y = if spec.pool {
            MaxPool2dConfig::new([2, 2]).init().forward(y)
        } else {
            y
        };
        y.permute([0, 2, 3, 1])
    }

    fn case<B: Backend>(i: usize) -> (Conv2d<B>, Tensor<B, 4>, ConvBlock) {
        let (c_in, c_out, k, padding, pool, slope) = CASES[i];
        let mut conv = Conv2dConfig::new([c_in, c_out], [k, k]).init::<B>(&Default::default());
        conv.bias = Some(Param::from_tensor(random([c_out], 7)));
        let x = random([3, c_in, 9, 8], i as u32);
        let spec = ConvBlock {
            layout: ActivationLayout::ChannelsFirst,
            kernel: [k, k],
            padding,
            pool,
            slope,
        };
        (conv, x, spec)
    }

    #[test]
    fn conv_block_gives_burns_values_from_either_layout() {
        for i in 0..CASES.len() {
            let (conv, x, spec) = case::<Cpu>(i);
            let expected = burns(&conv, x.clone(), spec);
            let first = conv_block(&conv, x.clone(), spec);
            let last = conv_block(
                &conv,
                x.permute([0, 2, 3, 1]),
                ConvBlock {
                    layout: ActivationLayout::ChannelsLast,
                    ..spec
                },
            );
            assert_close(&first, &expected, &format!("case {i}, NCHW input"));
            assert_close(&last, &expected, &format!("case {i}, NHWC input"));
        }
    }

    #[test]
    fn conv_block_gives_burns_gradients() {
        type A = CpuAutodiff;
        for i in 0..CASES.len() {
            let (conv, x, spec) = case::<A>(i);
            // loss = sum(weights * block(x)), through both.
            let gradients = |fused: bool, layout: ActivationLayout| {
                let x = match layout {
                    ActivationLayout::ChannelsFirst => x.clone(),
                    ActivationLayout::ChannelsLast => x.clone().permute([0, 2, 3, 1]),
                }
                .detach()
                .require_grad();
                let y = if fused {
                    conv_block(&conv, x.clone(), ConvBlock { layout, ..spec })
                } else {
                    let nchw = match layout {
                        ActivationLayout::ChannelsFirst => x.clone(),
                        ActivationLayout::ChannelsLast => x.clone().permute([0, 3, 1, 2]),
                    };
                    burns(&conv, nchw, spec)
                };
                let grads = (y.clone() * random::<A, 4>(y.dims(), 5)).sum().backward();
                [
                    x.grad(&grads).unwrap(),
                    conv.weight.val().grad(&grads).unwrap(),
                    conv.bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&grads)
                        .unwrap()
                        .unsqueeze(),
                ]
            };
            for layout in [
                ActivationLayout::ChannelsFirst,
                ActivationLayout::ChannelsLast,
            ] {
                let (ours, expected) = (gradients(true, layout), gradients(false, layout));
                assert!(
                    ours[0].clone().abs().sum().into_scalar() > 0.0,
                    "gradient must flow"
                );
                for (what, (a, b)) in ["d/dx", "d/dweight", "d/dbias"]
                    .iter()
                    .zip(ours.iter().zip(&expected))
                {
                    assert_close(a, b, &format!("case {i}, {layout:?}: {what}"));
                }
            }
        }
    }
}
