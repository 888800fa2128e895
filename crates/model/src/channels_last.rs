//! A burn backend extension: channels-last convolution (im2col + one GEMM per batch) and
//! max-pooling with the CPU [`kernels`](crate::kernels), differentiable through `Autodiff`.
//!
//! [`ChannelsLastOps`] is implemented for the CPU backend, where it replaces burn's
//! per-stamp convolution, and for `Autodiff<B>` with hand-written backward passes. Other
//! backends (CUDA) keep burn's own convolution: models ask
//! [`ChannelsLastOps::channels_last`] which path to take, and the weights are the same
//! [`Conv2d`] parameters either way, so model records do not depend on the backend.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
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

use crate::kernels::{self, Im2col, Layout};

/// Backend operations for channels-last convolution and pooling. The provided methods run
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

    /// `x` (`dims = [N, H, W, C]`, stored in `spec.layout`) -> `(N * H' * W', C * kH * kW)`.
    fn im2col(x: FloatTensor<Self>, dims: [usize; 4], spec: Im2col) -> FloatTensor<Self> {
        let device = Self::float_device(&x);
        let out = Self::with_values(x, |x| kernels::im2col(x, dims, &spec));
        let (h, w) = spec.output_size(dims[1], dims[2]);
        Self::from_values(out, &[dims[0] * h * w, spec.columns(dims[3])], &device)
    }

    /// The gradient of [`im2col`](Self::im2col) with respect to `x`.
    fn col2im(grad: FloatTensor<Self>, dims: [usize; 4], spec: Im2col) -> FloatTensor<Self> {
        let device = Self::float_device(&grad);
        let out = Self::with_values(grad, |grad| kernels::col2im(grad, dims, &spec));
        let [n, h, w, c] = dims;
        let stored = match spec.layout {
            Layout::ChannelsLast => [n, h, w, c],
            Layout::ChannelsFirst => [n, c, h, w],
        };
        Self::from_values(out, &stored, &device)
    }

    /// 2x2 max-pooling of channels-last `(N, H, W, C)` -> `(N, H/2, W/2, C)`.
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let device = Self::float_device(&x);
        let [n, h, w, c] = dims4::<Self>(&x);
        let out = Self::with_values(x, |x| kernels::max_pool_2x2(x, [n, h, w, c]));
        Self::from_values(out, &[n, h / 2, w / 2, c], &device)
    }

    /// The gradient of [`max_pool_2x2`](Self::max_pool_2x2) with respect to `x`.
    fn max_pool_2x2_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let device = Self::float_device(&x);
        let dims = dims4::<Self>(&x);
        let out = Self::with_values(x, |x| {
            Self::with_values(grad, |grad| kernels::max_pool_2x2_backward(x, grad, dims))
        });
        Self::from_values(out, &dims, &device)
    }
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

    fn im2col(x: FloatTensor<Self>, dims: [usize; 4], spec: Im2col) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Im2colBackward;

        impl<B: ChannelsLastOps> Backward<B, 1> for Im2colBackward {
            type State = ([usize; 4], Im2col);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (dims, spec) = ops.state;
                if let Some(parent) = parent {
                    grads.register::<B>(parent.id, B::col2im(grad, dims, spec));
                }
            }
        }

        match Im2colBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((dims, spec), B::im2col(x.primitive, dims, spec)),
            OpsKind::UnTracked(prep) => prep.finish(B::im2col(x.primitive, dims, spec)),
        }
    }

    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MaxPoolBackward;

        impl<B: ChannelsLastOps> Backward<B, 1> for MaxPoolBackward {
            /// The checkpointed input.
            type State = NodeId;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let x = checkpointer.retrieve_node_output(ops.state);
                if let Some(parent) = parent {
                    grads.register::<B>(parent.id, B::max_pool_2x2_backward(x, grad));
                }
            }
        }

        match MaxPoolBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::max_pool_2x2(x.primitive))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool_2x2(x.primitive)),
        }
    }
}

/// A training backend whose inference backend has the channels-last ops too.
pub trait TrainBackend: AutodiffBackend<InnerBackend: ChannelsLastOps> + ChannelsLastOps {}

impl<B> TrainBackend for B where B: AutodiffBackend<InnerBackend: ChannelsLastOps> + ChannelsLastOps {}

/// Stride-1 convolution of `x` with `conv`'s weights, without its bias, zero-padded by
/// `padding` (`[(top, bottom), (left, right)]`): `(N, H, W, C_in)` -> `(N, H', W', C_out)`.
/// `x` is channels-last, or channels-first `(N, C_in, H, W)` when `layout` says so (stamps).
/// The bias is left to the caller, who may add it after pooling, on a quarter of the values.
pub fn conv2d_unbiased<B: ChannelsLastOps>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    layout: Layout,
    padding: [(usize, usize); 2],
) -> Tensor<B, 4> {
    let weight = conv.weight.val(); // (C_out, C_in, kH, kW)
    let [c_out, c_in, k_h, k_w] = weight.dims();
    let dims = match (layout, x.dims()) {
        (Layout::ChannelsLast, [n, h, w, c]) | (Layout::ChannelsFirst, [n, c, h, w]) => {
            [n, h, w, c]
        }
    };
    assert_eq!(
        dims[3], c_in,
        "input has {} channels, the kernel {c_in}",
        dims[3]
    );
    let spec = Im2col {
        layout,
        kernel: [k_h, k_w],
        padding,
    };
    let (out_h, out_w) = spec.output_size(dims[1], dims[2]);
    let columns = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(B::im2col(
        x.into_primitive().tensor(),
        dims,
        spec,
    )));
    // (C_out, C_in, kH, kW) -> (C_out, C_in * kH * kW), the im2col column order, without a
    // copy; the transpose is a view the GEMM reads as it is.
    let kernel = weight.reshape([c_out, c_in * k_h * k_w]).transpose();
    // (N * H' * W', C_out)
    columns
        .matmul(kernel)
        .reshape([dims[0], out_h, out_w, c_out])
}

/// `conv`'s bias added to channels-last `(N, H, W, C_out)` activations.
pub fn add_bias<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match &conv.bias {
        Some(bias) => x + bias.val().reshape([1, 1, 1, -1]),
        None => x,
    }
}

/// [`conv2d_unbiased`] plus `conv`'s bias.
pub fn conv2d<B: ChannelsLastOps>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    layout: Layout,
    padding: [(usize, usize); 2],
) -> Tensor<B, 4> {
    add_bias(conv, conv2d_unbiased(conv, x, layout, padding))
}

/// 2x2 max-pooling, stride 2, of channels-last `(N, H, W, C)` -> `(N, H/2, W/2, C)`.
pub fn max_pool_2x2<B: ChannelsLastOps>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(B::max_pool_2x2(
        x.into_primitive().tensor(),
    )))
}
