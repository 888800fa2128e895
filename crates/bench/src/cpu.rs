//! What this CPU can do at best, and what SeedCnn asks of it, for the achieved-GFLOP/s figure.

use serde::Serialize;

/// Floating-point operations (a multiply-add counts 2) of one SeedCnn forward pass.
///
/// Keras 'same' 2x2 convolutions keep the spatial size and each is followed by 2x2 max-pooling
/// (21 -> 10 -> 5 -> 2 -> 1); then Dense 64 x3 and Dense 2. Bias, activations and pooling are a
/// rounding error beside the multiply-adds and are not counted.
pub fn seed_cnn_flops() -> u64 {
    const KERNEL: u64 = 2 * 2;
    let convs: [(u64, u64, u64); 4] = [(21, 4, 32), (10, 32, 32), (5, 32, 64), (2, 64, 64)];
    let conv_macs: u64 = convs
        .iter()
        .map(|&(side, inputs, outputs)| side * side * outputs * KERNEL * inputs)
        .sum();
    let dense_macs = 3 * 64 * 64 + 64 * 2;
    2 * (conv_macs + dense_macs)
}

/// The f32 peak assumed for this machine and how it was derived.
#[derive(Debug, Clone, Serialize)]
pub struct CpuPeak {
    pub model: String,
    pub cores: usize,
    pub mhz: f64,
    /// Widest f32 vector the CPU supports, in lanes.
    pub vector_lanes: u32,
    pub fma: bool,
    /// Assumed FMA (or multiply + add) pipes per core.
    pub fma_units: u32,
    pub peak_gflops: f64,
}

impl CpuPeak {
    /// From /proc/cpuinfo and the CPU's feature flags: cores x clock x lanes x 2 (FMA) x units.
    pub fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let model = field("model name").unwrap_or_else(|| "unknown".into());
        let mhz = field("cpu MHz").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (vector_lanes, fma) = vector_features();
        // Every x86 core with AVX2 + FMA since Haswell / Zen has two FMA pipes.
        let fma_units = 2;
        let flops_per_cycle = f64::from(vector_lanes * if fma { 2 } else { 1 } * fma_units);
        CpuPeak {
            model,
            cores,
            mhz,
            vector_lanes,
            fma,
            fma_units,
            peak_gflops: cores as f64 * mhz / 1e3 * flops_per_cycle,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn vector_features() -> (u32, bool) {
    let lanes = if is_x86_feature_detected!("avx512f") {
        16
    } else if is_x86_feature_detected!("avx") {
        8
    } else {
        4
    };
    (lanes, is_x86_feature_detected!("fma"))
}

#[cfg(not(target_arch = "x86_64"))]
fn vector_features() -> (u32, bool) {
    // NEON: 4 f32 lanes with fused multiply-add.
    (4, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_cnn_flops_by_hand() {
        // conv1 21*21*32*16 + conv2 10*10*32*128 + conv3 5*5*64*128 + conv4 2*2*64*256
        // + dense 3*64*64 + 64*2 multiply-adds.
        let macs = 225_792 + 409_600 + 204_800 + 65_536 + 12_416;
        assert_eq!(seed_cnn_flops(), 2 * macs);
    }
}
