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
//! chosen at run time: AVX-512 (one 16-lane vector per pixel, 32 registers), AVX2 + FMA (two
//! 8-lane vectors), or the baseline.

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
    /// input.
    fn filter_taps(&self) -> impl Iterator<Item = usize> + '_ {
        let [k_h, k_w] = self.spec.kernel;
        let c_in = self.input[2];
        (0..c_in).flat_map(move |c| {
            (0..k_h).flat_map(move |ky| (0..k_w).map(move |kx| (ky * k_w + kx) * c_in + c))
        })
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
            let bases = if self.spec.pool {
                let (y, x) = (2 * (first / out_w), 2 * (first % out_w));
                [(y, x), (y, x + 1), (y + 1, x), (y + 1, x + 1)].map(|(y, x)| self.base(y, x))
            } else {
                std::array::from_fn(|p| {
                    let pixel = (first + p).min(pixels - 1);
                    self.base(pixel / out_w, pixel % out_w)
                })
            };
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

    /// Copy one candidate's input into the interior of the zero-padded buffer.
    fn fill_padded(&self, input: &[f32], padded: &mut [f32]) {
        let [height, width, c_in] = self.input;
        let [(top, _), (left, _)] = self.spec.padding;
        for y in 0..height {
            let row = &mut padded[self.base(y + top, left)..][..width * c_in];
            match self.spec.layout {
                ActivationLayout::ChannelsLast => {
                    row.copy_from_slice(&input[y * width * c_in..][..width * c_in])
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
/// one, after checking that this CPU runs it, so [`dispatch`] may rely on it.
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
    kernel.run::<Fused>()
}

/// `weight` `(C_out, C_in, kH, kW)` as the forward tiles read it: per block of [`LANES`]
/// output channels, per tap `(ky, kx, c_in)`, the block's 16 weights (zero past `C_out`).
fn pack_weight(weight: &[f32], g: &Geometry) -> Vec<[f32; LANES]> {
    let taps = g.taps();
    let mut packed = vec![[0.0; LANES]; g.channel_blocks() * taps];
    for (co, filter) in weight.chunks_exact(taps).enumerate() {
        for (tap, w) in g.filter_taps().zip(filter) {
            packed[(co / LANES) * taps + tap][co % LANES] = *w;
        }
    }
    packed
}

/// Forward pass of one block over a batch. `input` holds `dims = [N, H, W, C_in]` stored in
/// `spec.layout`; `weight` is `(C_out, C_in, kH, kW)` and `bias` `(C_out)`, as burn's
/// `Conv2d` stores them. Returns the channels-last `(N, H', W', C_out)` output and, when
/// pooling and `keep_argmax` (for a backward pass), which of its window's four pixels
/// (0..4, row-major) each output value came from.
pub fn conv_block(
    input: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    bias: &[f32],
    spec: &ConvBlock,
    keep_argmax: bool,
) -> (Vec<f32>, Option<Vec<u8>>) {
    conv_block_on(
        InstructionSet::best(),
        input,
        dims,
        weight,
        bias,
        spec,
        keep_argmax,
    )
}

/// [`conv_block`] compiled for `isa`.
fn conv_block_on(
    isa: InstructionSet,
    input: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    bias: &[f32],
    spec: &ConvBlock,
    keep_argmax: bool,
) -> (Vec<f32>, Option<Vec<u8>>) {
    let g = Geometry::new(dims, weight.len(), *spec);
    assert_eq!(bias.len(), g.c_out, "bias length");
    let packed = pack_weight(weight, &g);
    let mut bias_blocks = vec![[0.0; LANES]; g.channel_blocks()];
    for (co, b) in bias.iter().enumerate() {
        bias_blocks[co / LANES][co % LANES] = *b;
    }
    let n = dims[0];
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let mut output = vec![0.0f32; n * out_len];
    let keep_argmax = keep_argmax && spec.pool;
    if output.is_empty() {
        return (output, keep_argmax.then(Vec::new));
    }
    let worker = Forward {
        isa,
        g: &g,
        packed: &packed,
        bias: &bias_blocks,
    };
    let scratch = || vec![0.0f32; g.padded_len];
    let candidates = output.par_chunks_mut(out_len).zip(input.par_chunks(in_len));
    if keep_argmax {
        let mut argmax = vec![0u8; n * out_len];
        candidates
            .zip(argmax.par_chunks_mut(out_len))
            .for_each_init(scratch, |padded, ((out, x), argmax)| {
                worker.run(x, padded, out, argmax)
            });
        (output, Some(argmax))
    } else {
        candidates.for_each_init(scratch, |padded, (out, x)| {
            worker.run(x, padded, out, &mut [])
        });
        (output, None)
    }
}

/// The forward pass of one candidate at a time.
struct Forward<'a> {
    isa: InstructionSet,
    g: &'a Geometry,
    packed: &'a [[f32; LANES]],
    bias: &'a [[f32; LANES]],
}

impl Forward<'_> {
    /// `padded` is scratch of `padded_len` values whose border stays zero between calls.
    fn run(&self, input: &[f32], padded: &mut [f32], output: &mut [f32], argmax: &mut [u8]) {
        self.g.fill_padded(input, padded);
        dispatch(
            self.isa,
            ForwardCandidate {
                worker: self,
                padded,
                output,
                argmax,
            },
        );
    }

    #[inline(always)]
    fn run_with<M: MulAdd>(&self, padded: &[f32], output: &mut [f32], argmax: &mut [u8]) {
        let g = self.g;
        let (taps, c_out, slope) = (g.taps(), g.c_out, g.spec.slope);
        for group in g.groups() {
            for (block, bias) in self.bias.iter().enumerate() {
                let packed = &self.packed[block * taps..][..taps];
                let acc = tile::<M>(padded, group.bases, g, packed);
                let first = block * LANES;
                let lanes = LANES.min(c_out - first);
                // Whole 16-lane arrays vectorise; only `lanes` of them are stored.
                let activated = |z| activated(z, bias, slope);
                if g.spec.pool {
                    let at = group.first * c_out + first;
                    let mut best = acc[0];
                    for pixel in &acc[1..] {
                        for (best, v) in best.iter_mut().zip(pixel) {
                            *best = if *v > *best { *v } else { *best };
                        }
                    }
                    output[at..][..lanes].copy_from_slice(&activated(&best)[..lanes]);
                    if !argmax.is_empty() {
                        // The first of the window's pixels that holds the maximum.
                        let mut from = [0u8; LANES];
                        for (p, pixel) in acc.iter().enumerate().rev() {
                            for lane in 0..LANES {
                                if pixel[lane] == best[lane] {
                                    from[lane] = p as u8;
                                }
                            }
                        }
                        argmax[at..][..lanes].copy_from_slice(&from[..lanes]);
                    }
                } else {
                    for (p, pixel) in acc.iter().enumerate().take(group.outputs) {
                        let at = (group.first + p) * c_out + first;
                        output[at..][..lanes].copy_from_slice(&activated(pixel)[..lanes]);
                    }
                }
            }
        }
    }
}

/// The (leaky) ReLU of `z + bias`. Plain loops and `inline(always)`: closures and
/// `array::from_fn` are not always inlined, and would then miss the AVX build.
#[inline(always)]
fn activated(z: &[f32; LANES], bias: &[f32; LANES], slope: f32) -> [f32; LANES] {
    let mut out = [0.0; LANES];
    for lane in 0..LANES {
        let z = z[lane] + bias[lane];
        out[lane] = if z > 0.0 { z } else { slope * z };
    }
    out
}

struct ForwardCandidate<'a> {
    worker: &'a Forward<'a>,
    padded: &'a [f32],
    output: &'a mut [f32],
    argmax: &'a mut [u8],
}

impl Kernel for ForwardCandidate<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self) {
        self.worker
            .run_with::<M>(self.padded, self.output, self.argmax)
    }
}

/// The register tile: 16 output channels' convolution at 4 pixels (`bases` in the padded
/// input), `packed` holding those channels' weights per tap.
#[inline(always)]
fn tile<M: MulAdd>(
    padded: &[f32],
    bases: [usize; PIXELS],
    g: &Geometry,
    packed: &[[f32; LANES]],
) -> [[f32; LANES]; PIXELS] {
    let row_taps = g.row_taps;
    let mut acc = [[0.0f32; LANES]; PIXELS];
    for ky in 0..g.spec.kernel[0] {
        // Equal lengths let the compiler drop the bounds checks of the inner loop.
        let weights = &packed[ky * row_taps..][..row_taps];
        let rows = bases.map(|base| &padded[base + ky * g.row_stride()..][..row_taps]);
        for t in 0..row_taps {
            for (acc, row) in acc.iter_mut().zip(&rows) {
                let a = row[t];
                for (acc, w) in acc.iter_mut().zip(&weights[t]) {
                    *acc = M::mul_add(a, *w, *acc);
                }
            }
        }
    }
    acc
}

/// Gradients of a block with respect to its input (when asked for), weight and bias.
#[derive(Debug)]
pub struct ConvBlockGrads {
    /// Laid out as the input was.
    pub input: Option<Vec<f32>>,
    /// `(C_out, C_in, kH, kW)`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The backward pass of [`conv_block`]: `output`, `argmax` are what it returned, and
/// `output_grad` the loss gradient with respect to `output`.
///
/// The activation's derivative is read from the sign of the output, and each pooled value's
/// gradient goes to the one convolution pixel it came from, so with pooling only a quarter of
/// the convolution's pixels (and for ReLU about half of those) get a gradient per channel.
/// Either each non-zero gradient adds its channel's filter to the input gradient and the
/// pixel's taps to the weight gradient as short vector `axpy`s, or the weight gradient is one
/// GEMM per block of channels and the input gradient a convolution of the gradient map with
/// the flipped filters (see `Geometry::weight_grad_by_gemm`). Gradients are summed over fixed groups of
/// candidates in a fixed order, so they do not depend on the number of threads.
#[allow(clippy::too_many_arguments)] // the forward pass's inputs and outputs
pub fn conv_block_backward(
    input: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    output: &[f32],
    argmax: Option<&[u8]>,
    output_grad: &[f32],
    spec: &ConvBlock,
    input_grad: bool,
) -> ConvBlockGrads {
    let pass = BackwardPass {
        input,
        dims,
        weight,
        output,
        argmax,
        output_grad,
    };
    conv_block_backward_on(InstructionSet::best(), &pass, spec, input_grad)
}

/// The inputs of [`conv_block_backward`].
struct BackwardPass<'a> {
    input: &'a [f32],
    dims: [usize; 4],
    weight: &'a [f32],
    output: &'a [f32],
    argmax: Option<&'a [u8]>,
    output_grad: &'a [f32],
}

/// [`conv_block_backward`] compiled for `isa`.
fn conv_block_backward_on(
    isa: InstructionSet,
    pass: &BackwardPass,
    spec: &ConvBlock,
    input_grad: bool,
) -> ConvBlockGrads {
    let BackwardPass {
        input,
        dims,
        weight,
        output,
        argmax,
        output_grad,
    } = *pass;
    let g = Geometry::new(dims, weight.len(), *spec);
    assert_eq!(
        argmax.is_some(),
        spec.pool,
        "argmax is needed exactly when pooling"
    );
    let (taps, c_out) = (g.taps(), g.c_out);
    let gemm = g.weight_grad_by_gemm();
    // With the GEMM, nearly every (pixel, channel) carries a gradient: the input gradient is
    // then a convolution of its own, through the forward tile, rather than `axpy`s here.
    let axpy_input_grad = input_grad && !gemm;
    // (C_out, taps) in the padded input's tap order, for the `axpy` form (the GEMM form
    // reads no weights).
    let mut by_tap = vec![0.0f32; if gemm { 0 } else { c_out * taps }];
    for (row, filter) in by_tap.chunks_exact_mut(taps).zip(weight.chunks_exact(taps)) {
        for (tap, w) in g.filter_taps().zip(filter) {
            row[tap] = *w;
        }
    }
    let (n, in_len, out_len) = (dims[0], g.input_len(), g.output_len());
    let worker = Backward {
        isa,
        g: &g,
        input,
        weight: &by_tap,
        output,
        argmax: argmax.unwrap_or(&[]),
        output_grad,
    };
    let new_sums = || Sums {
        weight: vec![[0.0; LANES]; if gemm { g.channel_blocks() * taps } else { 0 }],
        weight_rows: vec![0.0; if gemm { 0 } else { c_out * taps }],
        bias: vec![0.0; c_out],
        padded: vec![0.0; g.padded_len],
        padded_grad: vec![0.0; if axpy_input_grad { g.padded_len } else { 0 }],
        pixels: Vec::new(),
    };
    let add = |mut a: Sums, b: Sums| {
        a.add(&b);
        a
    };
    let mut input_grads = vec![0.0f32; if axpy_input_grad { n * in_len } else { 0 }];
    let per = CANDIDATES_PER_SUM;
    let partial_sums: Vec<Sums> = if n * in_len * out_len == 0 {
        Vec::new()
    } else if axpy_input_grad {
        input_grads
            .par_chunks_mut(in_len * per)
            .enumerate()
            .map(|(chunk, dx)| {
                let mut sums = new_sums();
                for (i, dx) in dx.chunks_exact_mut(in_len).enumerate() {
                    worker.run(chunk * per + i, &mut sums, Some(dx));
                }
                sums
            })
            .collect()
    } else {
        (0..n.div_ceil(per))
            .into_par_iter()
            .map(|chunk| {
                let mut sums = new_sums();
                for i in chunk * per..n.min((chunk + 1) * per) {
                    worker.run(i, &mut sums, None);
                }
                sums
            })
            .collect()
    };
    // In chunk order, whatever the threads: the same sums in every run.
    let sums = partial_sums
        .into_iter()
        .reduce(add)
        .unwrap_or_else(new_sums);
    // -> (C_out, C_in, kH, kW)
    let mut weight_grad = vec![0.0f32; c_out * taps];
    for (co, filter) in weight_grad.chunks_exact_mut(taps).enumerate() {
        for (tap, w) in g.filter_taps().zip(filter) {
            *w = if gemm {
                sums.weight[(co / LANES) * taps + tap][co % LANES]
            } else {
                sums.weight_rows[co * taps + tap]
            };
        }
    }
    ConvBlockGrads {
        input: match (input_grad, gemm) {
            (false, _) => None,
            (true, true) => Some(worker.input_grad_by_conv(n, weight)),
            (true, false) => Some(input_grads),
        },
        weight: weight_grad,
        bias: sums.bias,
    }
}

/// Candidates per partial sum of the weight and bias gradients. The partition is fixed and
/// the partial sums are added in order, so the gradients, and a training run, do not depend
/// on how rayon splits the work.
const CANDIDATES_PER_SUM: usize = 8;

/// Partial sums of the weight and bias gradients, and scratch buffers.
struct Sums {
    /// The weight gradient by GEMM, laid out as the forward pass's packed weights: per block
    /// of [`LANES`] output channels, per tap, the block's 16 values (else empty).
    weight: Vec<[f32; LANES]>,
    /// The weight gradient by `axpy`, `(C_out, taps)` (else empty).
    weight_rows: Vec<f32>,
    bias: Vec<f32>,
    padded: Vec<f32>,
    padded_grad: Vec<f32>,
    /// Scratch: one block's convolution pixels with a gradient (offset in the padded input,
    /// gradient of the 16 channels).
    pixels: Vec<(usize, [f32; LANES])>,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        for (a, b) in self.weight.iter_mut().zip(&other.weight) {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
        for (a, b) in self.weight_rows.iter_mut().zip(&other.weight_rows) {
            *a += b;
        }
        for (a, b) in self.bias.iter_mut().zip(&other.bias) {
            *a += b;
        }
    }
}

/// The backward pass of one candidate at a time.
struct Backward<'a> {
    isa: InstructionSet,
    g: &'a Geometry,
    input: &'a [f32],
    /// `(C_out, taps)` in tap order; empty for the GEMM form.
    weight: &'a [f32],
    output: &'a [f32],
    argmax: &'a [u8],
    output_grad: &'a [f32],
}

impl Backward<'_> {
    fn run(&self, candidate: usize, sums: &mut Sums, input_grad: Option<&mut [f32]>) {
        let (in_len, out_len) = (self.g.input_len(), self.g.output_len());
        let input = &self.input[candidate * in_len..][..in_len];
        self.g.fill_padded(input, &mut sums.padded);
        sums.padded_grad.fill(0.0);
        dispatch(
            self.isa,
            BackwardCandidate {
                worker: self,
                at: candidate * out_len..(candidate + 1) * out_len,
                sums,
            },
        );
        if let Some(input_grad) = input_grad {
            self.g.unpad(&sums.padded_grad, input_grad);
        }
    }

    /// The input gradient of the whole batch as a convolution, through the forward tile: the
    /// gradient at every convolution pixel (zero where pooling dropped it), with a border of
    /// zeros (or cropped) so that a plain valid convolution with the filters flipped and
    /// transposed, `(C_in, C_out, kH, kW)`, gives the gradient at every input pixel.
    fn input_grad_by_conv(&self, n: usize, weight: &[f32]) -> Vec<f32> {
        let g = self.g;
        let ([height, width, c_in], c_out) = (g.input, g.c_out);
        let [k_h, k_w] = g.spec.kernel;
        let [(top, _), (left, _)] = g.spec.padding;
        // Input pixel `i` gets the gradient of convolution pixels `i + top - ky`: the map
        // starts `k_h - 1 - top` rows before the first convolution pixel.
        let (map_h, map_w) = (height + k_h - 1, width + k_w - 1);
        let shift = |k: usize, pad: usize, at: usize| (at + k - 1).checked_sub(pad);
        let map_len = map_h * map_w * c_out;
        let out_len = g.output_len();
        let mut maps = vec![0.0f32; n * map_len];
        maps.par_chunks_mut(map_len)
            .enumerate()
            .for_each(|(candidate, map)| {
                let grads = self.candidate(candidate * out_len..(candidate + 1) * out_len);
                let [out_h, out_w] = g.output;
                // Where in the map convolution pixel (y, x) goes, if inside it.
                let at = |y: usize, x: usize| {
                    let (y, x) = (shift(k_h, top, y)?, shift(k_w, left, x)?);
                    (y < map_h && x < map_w).then_some((y * map_w + x) * c_out)
                };
                for (pixel, first) in (0..out_h * out_w).map(|p| (p, p * c_out)) {
                    let (y, x) = (pixel / out_w, pixel % out_w);
                    if g.spec.pool {
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)]
                            .map(|(dy, dx)| at(2 * y + dy, 2 * x + dx));
                        for co in 0..c_out {
                            let (grad, from) = grads.grad_at(first + co, 0);
                            if let Some(to) = window[from] {
                                map[to + co] = grad;
                            }
                        }
                    } else if let Some(to) = at(y, x) {
                        for co in 0..c_out {
                            map[to + co] = grads.grad_at(first + co, 0).0;
                        }
                    }
                }
            });
        // Flipped and transposed: `[c_in][c_out][k_h - 1 - ky][k_w - 1 - kx]`.
        let mut flipped = vec![0.0f32; weight.len()];
        for (i, w) in weight.iter().enumerate() {
            let (kx, ky) = (i % k_w, (i / k_w) % k_h);
            let (ci, co) = ((i / (k_w * k_h)) % c_in, i / (k_w * k_h * c_in));
            flipped[((ci * c_out + co) * k_h + k_h - 1 - ky) * k_w + k_w - 1 - kx] = *w;
        }
        let transposed = ConvBlock {
            layout: ActivationLayout::ChannelsLast,
            kernel: g.spec.kernel,
            padding: [(0, 0); 2],
            pool: false,
            slope: 1.0, // no activation
        };
        let dims = [n, map_h, map_w, c_out];
        let (grad, _) = conv_block_on(
            self.isa,
            &maps,
            dims,
            &flipped,
            &vec![0.0; c_in],
            &transposed,
            false,
        );
        match g.spec.layout {
            ActivationLayout::ChannelsLast => grad,
            ActivationLayout::ChannelsFirst => {
                let mut first = vec![0.0f32; grad.len()];
                let plane = height * width;
                first
                    .par_chunks_mut(plane * c_in)
                    .zip(grad.par_chunks(plane * c_in))
                    .for_each(|(first, last)| scatter_channels_first(last, c_in, plane, 0, first));
                first
            }
        }
    }

    /// One candidate's output values (`at`), their gradients and pooling positions.
    #[inline(always)]
    fn candidate(&self, at: std::ops::Range<usize>) -> CandidateOutput<'_> {
        CandidateOutput {
            output: &self.output[at.clone()],
            output_grad: &self.output_grad[at.clone()],
            argmax: if self.g.spec.pool {
                &self.argmax[at]
            } else {
                &[]
            },
            slope: self.g.spec.slope,
        }
    }

    #[inline(always)]
    fn run_with<M: MulAdd>(&self, at: std::ops::Range<usize>, sums: &mut Sums) {
        if self.g.weight_grad_by_gemm() {
            self.by_gemm::<M>(at, sums)
        } else {
            self.by_axpy::<M>(at, sums)
        }
    }

    /// The weight gradient by GEMM (the input gradient is [`input_grad_by_conv`](Self::input_grad_by_conv)).
    #[inline(always)]
    fn by_gemm<M: MulAdd>(&self, at: std::ops::Range<usize>, sums: &mut Sums) {
        let g = self.g;
        let (taps, c_out, row_taps, stride) = (g.taps(), g.c_out, g.row_taps, g.row_stride());
        let candidate = self.candidate(at);
        for block in 0..g.channel_blocks() {
            let first = block * LANES;
            let lanes = LANES.min(c_out - first);
            sums.pixels.clear();
            for group in g.groups() {
                // The gradient at each of the group's convolution pixels: through the
                // activation, then to the pixel its pooling window took the maximum from.
                let mut grads = [[0.0f32; LANES]; PIXELS];
                for p in 0..group.outputs {
                    let at = (group.first + p) * c_out + first;
                    let bias_grads = &mut sums.bias[first..][..lanes];
                    for (lane, bias_grad) in bias_grads.iter_mut().enumerate() {
                        let (grad, pixel) = candidate.grad_at(at + lane, p);
                        grads[pixel][lane] = grad;
                        *bias_grad += grad;
                    }
                }
                for (&base, grads) in group.bases.iter().zip(&grads) {
                    if grads.iter().any(|&d| d != 0.0) {
                        sums.pixels.push((base, *grads));
                    }
                }
            }
            // The block's weight gradient: (taps x pixels) x (pixels x 16) over the pixels
            // with a gradient, 4 taps at a time.
            let weight_grad = &mut sums.weight[block * taps..][..taps];
            for ky in 0..g.spec.kernel[0] {
                let row_grad = &mut weight_grad[ky * row_taps..][..row_taps];
                let offset = ky * stride;
                let (fours, rest) = row_grad.as_chunks_mut::<4>();
                for (i, four) in fours.iter_mut().enumerate() {
                    weight_grad_tile::<M, 4>(&sums.padded, &sums.pixels, offset + 4 * i, four);
                }
                let start = 4 * fours.len();
                for (i, one) in rest.iter_mut().enumerate() {
                    let one = std::array::from_mut(one);
                    weight_grad_tile::<M, 1>(&sums.padded, &sums.pixels, offset + start + i, one);
                }
            }
        }
    }

    /// Input and weight gradients by `axpy`, per pixel and channel with a gradient.
    #[inline(always)]
    fn by_axpy<M: MulAdd>(&self, at: std::ops::Range<usize>, sums: &mut Sums) {
        let g = self.g;
        let (taps, c_out, row_taps, stride) = (g.taps(), g.c_out, g.row_taps, g.row_stride());
        let candidate = self.candidate(at);
        let Sums {
            weight_rows: weight_grads,
            bias: bias_grads,
            padded,
            padded_grad,
            ..
        } = sums;
        let with_input_grad = !padded_grad.is_empty();
        for group in g.groups() {
            for p in 0..group.outputs {
                let at = (group.first + p) * c_out;
                let channels = weight_grads
                    .chunks_exact_mut(taps)
                    .zip(self.weight.chunks_exact(taps))
                    .zip(bias_grads.iter_mut())
                    .enumerate();
                for (co, ((weight_grad, weight), bias_grad)) in channels {
                    let (grad, pixel) = candidate.grad_at(at + co, p);
                    if grad == 0.0 {
                        continue;
                    }
                    *bias_grad += grad;
                    let base = group.bases[pixel];
                    let rows = weight_grad
                        .chunks_exact_mut(row_taps)
                        .zip(weight.chunks_exact(row_taps));
                    for (ky, (weight_grad, weight)) in rows.enumerate() {
                        let row = base + ky * stride;
                        axpy::<M>(grad, &padded[row..][..row_taps], weight_grad);
                        if with_input_grad {
                            axpy::<M>(grad, weight, &mut padded_grad[row..][..row_taps]);
                        }
                    }
                }
            }
        }
    }
}

/// One candidate's block output, its loss gradient and (when pooling) pooling positions.
struct CandidateOutput<'a> {
    output: &'a [f32],
    output_grad: &'a [f32],
    /// Empty without pooling.
    argmax: &'a [u8],
    slope: f32,
}

impl CandidateOutput<'_> {
    /// The gradient of output value `i` (of its group's output pixel `p`) through the
    /// activation, whose derivative is read from the output's sign, and which of the group's
    /// convolution pixels it goes to: the one its pooling window took the maximum from.
    #[inline(always)]
    fn grad_at(&self, i: usize, p: usize) -> (f32, usize) {
        let grad = self.output_grad[i];
        let grad = if self.output[i] > 0.0 {
            grad
        } else {
            grad * self.slope
        };
        let pixel = if self.argmax.is_empty() {
            p
        } else {
            usize::from(self.argmax[i])
        };
        (grad, pixel)
    }
}

/// Add to `sums` (`TAPS` consecutive taps, 16 output channels each) the sum over `pixels` of
/// each pixel's input at those taps (`offset` past its base) times its gradient. The
/// accumulators stay in registers across the pixels, as in the forward tile.
#[inline(always)]
fn weight_grad_tile<M: MulAdd, const TAPS: usize>(
    padded: &[f32],
    pixels: &[(usize, [f32; LANES])],
    offset: usize,
    sums: &mut [[f32; LANES]; TAPS],
) {
    let mut acc = [[0.0f32; LANES]; TAPS];
    for (base, grads) in pixels {
        let inputs: &[f32; TAPS] = padded[base + offset..][..TAPS]
            .try_into()
            .expect("TAPS values");
        for (acc, &a) in acc.iter_mut().zip(inputs) {
            for (acc, grad) in acc.iter_mut().zip(grads) {
                *acc = M::mul_add(a, *grad, *acc);
            }
        }
    }
    for (sum, acc) in sums.iter_mut().zip(&acc) {
        for (sum, acc) in sum.iter_mut().zip(acc) {
            *sum += acc;
        }
    }
}

struct BackwardCandidate<'a> {
    worker: &'a Backward<'a>,
    /// The candidate's values in the output and its gradient.
    at: std::ops::Range<usize>,
    sums: &'a mut Sums,
}

impl Kernel for BackwardCandidate<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self) {
        self.worker.run_with::<M>(self.at, self.sums)
    }
}

/// `y += a * x`, in whole vectors: the rows are short (8 values in SeedCnn's first block),
/// too short for the compiler's own vectorised loop.
#[inline(always)]
fn axpy<M: MulAdd>(a: f32, x: &[f32], y: &mut [f32]) {
    let (x8, x_rest) = x.as_chunks::<8>();
    let (y8, y_rest) = y.as_chunks_mut::<8>();
    for (y, x) in y8.iter_mut().zip(x8) {
        // Through a local copy: the compiler then vectorises without proving `x` and `y`
        // apart (in place, it emitted eight scalar FMAs).
        let mut sum = *y;
        for lane in 0..8 {
            sum[lane] = M::mul_add(a, x[lane], sum[lane]);
        }
        *y = sum;
    }
    for (y, x) in y_rest.iter_mut().zip(x_rest) {
        *y = M::mul_add(a, *x, *y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradients are bit-identical whatever the number of threads, so training runs repeat
    /// exactly (and a resumed run matches an uninterrupted one).
    #[test]
    fn backward_does_not_depend_on_the_threads() {
        // ReLU: weight gradients by `axpy`; leaky ReLU: by GEMM.
        for slope in [0.0, 0.01] {
            gradients_do_not_depend_on_the_threads(slope);
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
        let wave = |len: usize, k: f32| (0..len).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        for (layout, pool, slope, c_in, c_out) in [
            (ActivationLayout::ChannelsFirst, true, 0.0, 4, 32),
            (ActivationLayout::ChannelsLast, true, 0.01, 8, 17),
            (ActivationLayout::ChannelsLast, false, 0.0, 5, 16),
            (ActivationLayout::ChannelsLast, false, 0.01, 16, 33),
        ] {
            let spec = ConvBlock {
                layout,
                kernel: [3, 3],
                padding: [(1, 1), (1, 1)],
                pool,
                slope,
            };
            let dims = [6, 9, 9, c_in];
            let input = wave(6 * 81 * c_in, 0.37);
            let weight = wave(c_out * c_in * 9, 0.91);
            let bias = wave(c_out, 0.5);
            let run = |isa| {
                let (output, argmax) =
                    conv_block_on(isa, &input, dims, &weight, &bias, &spec, true);
                let output_grad = wave(output.len(), 0.13);
                let pass = BackwardPass {
                    input: &input,
                    dims,
                    weight: &weight,
                    output: &output,
                    argmax: argmax.as_deref(),
                    output_grad: &output_grad,
                };
                let g = conv_block_backward_on(isa, &pass, &spec, true);
                [output, g.input.unwrap(), g.weight, g.bias]
            };
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
        let wave = |len: usize, k: f32| (0..len).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let (input, weight, bias) = (wave(50 * 800, 0.37), wave(16 * 32, 0.91), wave(16, 0.5));
        let (output, argmax) = conv_block(&input, dims, &weight, &bias, &spec, true);
        let output_grad = wave(output.len(), 0.13);
        let grads = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let g = conv_block_backward(
                    &input,
                    dims,
                    &weight,
                    &output,
                    argmax.as_deref(),
                    &output_grad,
                    &spec,
                    true,
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&g.input.unwrap()), bits(&g.weight), bits(&g.bias))
            })
        };
        let one = grads(1);
        assert!(one.1.iter().any(|&w| w != 0), "the weights get a gradient");
        assert_eq!(grads(3), one);
        assert_eq!(grads(7), one);
    }
}
