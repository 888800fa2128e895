//! The forward pass of a fused block: [`conv_block`] and the register tile it runs.

use super::*;

/// Forward pass of one block over a batch, compiled for `isa` ([`InstructionSet::best`] for
/// the fastest this CPU runs). `input` holds `dims = [N, H, W, C_in]` stored in
/// `spec.layout`; `weight` is `(C_out, C_in, kH, kW)` and `bias` `(C_out)`, as burn's
/// `Conv2d` stores them. Returns the channels-last `(N, H', W', C_out)` output and, when
/// pooling and `keep_argmax` (for a backward pass), which of its window's four pixels
/// (0..4, row-major) each output value came from.
pub fn conv_block(
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
pub(super) struct Forward<'a> {
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
        let taps = g.taps();
        let packed = |block: usize| &self.packed[block * taps..][..taps];
        let blocks = self.bias.len();
        // Two channel blocks per tile where there are registers for them (see `MulAdd::WIDE`);
        // each channel's sums run in the same order either way.
        let pairs = if M::WIDE { blocks / 2 } else { 0 };
        for group in g.groups() {
            for pair in 0..pairs {
                let first = 2 * pair;
                let accs = tile::<M, 2>(padded, group.bases, g, [packed(first), packed(first + 1)]);
                for (i, acc) in accs.iter().enumerate() {
                    self.store(&group, first + i, acc, output, argmax);
                }
            }
            for block in 2 * pairs..blocks {
                let [acc] = tile::<M, 1>(padded, group.bases, g, [packed(block)]);
                self.store(&group, block, &acc, output, argmax);
            }
        }
    }

    /// Pool, add the bias, activate and store one channel block's tile.
    #[inline(always)]
    fn store(
        &self,
        group: &Group,
        block: usize,
        acc: &[[f32; LANES]; PIXELS],
        output: &mut [f32],
        argmax: &mut [u8],
    ) {
        let g = self.g;
        let (c_out, slope, bias) = (g.c_out, g.spec.slope, &self.bias[block]);
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

/// The (leaky) ReLU of `z + bias`. Plain loops and `inline(always)`: closures and
/// `array::from_fn` are not always inlined, and would then miss the AVX build.
#[inline(always)]
pub(super) fn activated(z: &[f32; LANES], bias: &[f32; LANES], slope: f32) -> [f32; LANES] {
    let mut out = [0.0; LANES];
    for lane in 0..LANES {
        let z = z[lane] + bias[lane];
        out[lane] = if z > 0.0 { z } else { slope * z };
    }
    out
}

pub(super) struct ForwardCandidate<'a> {
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

/// The register tile: `BLOCKS` blocks of 16 output channels' convolution at 4 pixels
/// (`bases` in the padded input), `packed` holding each block's weights per tap.
#[inline(always)]
pub(super) fn tile<M: MulAdd, const BLOCKS: usize>(
    padded: &[f32],
    bases: [usize; PIXELS],
    g: &Geometry,
    packed: [&[[f32; LANES]]; BLOCKS],
) -> [[[f32; LANES]; PIXELS]; BLOCKS] {
    let row_taps = g.row_taps;
    let mut acc = [[[0.0f32; LANES]; PIXELS]; BLOCKS];
    for ky in 0..g.spec.kernel[0] {
        // Equal lengths let the compiler drop most bounds checks of the inner loop.
        // Filled by loops: `array::map` was not inlined, a call per row of every tile.
        let mut weights: [&[[f32; LANES]]; BLOCKS] = [&[]; BLOCKS];
        for (weights, packed) in weights.iter_mut().zip(packed) {
            *weights = &packed[ky * row_taps..][..row_taps];
        }
        let mut rows: [&[f32]; PIXELS] = [&[]; PIXELS];
        for (row, base) in rows.iter_mut().zip(bases) {
            *row = &padded[base + ky * g.row_stride()..][..row_taps];
        }
        for t in 0..row_taps {
            for (p, row) in rows.iter().enumerate() {
                let a = row[t];
                for (acc, weights) in acc.iter_mut().zip(&weights) {
                    for (acc, w) in acc[p].iter_mut().zip(&weights[t]) {
                        *acc = M::mul_add(a, *w, *acc);
                    }
                }
            }
        }
    }
    acc
}
