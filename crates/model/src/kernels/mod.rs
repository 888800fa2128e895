//! CPU kernels for fused convolution blocks, `act(pool(conv(x)) + bias)`: a direct
//! convolution over channels-last activations, parallel across the candidates of a batch.
//!
//! burn-flex convolves one stamp at a time through im2col and a GEMM, then pools, adds the
//! bias and applies the activation as separate passes, each allocating its output. With
//! 21x21 stamps those GEMMs are tiny and the passes dominate. Here each candidate is one
//! call: its zero-padded input sits in a cache-sized scratch buffer, every output pixel's
//! taps are read in place (no im2col matrix), and pooling, bias and activation are applied
//! to the accumulators before anything is stored. A per-channel bias and a monotone
//! activation commute with the max, so pooling first gives the same result on a quarter of
//! the values.
//!
//! The inner loop is a register tile of 4 pixels x 16 output channels. The same generic code
//! is compiled for each instruction set ([`InstructionSet`]) and the widest this CPU runs is
//! chosen at run time: AVX-512 (one 16-lane vector per pixel; with 32 registers the tile
//! takes 8 pixels x two blocks of 16 channels, 16 accumulators), AVX2 + FMA (two 8-lane
//! vectors per pixel, 8 accumulators), or the baseline. Every path sums each value in the
//! same order. For inference, [`conv_chain`] runs each candidate through several blocks.

use rayon::prelude::*;

/// Memory order of a 4-D activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationLayout {
    /// `(N, H, W, C)`, as between the channels-last layers.
    ChannelsLast,
    /// `(N, C, H, W)`, as stamps arrive.
    ChannelsFirst,
}

/// One fused block: stride-1 convolution with zero padding, optional 2x2 max-pooling
/// (stride 2, an odd last row or column dropped, as Keras' valid pooling), the bias, then a
/// (leaky) ReLU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvBlock {
    /// The input's memory order; the output is always channels-last.
    pub layout: ActivationLayout,
    /// `[kH, kW]`.
    pub kernel: [usize; 2],
    /// `[(top, bottom), (left, right)]` rows and columns of zeros.
    pub padding: [(usize, usize); 2],
    pub pool: bool,
    /// Slope of the activation below zero: 0 for ReLU.
    pub slope: f32,
}

impl ConvBlock {
    /// Output `[H', W']` for an `(H, W)` input.
    pub fn output_size(&self, height: usize, width: usize) -> [usize; 2] {
        let [(top, bottom), (left, right)] = self.padding;
        let conv = [
            (height + top + bottom + 1).saturating_sub(self.kernel[0]),
            (width + left + right + 1).saturating_sub(self.kernel[1]),
        ];
        if self.pool {
            conv.map(|side| side / 2)
        } else {
            conv
        }
    }
}

/// Output channels per register tile: one AVX-512 vector, two AVX2 vectors.
const LANES: usize = 16;
/// Pixels per register tile: one pooling window.
const PIXELS: usize = 4;

/// A zeroed scratch buffer whose first value starts a cache line (64 bytes: one AVX-512
/// vector). Where a block has a multiple of 16 input channels (SeedCnn's later blocks), its
/// pixels' rows then start on a line, and their 16-lane loads do not straddle two lines (a
/// load that does runs at half the rate).
struct LineAligned {
    values: Vec<f32>,
    start: usize,
    len: usize,
}

impl LineAligned {
    fn zeroed(len: usize) -> Self {
        let values = vec![0.0; len + LANES - 1];
        // Past `LANES - 1` only where the pointer cannot be aligned; then unaligned.
        let start = values.as_ptr().align_offset(64).min(LANES - 1);
        Self { values, start, len }
    }
}

impl std::ops::Deref for LineAligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values[self.start..][..self.len]
    }
}

impl std::ops::DerefMut for LineAligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.values[self.start..][..self.len]
    }
}

/// Everything about one block's shapes, per candidate.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    spec: ConvBlock,
    /// Input `[H, W, C_in]`.
    input: [usize; 3],
    c_out: usize,
    /// Width of the zero-padded input.
    padded_w: usize,
    /// Values of the zero-padded input, `(H + top + bottom) * padded_w * C_in`.
    padded_len: usize,
    /// Output `[H', W']`.
    output: [usize; 2],
    /// Values in one row of a pixel's taps, `kW * C_in` (contiguous in the padded input).
    row_taps: usize,
}

impl Geometry {
    /// For `dims = [N, H, W, C_in]` and a `(C_out, C_in, kH, kW)` weight of `weight_len` values.
    fn new([_, height, width, c_in]: [usize; 4], weight_len: usize, spec: ConvBlock) -> Self {
        let [(top, bottom), (left, right)] = spec.padding;
        let padded_w = width + left + right;
        let filter = c_in * spec.kernel[0] * spec.kernel[1];
        assert!(
            filter > 0 && weight_len.is_multiple_of(filter),
            "a weight of {weight_len} values is not whole {:?} filters over {c_in} channels",
            spec.kernel
        );
        let c_out = weight_len / filter;
        Geometry {
            spec,
            input: [height, width, c_in],
            c_out,
            padded_w,
            padded_len: (height + top + bottom) * padded_w * c_in,
            output: spec.output_size(height, width),
            row_taps: spec.kernel[1] * c_in,
        }
    }

    fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    fn output_len(&self) -> usize {
        self.output[0] * self.output[1] * self.c_out
    }

    /// Values per output channel's weights, `kH * kW * C_in`.
    fn taps(&self) -> usize {
        self.spec.kernel[0] * self.row_taps
    }

    /// The tap number of each of a filter's weights, in the `(C_in, kH, kW)` order burn
    /// stores them: `(ky * kW + kx) * C_in + c`, the order of a pixel's taps in the padded
    /// input. Listed once per block and zipped with every filter: as a chain of iterators
    /// per filter it cost a few % of training.
    fn filter_taps(&self) -> Vec<usize> {
        let [k_h, k_w] = self.spec.kernel;
        let c_in = self.input[2];
        (0..c_in)
            .flat_map(|c| (0..k_h * k_w).map(move |k| k * c_in + c))
            .collect()
    }

    /// Whether the weight gradient is one GEMM per block over the pixels with a gradient,
    /// rather than an `axpy` of each pixel's taps per non-zero channel gradient. The GEMM's
    /// register tile wins wherever most (pixel, channel) pairs carry a gradient. Pooling
    /// followed by ReLU leaves about one in eight (one pixel per window, half of them past
    /// the ReLU): there the `axpy`s do less work, unless the rows are too short to vectorise
    /// (SeedCnn's first block, 8 values). Measured: RotInvCnn (leaky ReLU) 20 s an epoch with
    /// the GEMM everywhere against 31 s with `axpy`s; SeedCnn's later blocks 30-40% faster
    /// with `axpy`s, its first block 40% slower. With the GEMM, the input gradient is a
    /// convolution through the forward tile too (`Backward::input_grad_by_conv`): RotInvCnn's
    /// blocks 17% faster backward than with an `axpy` per channel gradient.
    fn weight_grad_by_gemm(&self) -> bool {
        let sparse = self.spec.pool && self.spec.slope == 0.0;
        !sparse || self.row_taps < 16
    }

    fn channel_blocks(&self) -> usize {
        self.c_out.div_ceil(LANES)
    }

    /// Offset between two rows of the padded input.
    fn row_stride(&self) -> usize {
        self.padded_w * self.input[2]
    }

    /// Offset in the padded input of the first tap of convolution pixel (`y`, `x`).
    fn base(&self, y: usize, x: usize) -> usize {
        (y * self.padded_w + x) * self.input[2]
    }

    /// The output pixels in groups of [`PIXELS`] convolution pixels: one pooling window per
    /// output pixel, or up to four consecutive pixels (the last group repeats its last one).
    fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        let [out_h, out_w] = self.output;
        let pixels = out_h * out_w;
        let step = if self.spec.pool { 1 } else { PIXELS };
        (0..pixels).step_by(step).map(move |first| {
            // Spelt out, not `array::map`, which was not inlined (a call per group).
            let mut bases = [0; PIXELS];
            if self.spec.pool {
                let (y, x) = (2 * (first / out_w), 2 * (first % out_w));
                bases = [
                    self.base(y, x),
                    self.base(y, x + 1),
                    self.base(y + 1, x),
                    self.base(y + 1, x + 1),
                ];
            } else {
                for (p, base) in bases.iter_mut().enumerate() {
                    let pixel = (first + p).min(pixels - 1);
                    *base = self.base(pixel / out_w, pixel % out_w);
                }
            }
            Group {
                first,
                outputs: if self.spec.pool {
                    1
                } else {
                    PIXELS.min(pixels - first)
                },
                bases,
            }
        })
    }

    /// Copy one candidate's input into the interior of the zero-padded buffer. Inlined into
    /// the kernels, so that it is compiled for their instruction set.
    #[inline(always)]
    fn fill_padded(&self, input: &[f32], padded: &mut [f32]) {
        let [height, width, c_in] = self.input;
        let [(top, _), (left, _)] = self.spec.padding;
        for y in 0..height {
            let row = &mut padded[self.base(y + top, left)..][..width * c_in];
            match self.spec.layout {
                ActivationLayout::ChannelsLast => {
                    row.copy_from_slice(&input[y * width * c_in..][..width * c_in])
                }
                // The stamps' four channels, interleaved with a fixed stride (vector
                // shuffles): a quarter of SeedCnn's first block as a loop of any stride.
                ActivationLayout::ChannelsFirst if c_in == 4 => {
                    let plane = |c: usize| &input[(c * height + y) * width..][..width];
                    let planes = [plane(0), plane(1), plane(2), plane(3)];
                    for (x, pixel) in row.chunks_exact_mut(4).enumerate() {
                        for (v, plane) in pixel.iter_mut().zip(planes) {
                            *v = plane[x];
                        }
                    }
                }
                ActivationLayout::ChannelsFirst => {
                    for (x, pixel) in row.chunks_exact_mut(c_in).enumerate() {
                        for (c, v) in pixel.iter_mut().enumerate() {
                            *v = input[(c * height + y) * width + x];
                        }
                    }
                }
            }
        }
    }

    /// The inverse of [`fill_padded`](Self::fill_padded) for gradients: the interior of the
    /// padded gradient, in the input's layout (the padding's gradient is dropped).
    fn unpad(&self, padded: &[f32], input: &mut [f32]) {
        let [height, width, c_in] = self.input;
        let [(top, _), (left, _)] = self.spec.padding;
        for y in 0..height {
            let row = &padded[self.base(y + top, left)..][..width * c_in];
            match self.spec.layout {
                ActivationLayout::ChannelsLast => {
                    input[y * width * c_in..][..width * c_in].copy_from_slice(row)
                }
                ActivationLayout::ChannelsFirst => {
                    scatter_channels_first(row, c_in, height * width, y * width, input)
                }
            }
        }
    }
}

/// Channels-last `pixels` (`channels` values each) into a channels-first buffer of
/// `(channels, plane)`, as its pixels `first..`.
fn scatter_channels_first(
    pixels: &[f32],
    channels: usize,
    plane: usize,
    first: usize,
    out: &mut [f32],
) {
    for (p, pixel) in pixels.chunks_exact(channels).enumerate() {
        for (c, v) in pixel.iter().enumerate() {
            out[c * plane + first + p] = *v;
        }
    }
}

/// Four convolution pixels and the output pixels they make.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// The first output pixel (row-major).
    first: usize,
    /// Output pixels: 1 when pooling, else up to [`PIXELS`].
    outputs: usize,
    /// Offsets of each convolution pixel's first tap in the padded input.
    bases: [usize; PIXELS],
}

/// `a * b + c`, fused into one instruction where the CPU has it.
trait MulAdd {
    /// Whether the target has 32 vector registers of 16 lanes (AVX-512). The tiles then hold
    /// more accumulators (the forward one 16: 8 pixels x 2 channel blocks; the weight-gradient
    /// one 8): with one 16-lane accumulator per pixel, the FMAs' 4-cycle latency would let 4
    /// of them keep only one of the two FMA pipes busy.
    const WIDE: bool = false;
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding: only used where the target has an FMA instruction.
struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// [`Fused`] on AVX-512: the same arithmetic, in tiles of more accumulators.
#[cfg(target_arch = "x86_64")]
struct FusedWide;

#[cfg(target_arch = "x86_64")]
impl MulAdd for FusedWide {
    const WIDE: bool = true;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Without a guaranteed FMA instruction, `f32::mul_add` is a slow library call.
#[cfg(not(target_arch = "aarch64"))]
struct Separate;

#[cfg(not(target_arch = "aarch64"))]
impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The baseline instruction set's multiply-add: FMA is part of aarch64's.
#[cfg(target_arch = "aarch64")]
type Baseline = Fused;
#[cfg(not(target_arch = "aarch64"))]
type Baseline = Separate;

/// Work on one candidate, compiled once per instruction set.
trait Kernel {
    fn run<M: MulAdd>(self);
}

/// An instruction set the kernels are compiled for. Only [`InstructionSet::available`] makes
/// one, after checking that this CPU runs it, so the kernels' dispatch may rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionSet(Isa);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Baseline,
    /// AVX2 + FMA: the 16-lane tile is two 8-lane vectors.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512 (F, VL) + FMA: the 16-lane tile is one vector, with 32 vector registers.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl InstructionSet {
    /// Every instruction set this CPU runs, the baseline first and the widest last.
    pub fn available() -> Vec<InstructionSet> {
        let mut sets = vec![InstructionSet(Isa::Baseline)];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                sets.push(InstructionSet(Isa::Avx2Fma));
                if has!("avx512f") && has!("avx512vl") {
                    sets.push(InstructionSet(Isa::Avx512));
                }
            }
        }
        sets
    }

    /// The widest instruction set this CPU runs (detected once), or the one the environment
    /// variable `HITS_KERNELS` names (`baseline`, `avx2+fma`, `avx512`), to compare them.
    pub fn best() -> InstructionSet {
        static BEST: std::sync::OnceLock<InstructionSet> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let available = Self::available();
            let widest = *available.last().expect("the baseline is always there");
            match std::env::var("HITS_KERNELS") {
                Ok(name) => available
                    .into_iter()
                    .find(|set| set.name() == name)
                    .unwrap_or_else(|| {
                        tracing::warn!(
                            "HITS_KERNELS={name}: not an instruction set this CPU runs; using {}",
                            widest.name()
                        );
                        widest
                    }),
                Err(_) => widest,
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Baseline => "baseline",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }
}

/// Run `kernel` compiled for `isa`: the same generic code, compiled once per instruction set.
fn dispatch(isa: InstructionSet, kernel: impl Kernel) {
    match isa.0 {
        Isa::Baseline => kernel.run::<Baseline>(),
        // SAFETY: an `InstructionSet` exists only for instruction sets this CPU runs.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { run_avx2_fma(kernel) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { run_avx512(kernel) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2_fma(kernel: impl Kernel) {
    kernel.run::<Fused>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn run_avx512(kernel: impl Kernel) {
    kernel.run::<FusedWide>()
}

/// `weight` `(C_out, C_in, kH, kW)` as the forward tiles read it: per block of [`LANES`]
/// output channels, per tap `(ky, kx, c_in)`, the block's 16 weights (zero past `C_out`).
fn pack_weight(weight: &[f32], g: &Geometry) -> Vec<[f32; LANES]> {
    let taps = g.taps();
    let mut packed = vec![[0.0; LANES]; g.channel_blocks() * taps];
    let filter_taps = g.filter_taps();
    for (co, filter) in weight.chunks_exact(taps).enumerate() {
        for (&tap, w) in filter_taps.iter().zip(filter) {
            packed[(co / LANES) * taps + tap][co % LANES] = *w;
        }
    }
    packed
}

mod backward;
mod forward;

pub use backward::{BackwardPass, ConvBlockGrads, conv_block_backward};
pub use forward::{ChainLink, conv_block, conv_chain};

#[cfg(test)]
mod tests {
    use super::backward::*;
    use super::forward::*;
    use super::*;

    fn wave(len: usize, k: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * k).sin()).collect()
    }

    /// One `spec` block of `c_out` filters on `dims` of fixed waves: its output, then its input,
    /// weight and bias gradients for the output gradient `wave(output.len(), 0.13)`, on `isa`.
    fn forward_and_backward(
        isa: InstructionSet,
        dims: [usize; 4],
        c_out: usize,
        spec: &ConvBlock,
    ) -> [Vec<f32>; 4] {
        let input = wave(dims.iter().product(), 0.37);
        let weight = wave(c_out * dims[3] * spec.kernel[0] * spec.kernel[1], 0.91);
        let bias = wave(c_out, 0.5);
        let (output, argmax) = conv_block(isa, &input, dims, &weight, &bias, spec, true);
        let output_grad = wave(output.len(), 0.13);
        let pass = BackwardPass {
            input: &input,
            dims,
            weight: &weight,
            output: &output,
            argmax: argmax.as_deref(),
            output_grad: &output_grad,
        };
        let g = conv_block_backward(isa, &pass, spec, true);
        [output, g.input.unwrap(), g.weight, g.bias]
    }

    /// Gradients are bit-identical whatever the number of threads, so training runs repeat
    /// exactly (and a resumed run matches an uninterrupted one).
    #[test]
    fn backward_does_not_depend_on_the_threads() {
        // ReLU: weight gradients by `axpy`; leaky ReLU: by GEMM.
        for slope in [0.0, 0.01] {
            gradients_do_not_depend_on_the_threads(slope);
        }
    }

    /// On every instruction set, a chain gives exactly its blocks run one after the other.
    #[test]
    fn a_chain_gives_its_blocks_one_after_the_other() {
        let block = |layout, kernel, pad, pool, slope| ConvBlock {
            layout,
            kernel: [kernel; 2],
            padding: [pad; 2],
            pool,
            slope,
        };
        let (first, last) = (
            ActivationLayout::ChannelsFirst,
            ActivationLayout::ChannelsLast,
        );
        // Each chain: its blocks with their output channels, and its input's dims. SeedCnn's
        // blocks; blocks without pooling, odd channel counts and an odd number of pixel groups
        // (the wide tile's leftover group), as in RotInvCnn.
        type Chain<'a> = (&'a [(ConvBlock, usize)], [usize; 4]);
        let chains: [Chain; 2] = [
            (
                &[
                    (block(first, 2, (0, 1), true, 0.0), 32),
                    (block(last, 2, (0, 1), true, 0.0), 32),
                    (block(last, 2, (0, 1), true, 0.0), 64),
                    (block(last, 2, (0, 1), true, 0.0), 64),
                ],
                [5, 21, 21, 4],
            ),
            (
                &[
                    (block(first, 4, (3, 3), false, 0.01), 17),
                    (block(last, 3, (1, 1), true, 0.01), 33),
                    (block(last, 3, (1, 1), false, 0.01), 16),
                ],
                [3, 9, 9, 4],
            ),
        ];
        for isa in InstructionSet::available() {
            for (blocks, dims) in chains {
                let input = wave(dims.iter().product(), 0.37);
                let params: Vec<(Vec<f32>, Vec<f32>)> = blocks
                    .iter()
                    .scan(dims[3], |c_in, (spec, c_out)| {
                        let taps = *c_in * spec.kernel[0] * spec.kernel[1];
                        *c_in = *c_out;
                        Some((wave(c_out * taps, 0.91), wave(*c_out, 0.5)))
                    })
                    .collect();
                let (mut expected, mut next) = (input.clone(), dims);
                for ((spec, c_out), (weight, bias)) in blocks.iter().zip(&params) {
                    expected = conv_block(isa, &expected, next, weight, bias, spec, false).0;
                    let [h, w] = spec.output_size(next[1], next[2]);
                    next = [dims[0], h, w, *c_out];
                }
                let links: Vec<ChainLink> = blocks
                    .iter()
                    .zip(&params)
                    .map(|((spec, _), (weight, bias))| ChainLink {
                        weight,
                        bias,
                        spec: *spec,
                    })
                    .collect();
                let (got, got_dims) = conv_chain(isa, &input, dims, &links);
                assert_eq!(got_dims, next, "{}", isa.name());
                assert!(
                    got.iter()
                        .zip(&expected)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{}: the chain differs from its blocks",
                    isa.name()
                );
                assert!(
                    got.iter().any(|v| *v != 0.0),
                    "the output must not be all zero"
                );
            }
        }
    }

    /// Every instruction set this CPU runs computes the same blocks: the FMA-compiled ones
    /// bit for bit (each lane does the same operations in the same order, whatever the vector
    /// width), the baseline (separate multiply and add) within rounding. burn's convolution
    /// checks the widest of them (`channels_last` tests).
    #[test]
    fn every_instruction_set_computes_the_same_blocks() {
        let sets = InstructionSet::available();
        let names: Vec<&str> = sets.iter().map(|s| s.name()).collect();
        // Which paths ran is part of the result: say so, and which this CPU cannot run.
        eprintln!("instruction sets tested on this CPU: {names:?}");
        if !names.contains(&"avx512") {
            eprintln!("skipped: avx512 (this CPU lacks AVX-512F/VL)");
        }
        for (layout, pool, slope, c_in, c_out) in [
            (ActivationLayout::ChannelsFirst, true, 0.0, 4, 32),
            (ActivationLayout::ChannelsLast, true, 0.01, 8, 17),
            (ActivationLayout::ChannelsLast, false, 0.0, 5, 16),
            (ActivationLayout::ChannelsLast, false, 0.01, 16, 33),
            // ReLU and pooling, rows of 24 taps: the `axpy` form of the backward pass.
            (ActivationLayout::ChannelsLast, true, 0.0, 8, 24),
        ] {
            let spec = ConvBlock {
                layout,
                kernel: [3, 3],
                padding: [(1, 1), (1, 1)],
                pool,
                slope,
            };
            let run = |isa| forward_and_backward(isa, [6, 9, 9, c_in], c_out, &spec);
            let baseline = run(sets[0]);
            let mut fused: Option<[Vec<f32>; 4]> = None;
            for &isa in &sets[1..] {
                let got = run(isa);
                for (name, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
                    .iter()
                    .zip(got.iter().zip(&baseline))
                {
                    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let worst = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max);
                    assert!(
                        worst <= 1e-4 * scale,
                        "{} {name} off the baseline by {worst} (scale {scale}), {spec:?}",
                        isa.name()
                    );
                }
                match &fused {
                    Some(first) => assert!(
                        first
                            .iter()
                            .zip(&got)
                            .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())),
                        "{} differs from another FMA path, {spec:?}",
                        isa.name()
                    ),
                    None => fused = Some(got),
                }
            }
        }
    }

    fn gradients_do_not_depend_on_the_threads(slope: f32) {
        let spec = ConvBlock {
            layout: ActivationLayout::ChannelsLast,
            kernel: [2, 2],
            padding: [(0, 1), (0, 1)],
            pool: true,
            slope,
        };
        assert_eq!(
            Geometry::new([1, 10, 10, 8], 16 * 32, spec).weight_grad_by_gemm(),
            slope > 0.0
        );
        let dims = [50, 10, 10, 8];
        let isa = InstructionSet::best();
        let grads = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let [_, input, weight, bias] = forward_and_backward(isa, dims, 16, &spec);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&input), bits(&weight), bits(&bias))
            })
        };
        let one = grads(1);
        assert!(one.1.iter().any(|&w| w != 0), "the weights get a gradient");
        assert_eq!(grads(3), one);
        assert_eq!(grads(7), one);
    }
}
