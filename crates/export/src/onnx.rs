//! A trained [`Classifier`] as an ONNX graph that takes raw stamps and returns P(real).
//!
//! ```text
//! stamps (N, 21, 21, 4) float32, channels last, raw pixel values
//!   -> the features' normalisation (per stamp and channel, or the training split's z-score)
//!   -> transpose to (N, 4, 21, 21)
//!   -> the network, layer for layer as burn runs it (Conv, Relu/LeakyRelu, MaxPool, Gemm...)
//!   -> log-odds l_real - l_bogus, divided by the fitted temperature (clipped first, as
//!      `evaluate` clips P(real) to [1e-7, 1 - 1e-7] before scaling), Sigmoid
//! p_real (N) float32
//! ```
//!
//! Opset 13 (ONNX 1.8, IR version 7), which every maintained runtime reads. The protobuf
//! messages are tract-onnx's prost-generated ONNX types, encoded by prost.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use features::NormalisationSpec;
use hits_core::{Channel, STAMP_SIDE};
use model::seed_cnn::KERAS_SAME_2X2;
use model::{Classifier, RotInvCnn, SeedCnn};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

use crate::ExportError;

/// Name of the graph's input.
pub const INPUT: &str = "stamps";
/// Name of the graph's output.
pub const OUTPUT: &str = "p_real";
/// The batch axis' symbolic name.
pub const BATCH_AXIS: &str = "N";
pub const OPSET: i64 = 13;
/// The IR version that goes with [`OPSET`].
const IR_VERSION: i64 = 7;

/// What the graph computes besides the network's own weights.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    /// The features' normalisation, applied to the raw stamps inside the graph.
    pub normalisation: NormalisationSpec,
    /// Fitted by `evaluate` (`[evaluate] calibration = "temperature"`), or none.
    pub temperature: Option<f64>,
    /// `key: value` pairs for the model's `metadata_props` (threshold, provenance...).
    pub metadata: Vec<(String, String)>,
}

/// The input's documentation, as the graph carries it.
pub fn input_doc() -> String {
    let order: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
    format!(
        "float32 ({BATCH_AXIS}, {STAMP_SIDE}, {STAMP_SIDE}, 4): {BATCH_AXIS} candidates, channels last in the order {}; raw pixel values as the four CSVs hold them (each 441-value row is a 21x21 stamp, row-major). The normalisation is inside the graph.",
        order.join(", ")
    )
}

/// The output's documentation, as the graph carries it.
pub fn output_doc(temperature: Option<f64>) -> String {
    let calibrated = match temperature {
        Some(t) => format!(", calibrated by temperature {t}"),
        None => String::new(),
    };
    format!(
        "float32 ({BATCH_AXIS}): probability that each candidate is real{calibrated}; compare it with metadata `threshold`."
    )
}

/// Encode `model` with `spec` as an ONNX model.
pub fn encode<B: Backend>(model: &Classifier<B>, spec: &GraphSpec) -> Result<Vec<u8>, ExportError> {
    let mut g = Graph::default();
    let x = g.normalise(INPUT, &spec.normalisation);
    let x = g.op("Transpose", &[&x], vec![ints("perm", &[0, 3, 1, 2])]);
    let logits = match model {
        Classifier::Seed(m) => g.seed_cnn(&x, m)?,
        Classifier::RotInv(m) => g.rot_inv_cnn(&x, m)?,
    };
    let p_real = g.probability(&logits, spec);

    let side = STAMP_SIDE as i64;
    let graph = pb::GraphProto {
        name: "hits_rb_real_bogus".into(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(
            INPUT,
            &[
                Dim::Batch,
                Dim::Fixed(side),
                Dim::Fixed(side),
                Dim::Fixed(4),
            ],
            input_doc(),
        )],
        output: vec![value_info(
            &p_real,
            &[Dim::Batch],
            output_doc(spec.temperature),
        )],
        ..Default::default()
    };
    let proto = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "hits-rb".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "HiTS real/bogus classifier: raw candidate stamps in, P(real) out.".into(),
        graph: Some(graph),
        metadata_props: spec
            .metadata
            .iter()
            .map(|(key, value)| pb::StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}

/// Nodes and weights, named as they are added.
#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl Graph {
    /// Add an `op` node; returns its output's name. The last node added is named [`OUTPUT`]
    /// by [`probability`](Self::probability).
    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<pb::AttributeProto>) -> String {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        self.push(op, inputs, attribute, output)
    }

    fn push(
        &mut self,
        op: &str,
        inputs: &[&str],
        attribute: Vec<pb::AttributeProto>,
        output: String,
    ) -> String {
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    fn floats(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializer(pb::TensorProto {
            data_type: DataType::Float as i32,
            float_data: values,
            ..tensor(name, dims)
        })
    }

    fn int64s(&mut self, name: &str, dims: &[usize], values: Vec<i64>) -> String {
        self.initializer(pb::TensorProto {
            data_type: DataType::Int64 as i32,
            int64_data: values,
            ..tensor(name, dims)
        })
    }

    fn initializer(&mut self, tensor: pb::TensorProto) -> String {
        let name = tensor.name.clone();
        self.initializers.push(tensor);
        name
    }

    /// A parameter's values as an initializer of its shape.
    fn param<const D: usize, B: Backend>(&mut self, name: &str, p: &Param<Tensor<B, D>>) -> String {
        let tensor = p.val();
        let dims = tensor.dims();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 parameters");
        self.floats(name, &dims, values)
    }

    /// `features::NormalisationSpec::apply` on channels-last stamps.
    fn normalise(&mut self, x: &str, spec: &NormalisationSpec) -> String {
        match spec {
            NormalisationSpec::None => x.into(),
            NormalisationSpec::MinmaxPerStamp => {
                // Per stamp and channel: (x - min) / (max - min), or 0 for a flat channel.
                let axes = || ints("axes", &[1, 2]);
                let min = self.op("ReduceMin", &[x], vec![axes()]);
                let max = self.op("ReduceMax", &[x], vec![axes()]);
                let range = self.op("Sub", &[&max, &min], vec![]);
                let shifted = self.op("Sub", &[x, &min], vec![]);
                let scaled = self.op("Div", &[&shifted, &range], vec![]);
                let zero = self.floats("zero", &[], vec![0.0]);
                let varies = self.op("Greater", &[&range, &zero], vec![]);
                self.op("Where", &[&varies, &scaled, &zero], vec![])
            }
            NormalisationSpec::Zscore { mean, std } => {
                let scale = std.map(|s| if s > 0.0 { 1.0 / s } else { 1.0 });
                let mean = self.floats("zscore_mean", &[4], mean.to_vec());
                let scale = self.floats("zscore_scale", &[4], scale.to_vec());
                let centred = self.op("Sub", &[x, &mean], vec![]);
                self.op("Mul", &[&centred, &scale], vec![])
            }
        }
    }

    /// A convolution with its own padding plus `extra` `[top, left, bottom, right]`.
    fn conv<B: Backend>(
        &mut self,
        name: &str,
        x: &str,
        conv: &Conv2d<B>,
        extra: [usize; 4],
    ) -> Result<String, ExportError> {
        let own = match conv.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Same => {
                return Err(ExportError::Unsupported(format!(
                    "{name}: 'same' padding is not exported"
                )));
            }
        };
        let pads: Vec<i64> = own.iter().zip(extra).map(|(a, b)| (a + b) as i64).collect();
        let weight = self.param(&format!("{name}.weight"), &conv.weight);
        let mut inputs = vec![x.to_string(), weight];
        if let Some(bias) = &conv.bias {
            inputs.push(self.param(&format!("{name}.bias"), bias));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.op(
            "Conv",
            &inputs,
            vec![
                pair("kernel_shape", conv.kernel_size),
                pair("strides", conv.stride),
                pair("dilations", conv.dilation),
                int("group", conv.groups as i64),
                ints("pads", &pads),
            ],
        ))
    }

    fn max_pool(&mut self, x: &str, pool: &burn::nn::pool::MaxPool2d) -> String {
        self.op(
            "MaxPool",
            &[x],
            vec![
                pair("kernel_shape", pool.kernel_size),
                pair("strides", pool.stride),
            ],
        )
    }

    /// burn's `Linear`: `x @ weight + bias`, weight `(d_in, d_out)`.
    fn linear<B: Backend>(&mut self, name: &str, x: &str, layer: &Linear<B>) -> String {
        let weight = self.param(&format!("{name}.weight"), &layer.weight);
        match &layer.bias {
            Some(bias) => {
                let bias = self.param(&format!("{name}.bias"), bias);
                self.op("Gemm", &[x, &weight, &bias], vec![])
            }
            None => self.op("MatMul", &[x, &weight], vec![]),
        }
    }

    fn leaky_relu(&mut self, x: &str) -> String {
        let slope = model::rot_inv_cnn::SLOPE as f32;
        self.op("LeakyRelu", &[x], vec![float("alpha", slope)])
    }

    /// [`SeedCnn::forward`]: `(N, 4, 21, 21)` -> `(N, 2)` logits.
    fn seed_cnn<B: Backend>(&mut self, x: &str, m: &SeedCnn<B>) -> Result<String, ExportError> {
        let [(top, bottom), (left, right)] = KERAS_SAME_2X2;
        let mut x = x.to_string();
        for (i, conv) in m.convs.iter().enumerate() {
            let y = self.conv(&format!("conv{i}"), &x, conv, [top, left, bottom, right])?;
            let y = self.op("Relu", &[&y], vec![]);
            x = self.max_pool(&y, &m.pool);
        }
        let mut x = self.op("Flatten", &[&x], vec![int("axis", 1)]);
        for (i, dense) in m.dense.iter().enumerate() {
            let y = self.linear(&format!("dense{i}"), &x, dense);
            x = self.op("Sigmoid", &[&y], vec![]);
        }
        Ok(self.linear("output", &x, &m.output))
    }

    /// [`RotInvCnn::forward`]: `(N, 4, 21, 21)` -> `(N, 2)` logits.
    fn rot_inv_cnn<B: Backend>(
        &mut self,
        x: &str,
        m: &RotInvCnn<B>,
    ) -> Result<String, ExportError> {
        // rot90 = swap H and W, then reverse H, as `model::rot_inv_cnn::rot90`.
        let reversed = self.int64s(
            "reversed_rows",
            &[STAMP_SIDE],
            (0..STAMP_SIDE as i64).rev().collect(),
        );
        let mut rotations = vec![x.to_string()];
        for _ in 0..3 {
            let previous = rotations.last().expect("one rotation at least").clone();
            let swapped = self.op("Transpose", &[&previous], vec![ints("perm", &[0, 1, 3, 2])]);
            rotations.push(self.op("Gather", &[&swapped, &reversed], vec![int("axis", 2)]));
        }
        let rotations: Vec<&str> = rotations.iter().map(String::as_str).collect();
        // (4N, 4, 21, 21), rotation-major.
        let x = self.op("Concat", &rotations, vec![int("axis", 0)]);
        let none = [0; 4];
        let x = self.conv("conv1", &x, &m.conv1, none)?;
        let x = self.leaky_relu(&x);
        let x = self.conv("conv2", &x, &m.conv2, none)?;
        let x = self.leaky_relu(&x);
        let x = self.max_pool(&x, &m.pool);
        let x = self.conv("conv3", &x, &m.conv3, none)?;
        let x = self.leaky_relu(&x);
        let x = self.conv("conv4", &x, &m.conv4, none)?;
        let x = self.leaky_relu(&x);
        let x = self.conv("conv5", &x, &m.conv5, none)?;
        let x = self.leaky_relu(&x);
        let x = self.max_pool(&x, &m.pool);
        let x = self.op("Flatten", &[&x], vec![int("axis", 1)]);
        let x = self.linear("dense_rotation", &x, &m.dense_rotation);
        let x = self.leaky_relu(&x);
        // Cyclic average pooling: (4N, 64) -> (4, N, 64) -> (N, 64).
        let width = m.dense_rotation.weight.val().dims()[1];
        let shape = self.int64s("rotations_shape", &[3], vec![4, -1, width as i64]);
        let x = self.op("Reshape", &[&x, &shape], vec![]);
        let x = self.op(
            "ReduceMean",
            &[&x],
            vec![ints("axes", &[0]), int("keepdims", 0)],
        );
        let x = self.linear("dense", &x, &m.dense);
        let x = self.leaky_relu(&x); // dropout is the identity at inference
        Ok(self.linear("output", &x, &m.output))
    }

    /// `(N, 2)` logits -> P(real) `(N)`, through the temperature if there is one.
    fn probability(&mut self, logits: &str, spec: &GraphSpec) -> String {
        // Log-odds of real: logits @ [-1, 1]^T, (N, 1).
        let contrast = self.floats("real_minus_bogus", &[2, 1], vec![-1.0, 1.0]);
        let mut log_odds = self.op("MatMul", &[logits, &contrast], vec![]);
        if let Some(t) = spec.temperature {
            let clamp = evaluate::calibration::P_CLAMP;
            let limit = ((1.0 - clamp) / clamp).ln() as f32;
            let low = self.floats("log_odds_min", &[], vec![-limit]);
            let high = self.floats("log_odds_max", &[], vec![limit]);
            let clipped = self.op("Clip", &[&log_odds, &low, &high], vec![]);
            let inverse = self.floats("inverse_temperature", &[], vec![(1.0 / t) as f32]);
            log_odds = self.op("Mul", &[&clipped, &inverse], vec![]);
        }
        let p = self.op("Sigmoid", &[&log_odds], vec![]);
        let flat = self.int64s("batch_shape", &[1], vec![-1]);
        self.push("Reshape", &[&p, &flat], vec![], OUTPUT.into())
    }
}

/// A named tensor of shape `dims`, its type and values still to fill in.
fn tensor(name: &str, dims: &[usize]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        ..Default::default()
    }
}

enum Dim {
    Batch,
    Fixed(i64),
}

fn value_info(name: &str, dims: &[Dim], doc: String) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam(BATCH_AXIS.into()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        doc_string: doc,
    }
}

/// An attribute of `kind`, its value still to fill in.
fn attribute(name: &str, kind: AttributeType) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: kind as i32,
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        i,
        ..attribute(name, AttributeType::Int)
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        ints: values.to_vec(),
        ..attribute(name, AttributeType::Ints)
    }
}

/// A 2-D attribute (kernel shape, strides, dilations) from burn's `[usize; 2]`.
fn pair(name: &str, v: [usize; 2]) -> pb::AttributeProto {
    ints(name, &[v[0] as i64, v[1] as i64])
}

fn float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        f,
        ..attribute(name, AttributeType::Float)
    }
}
