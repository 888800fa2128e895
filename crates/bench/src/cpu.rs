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
    /// Cores x the clock /proc/cpuinfo reports x lanes x 2 x units: below the real peak where
    /// the cores run faster than that clock (a VM reports its base clock).
    pub peak_gflops: f64,
    /// Multiply-adds per second of a loop that does nothing else, on every core at once with
    /// the widest vectors ([`measure_fma_peak`]); `None` without FMA.
    pub measured_peak_gflops: Option<f64>,
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
            measured_peak_gflops: measure_fma_peak(cores, 0.5),
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

/// A loop of `rounds` multiply-adds per chain, and its vectors' lanes.
type FmaLoop = (fn(u64) -> f32, usize);

/// Independent chains of multiply-adds per thread: enough to cover the FMA latency on
/// both pipes (4 cycles x 2 pipes needs 8).
const CHAINS: usize = 12;

/// The f32 GFLOP/s of `threads` threads each running `LANES`-wide multiply-add chains
/// for about `seconds`, with the widest FMA this CPU runs; `None` without FMA.
pub fn measure_fma_peak(threads: usize, seconds: f64) -> Option<f64> {
    let per_thread = |run: fn(u64) -> f32, lanes: usize| {
        let rounds = 1u64 << 20;
        let start = std::time::Instant::now();
        let mut done = 0;
        while start.elapsed().as_secs_f64() < seconds {
            std::hint::black_box(run(rounds));
            done += rounds;
        }
        (done * (CHAINS * lanes * 2) as u64) as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    let (run, lanes) = widest_fma()?;
    let rates: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || per_thread(run, lanes)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .collect()
    });
    Some(rates.iter().sum())
}

/// The widest multiply-add loop this CPU runs, and its lanes. Written with intrinsics: as
/// plain loops over arrays the compiler vectorised across the chains, with gathers.
#[cfg(target_arch = "x86_64")]
fn widest_fma() -> Option<FmaLoop> {
    use std::arch::x86_64::*;
    /// `rounds` multiply-adds on each of [`CHAINS`] vectors of 1; returns the sum of their
    /// first lanes.
    macro_rules! chains {
        ($name:ident, $features:literal, $set1:ident, $fmadd:ident, $first:ident) => {
            #[target_feature(enable = $features)]
            fn $name(rounds: u64) -> f32 {
                let mut acc = [$set1(1.0); CHAINS];
                let (b, c) = ($set1(0.999_999), $set1(1e-7));
                for _ in 0..rounds {
                    for chain in acc.iter_mut() {
                        *chain = $fmadd(*chain, b, c);
                    }
                }
                acc.iter().map(|chain| $first(*chain)).sum()
            }
        };
    }
    chains!(
        avx512,
        "avx512f,fma",
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        first_512
    );
    chains!(
        avx2,
        "avx2,fma",
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_cvtss_f32
    );
    #[target_feature(enable = "avx512f")]
    fn first_512(v: __m512) -> f32 {
        _mm512_cvtss_f32(v)
    }
    use std::arch::is_x86_feature_detected as has;
    // SAFETY: each is called only where the CPU has its features.
    if has!("avx512f") && has!("fma") {
        Some((|r| unsafe { avx512(r) }, 16))
    } else if has!("avx2") && has!("fma") {
        Some((|r| unsafe { avx2(r) }, 8))
    } else {
        None
    }
}

/// NEON: FMA is part of aarch64.
#[cfg(target_arch = "aarch64")]
fn widest_fma() -> Option<FmaLoop> {
    use std::arch::aarch64::*;
    fn neon(rounds: u64) -> f32 {
        // SAFETY: NEON is part of aarch64.
        unsafe {
            let mut acc = [vdupq_n_f32(1.0); CHAINS];
            let (b, c) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
            for _ in 0..rounds {
                for chain in acc.iter_mut() {
                    *chain = vfmaq_f32(c, *chain, b);
                }
            }
            acc.iter().map(|chain| vgetq_lane_f32::<0>(*chain)).sum()
        }
    }
    Some((neon, 4))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn widest_fma() -> Option<FmaLoop> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_loop_computes_its_multiply_adds() {
        // v <- v * 0.999999 + 1e-7, three times from 1, in each chain.
        let mut v = 1.0f32;
        for _ in 0..3 {
            v = v.mul_add(0.999_999, 1e-7);
        }
        let expected: f32 = (0..CHAINS).map(|_| v).sum();
        match widest_fma() {
            Some((run, _)) => assert_eq!(run(3), expected),
            None => eprintln!("skipped: this CPU has no FMA"),
        }
    }

    #[test]
    fn seed_cnn_flops_by_hand() {
        // conv1 21*21*32*16 + conv2 10*10*32*128 + conv3 5*5*64*128 + conv4 2*2*64*256
        // + dense 3*64*64 + 64*2 multiply-adds.
        let macs = 225_792 + 409_600 + 204_800 + 65_536 + 12_416;
        assert_eq!(seed_cnn_flops(), 2 * macs);
    }
}
