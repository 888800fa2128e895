//! The exported graph, run by tract on raw stamps, gives the model's own P(real) for both
//! networks, every normalisation, with and without a temperature.

mod common;

use common::{STAMPS, raw, spread_model, zscore};
use export::check::{Comparison, OnnxRunner, TOLERANCE};
use export::onnx::{self, GraphSpec};
use features::NormalisationSpec;
use hits_core::config::ModelKind;
use model::Classifier;
use model::backend::Cpu;
use prost::Message;
use tract_onnx::pb;

fn spec(normalisation: NormalisationSpec, temperature: Option<f64>) -> GraphSpec {
    GraphSpec {
        normalisation,
        temperature,
        metadata: vec![("threshold".into(), "0.5".into())],
    }
}

fn compare(model: &Classifier<Cpu>, graph: &GraphSpec, reference: &GraphSpec) -> Comparison {
    let bytes = onnx::encode(model, graph).unwrap();
    let path = std::path::Path::new("test.onnx");
    let runner = OnnxRunner::new(path, &bytes).unwrap();
    Comparison::run(
        &runner,
        path,
        model,
        &raw(STAMPS),
        &reference.normalisation,
        reference.temperature,
    )
    .unwrap()
}

#[test]
fn tract_gives_the_models_p_real_for_every_model_normalisation_and_temperature() {
    for kind in [ModelKind::SeedCnn, ModelKind::RotInvCnn] {
        for normalisation in [
            NormalisationSpec::None,
            NormalisationSpec::MinmaxPerStamp,
            zscore(),
        ] {
            let model = spread_model(kind, &normalisation);
            for temperature in [None, Some(1.8)] {
                let spec = spec(normalisation.clone(), temperature);
                let c = compare(&model, &spec, &spec);
                let (difference, row) = c.max_difference();
                let case = format!("{kind:?}, {normalisation:?}, temperature {temperature:?}");
                assert!(
                    difference <= TOLERANCE,
                    "{case}: row {row} differs by {difference}"
                );
                // The comparison means something only if P(real) varies between stamps.
                let (lo, hi) = c
                    .ours
                    .iter()
                    .fold((1.0f64, 0.0f64), |(lo, hi), &p| (lo.min(p), hi.max(p)));
                assert!(hi - lo > 0.2, "{case}: P(real) spans only {lo}..{hi}");
            }
        }
    }
}

#[test]
fn a_graph_that_normalises_or_calibrates_otherwise_is_caught() {
    let model = spread_model(ModelKind::SeedCnn, &NormalisationSpec::MinmaxPerStamp);
    let reference = spec(NormalisationSpec::MinmaxPerStamp, Some(1.8));
    for wrong in [
        spec(NormalisationSpec::None, Some(1.8)),
        spec(zscore(), Some(1.8)),
        spec(NormalisationSpec::MinmaxPerStamp, None),
    ] {
        let (difference, _) = compare(&model, &wrong, &reference).max_difference();
        assert!(difference > 100.0 * TOLERANCE, "{wrong:?}: {difference}");
    }
}

#[test]
fn the_graph_documents_its_input_output_and_threshold() {
    let model = spread_model(ModelKind::SeedCnn, &NormalisationSpec::MinmaxPerStamp);
    let bytes = onnx::encode(&model, &spec(NormalisationSpec::MinmaxPerStamp, None)).unwrap();
    let proto = pb::ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(proto.opset_import[0].version, onnx::OPSET);
    let graph = proto.graph.unwrap();
    let dims = |info: &pb::ValueInfoProto| -> Vec<String> {
        let Some(pb::type_proto::Value::TensorType(t)) = &info.r#type.as_ref().unwrap().value
        else {
            panic!("not a tensor")
        };
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                pb::tensor_shape_proto::dimension::Value::DimValue(n) => n.to_string(),
                pb::tensor_shape_proto::dimension::Value::DimParam(s) => s.clone(),
            })
            .collect()
    };
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, onnx::INPUT);
    assert_eq!(dims(&graph.input[0]), ["N", "21", "21", "4"]);
    assert!(
        graph.input[0]
            .doc_string
            .contains("template, science, difference")
    );
    assert_eq!(graph.output.len(), 1);
    assert_eq!(graph.output[0].name, onnx::OUTPUT);
    assert_eq!(dims(&graph.output[0]), ["N"]);
    assert!(
        proto
            .metadata_props
            .iter()
            .any(|e| e.key == "threshold" && e.value == "0.5")
    );
    // The weights are all there: SeedCnn's 41,986 parameters.
    let weights: usize = graph
        .initializer
        .iter()
        .filter(|t| t.name.contains(".weight") || t.name.contains(".bias"))
        .map(|t| t.float_data.len())
        .sum();
    assert_eq!(weights, 41_986);
}
