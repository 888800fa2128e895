use hits_core::config::{ModelConfig, ModelKind};
use model::Classifier;
use model::backend::Cpu;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args[1].parse().unwrap();
    let secs: f64 = args[2].parse().unwrap();
    let kind = if args.get(3).map(|s| s.as_str()) == Some("rot") {
        ModelKind::RotInvCnn
    } else {
        ModelKind::SeedCnn
    };
    let device = Default::default();
    let model = Classifier::<Cpu>::init(
        &ModelConfig {
            kind,
            ..ModelConfig::default()
        },
        &device,
    );
    let input: Vec<f32> = (0..batch * hits_core::TENSOR_LEN)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
        .collect();
    model.predict(&input, batch, &device);
    let t = std::time::Instant::now();
    let mut n = 0;
    while t.elapsed().as_secs_f64() < secs {
        model.predict(&input, batch, &device);
        n += batch;
    }
    println!(
        "{batch}: {:.0} cand/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
}
