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
    let worker = Forward::new(isa, dims, weight, bias, *spec);
    let g = &worker.g;
    let n = dims[0];
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let mut output = vec![0.0f32; n * out_len];
    let keep_argmax = keep_argmax && spec.pool;
    if output.is_empty() {
        return (output, keep_argmax.then(Vec::new));
    }
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

/// One block of [`conv_chain`]: its `(C_out, C_in, kH, kW)` weight, `(C_out)` bias and shape.
#[derive(Debug, Clone, Copy)]
pub struct ChainLink<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub spec: ConvBlock,
}

/// Blocks one after the other, as successive [`conv_block`]s without `keep_argmax` give
/// them, for inference: each candidate goes through every block before the next candidate.
/// Its activations between blocks stay in per-thread buffers, in cache, and the batch is one
/// parallel loop rather than one per block (SeedCnn inference 15% faster). `input` holds
/// `dims` as the first link's `spec.layout` says; each later link's input is the channels-last
/// output of the one before. Returns the last block's channels-last output and its
/// `[N, H', W', C_out]`.
pub fn conv_chain(
    isa: InstructionSet,
    input: &[f32],
    dims: [usize; 4],
    links: &[ChainLink],
) -> (Vec<f32>, [usize; 4]) {
    let mut workers = Vec::with_capacity(links.len());
    let mut next = dims;
    for link in links {
        let worker = Forward::new(isa, next, link.weight, link.bias, link.spec);
        let [h, w] = worker.g.output;
        next = [dims[0], h, w, worker.g.c_out];
        workers.push(worker);
    }
    let (last, before) = workers.split_last().expect("a chain of at least one block");
    let (in_len, out_len) = (workers[0].g.input_len(), last.g.output_len());
    let mut output = vec![0.0f32; dims[0] * out_len];
    if output.is_empty() {
        return (output, next);
    }
    // Per thread: every block's padded input, and every block's output but the last's.
    let scratch = || {
        let padded: Vec<Vec<f32>> = workers.iter().map(|w| vec![0.0; w.g.padded_len]).collect();
        let between: Vec<Vec<f32>> = before.iter().map(|w| vec![0.0; w.g.output_len()]).collect();
        (padded, between)
    };
    output
        .par_chunks_mut(out_len)
        .zip(input.par_chunks(in_len))
        .for_each_init(scratch, |(padded, between), (out, mut x)| {
            let (last_padded, padded) = padded.split_last_mut().expect("one per block");
            for ((worker, padded), between) in before.iter().zip(padded).zip(between) {
                worker.run(x, padded, between, &mut []);
                x = between;
            }
            last.run(x, last_padded, out, &mut []);
        });
    (output, next)
}

/// The forward pass of one block, one candidate at a time.
pub(super) struct Forward {
    isa: InstructionSet,
    g: Geometry,
    /// The weights as the tile reads them ([`pack_weight`]).
    packed: Vec<[f32; LANES]>,
    /// The bias per block of [`LANES`] output channels.
    bias: Vec<[f32; LANES]>,
}

impl Forward {
    fn new(
        isa: InstructionSet,
        dims: [usize; 4],
        weight: &[f32],
        bias: &[f32],
        spec: ConvBlock,
    ) -> Self {
        let g = Geometry::new(dims, weight.len(), spec);
        assert_eq!(bias.len(), g.c_out, "bias length");
        let packed = pack_weight(weight, &g);
        let mut bias_blocks = vec![[0.0; LANES]; g.channel_blocks()];
        for (co, b) in bias.iter().enumerate() {
            bias_blocks[co / LANES][co % LANES] = *b;
        }
        Forward {
            isa,
            g,
            packed,
            bias: bias_blocks,
        }
    }

    /// `padded` is scratch of `padded_len` values whose border stays zero between calls.
    fn run(&self, input: &[f32], padded: &mut [f32], output: &mut [f32], argmax: &mut [u8]) {
        dispatch(
            self.isa,
            ForwardCandidate {
                worker: self,
                input,
                padded,
                output,
                argmax,
            },
        );
    }

    #[inline(always)]
    fn run_with<M: MulAdd>(&self, padded: &[f32], output: &mut [f32], argmax: &mut [u8]) {
        let mut groups = self.g.groups();
        while let Some(group) = groups.next() {
            // Two groups' pixels per tile where there are registers for them (see
            // `MulAdd::WIDE`); each value's sum runs in the same order either way.
            match M::WIDE.then(|| groups.next()).flatten() {
                Some(second) => {
                    self.tiles::<M, 2, { 2 * PIXELS }>(padded, [group, second], output, argmax)
                }
                None => self.tiles::<M, 1, PIXELS>(padded, [group], output, argmax),
            }
        }
    }

    /// Every channel block of `GROUPS` groups of pixels (`PIXELS_ALL` in all), through tiles
    /// of two channel blocks where there are registers for them (see `MulAdd::WIDE`).
    #[inline(always)]
    fn tiles<M: MulAdd, const GROUPS: usize, const PIXELS_ALL: usize>(
        &self,
        padded: &[f32],
        groups: [Group; GROUPS],
        output: &mut [f32],
        argmax: &mut [u8],
    ) {
        let g = &self.g;
        let taps = g.taps();
        let packed = |block: usize| &self.packed[block * taps..][..taps];
        let mut bases = [0; PIXELS_ALL];
        for (bases, group) in bases.chunks_exact_mut(PIXELS).zip(&groups) {
            bases.copy_from_slice(&group.bases);
        }
        let blocks = self.bias.len();
        let pairs = if M::WIDE { blocks / 2 } else { 0 };
        for pair in 0..pairs {
            let first = 2 * pair;
            let accs =
                tile::<M, 2, PIXELS_ALL>(padded, bases, g, [packed(first), packed(first + 1)]);
            for (i, acc) in accs.iter().enumerate() {
                self.store_groups(&groups, first + i, acc, output, argmax);
            }
        }
        for block in 2 * pairs..blocks {
            let [acc] = tile::<M, 1, PIXELS_ALL>(padded, bases, g, [packed(block)]);
            self.store_groups(&groups, block, &acc, output, argmax);
        }
    }

    /// [`store`](Self::store) each group's pixels of a tile. A method, not a closure: a
    /// closure was not inlined, so its code missed the instruction set (14% of inference).
    #[inline(always)]
    fn store_groups<const GROUPS: usize, const PIXELS_ALL: usize>(
        &self,
        groups: &[Group; GROUPS],
        block: usize,
        acc: &[[f32; LANES]; PIXELS_ALL],
        output: &mut [f32],
        argmax: &mut [u8],
    ) {
        for (acc, group) in acc.chunks_exact(PIXELS).zip(groups) {
            let acc = acc.try_into().expect("a group's pixels");
            self.store(group, block, acc, output, argmax);
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
        let g = &self.g;
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
            store_lanes(&mut output[at..], &activated(&best), lanes);
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
                store_lanes(&mut argmax[at..], &from, lanes);
            }
        } else {
            for (p, pixel) in acc.iter().enumerate().take(group.outputs) {
                let at = (group.first + p) * c_out + first;
                store_lanes(&mut output[at..], &activated(pixel), lanes);
            }
        }
    }
}

/// The first `lanes` of `values` into the start of `out`. A whole block is a fixed-size
/// copy, vector stores; a copy of run-time length is a call to `memcpy` (9% of SeedCnn's
/// first block), so the partial one stays out of line, where the compiler cannot merge the
/// two into one `memcpy` of `lanes` values.
#[inline(always)]
fn store_lanes<T: Copy>(out: &mut [T], values: &[T; LANES], lanes: usize) {
    #[cold]
    #[inline(never)]
    fn partial<T: Copy>(out: &mut [T], values: [T; LANES], lanes: usize) {
        out[..lanes].copy_from_slice(&values[..lanes]);
    }
    if lanes == LANES {
        out[..LANES].copy_from_slice(values);
    } else {
        partial(out, *values, lanes);
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
    worker: &'a Forward,
    input: &'a [f32],
    padded: &'a mut [f32],
    output: &'a mut [f32],
    argmax: &'a mut [u8],
}

impl Kernel for ForwardCandidate<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self) {
        self.worker.g.fill_padded(self.input, self.padded);
        self.worker
            .run_with::<M>(self.padded, self.output, self.argmax)
    }
}

/// The register tile: `BLOCKS` blocks of 16 output channels' convolution at `P` pixels
/// (`bases` in the padded input), `packed` holding each block's weights per tap.
#[inline(always)]
pub(super) fn tile<M: MulAdd, const BLOCKS: usize, const P: usize>(
    padded: &[f32],
    bases: [usize; P],
    g: &Geometry,
    packed: [&[[f32; LANES]]; BLOCKS],
) -> [[[f32; LANES]; P]; BLOCKS] {
    let row_taps = g.row_taps;
    let mut acc = [[[0.0f32; LANES]; P]; BLOCKS];
    for ky in 0..g.spec.kernel[0] {
        // Equal lengths let the compiler drop most bounds checks of the inner loop.
        // Filled by loops: `array::map` was not inlined, a call per row of every tile.
        let mut weights: [&[[f32; LANES]]; BLOCKS] = [&[]; BLOCKS];
        for (weights, packed) in weights.iter_mut().zip(packed) {
            *weights = &packed[ky * row_taps..][..row_taps];
        }
        let mut rows: [&[f32]; P] = [&[]; P];
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
