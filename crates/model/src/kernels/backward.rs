//! The backward pass of a fused block: [`conv_block_backward`], with weight-gradient sums
//! in a fixed order so that training is bit-reproducible whatever the number of threads.

use super::forward::*;
use super::*;

/// Gradients of a block with respect to its input (when asked for), weight and bias.
#[derive(Debug)]
pub struct ConvBlockGrads {
    /// Laid out as the input was.
    pub input: Option<Vec<f32>>,
    /// `(C_out, C_in, kH, kW)`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The inputs of [`conv_block_backward`]: the forward pass's inputs and outputs, and the loss
/// gradient with respect to its output.
pub struct BackwardPass<'a> {
    pub input: &'a [f32],
    pub dims: [usize; 4],
    pub weight: &'a [f32],
    pub output: &'a [f32],
    pub argmax: Option<&'a [u8]>,
    pub output_grad: &'a [f32],
}

/// The backward pass of [`conv_block`], compiled for `isa`: `pass.output` and `pass.argmax` are
/// what it returned, and `pass.output_grad` the loss gradient with respect to `pass.output`.
///
/// The activation's derivative is read from the sign of the output, and each pooled value's
/// gradient goes to the one convolution pixel it came from, so with pooling only a quarter of
/// the convolution's pixels (and for ReLU about half of those) get a gradient per channel.
/// Either each non-zero gradient adds its channel's filter to the input gradient and the
/// pixel's taps to the weight gradient as short vector `axpy`s, or the weight gradient is one
/// GEMM per block of channels and the input gradient a convolution of the gradient map with
/// the flipped filters (see `Geometry::weight_grad_by_gemm`). Gradients are summed over fixed groups of
/// candidates in a fixed order, so they do not depend on the number of threads.
pub fn conv_block_backward(
    isa: InstructionSet,
    pass: &BackwardPass,
    spec: &ConvBlock,
    input_grad: bool,
) -> ConvBlockGrads {
    let (dims, weight, argmax) = (pass.dims, pass.weight, pass.argmax);
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
    let filter_taps = g.filter_taps();
    let mut by_tap = LineAligned::zeroed(if gemm { 0 } else { c_out * taps });
    for (row, filter) in by_tap.chunks_exact_mut(taps).zip(weight.chunks_exact(taps)) {
        for (&tap, w) in filter_taps.iter().zip(filter) {
            row[tap] = *w;
        }
    }
    let (n, in_len, out_len) = (dims[0], g.input_len(), g.output_len());
    let worker = Backward {
        isa,
        g: &g,
        input: pass.input,
        weight: &by_tap,
        output: pass.output,
        argmax: argmax.unwrap_or(&[]),
        output_grad: pass.output_grad,
    };
    // Room for each channel's terms (at most one per convolution output pixel) and each
    // pixel's (at most one per channel), plus one slot each for a discarded write.
    let [out_h, out_w] = g.output;
    let (channel_room, pixel_room) = if gemm {
        (0, 0)
    } else {
        (out_h * out_w + 1, c_out + 1)
    };
    let new_sums = || Sums {
        weight: vec![[0.0; LANES]; if gemm { g.channel_blocks() * taps } else { 0 }],
        weight_rows: vec![0.0; if gemm { 0 } else { c_out * taps }],
        bias: vec![0.0; c_out],
        padded: LineAligned::zeroed(g.padded_len),
        padded_grad: LineAligned::zeroed(if axpy_input_grad { g.padded_len } else { 0 }),
        pixels: Vec::new(),
        channel_terms: vec![(0, 0.0); c_out * channel_room],
        channel_counts: vec![0; if gemm { 0 } else { c_out }],
        pixel_terms: vec![(0, 0.0); PIXELS * pixel_room],
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
        for (&tap, w) in filter_taps.iter().zip(filter) {
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
pub(super) const CANDIDATES_PER_SUM: usize = 8;

/// Partial sums of the weight and bias gradients, and scratch buffers.
pub(super) struct Sums {
    /// The weight gradient by GEMM, laid out as the forward pass's packed weights: per block
    /// of [`LANES`] output channels, per tap, the block's 16 values (else empty).
    weight: Vec<[f32; LANES]>,
    /// The weight gradient by `axpy`, `(C_out, taps)` (else empty).
    weight_rows: Vec<f32>,
    bias: Vec<f32>,
    padded: LineAligned,
    padded_grad: LineAligned,
    /// Scratch: one block's convolution pixels with a gradient (offset in the padded input,
    /// gradient of the 16 channels).
    pixels: Vec<(usize, [f32; LANES])>,
    /// Scratch of the `axpy` form: per channel, the convolution pixels it sends a gradient
    /// (offset in the padded input, gradient), `channel_counts` of them, in rows of equal room.
    channel_terms: Vec<(usize, f32)>,
    channel_counts: Vec<usize>,
    /// Scratch of the `axpy` form: per pixel of a group, the channels that send it a gradient
    /// (offset of the channel's filter, gradient), in rows of equal room.
    pixel_terms: Vec<(usize, f32)>,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        add_lanes(&mut self.weight, &other.weight);
        for (a, b) in self.weight_rows.iter_mut().zip(&other.weight_rows) {
            *a += b;
        }
        for (a, b) in self.bias.iter_mut().zip(&other.bias) {
            *a += b;
        }
    }
}

/// The backward pass of one candidate at a time.
pub(super) struct Backward<'a> {
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
        let (grad, _) = conv_block(
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
                    let (grad, from) = candidate.lanes_at(at, lanes, p);
                    for (pixel, grads) in grads.iter_mut().enumerate() {
                        for lane in 0..LANES {
                            if usize::from(from[lane]) == pixel {
                                grads[lane] = grad[lane];
                            }
                        }
                    }
                    for (bias_grad, grad) in sums.bias[first..][..lanes].iter_mut().zip(&grad) {
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
            // with a gradient, 4 taps at a time (8 where there are registers for them, see
            // `MulAdd::WIDE`).
            let weight_grad = &mut sums.weight[block * taps..][..taps];
            for ky in 0..g.spec.kernel[0] {
                let row_grad = &mut weight_grad[ky * row_taps..][..row_taps];
                let (padded, pixels, offset) = (&sums.padded, &sums.pixels, ky * stride);
                let done = if M::WIDE {
                    weight_grad_tiles::<M, 8>(padded, pixels, offset, row_grad)
                } else {
                    weight_grad_tiles::<M, 4>(padded, pixels, offset, row_grad)
                };
                weight_grad_tiles::<M, 1>(padded, pixels, offset + done, &mut row_grad[done..]);
            }
        }
    }

    /// Input and weight gradients by `axpy`, per pixel and channel with a gradient. The
    /// terms are gathered first, so that each row of a gradient is summed in registers over
    /// all its terms and stored once: a channel's weight gradient over the pixels that sent
    /// it one, a pixel's input gradient over its channels.
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
            channel_terms,
            channel_counts,
            pixel_terms,
            ..
        } = sums;
        let channel_room = channel_terms.len() / c_out;
        let pixel_room = pixel_terms.len() / PIXELS;
        let with_input_grad = !padded_grad.is_empty();
        channel_counts.fill(0);
        for group in g.groups() {
            let mut pixel_counts = [0; PIXELS];
            for p in 0..group.outputs {
                let at = (group.first + p) * c_out;
                for (co, bias_grad) in bias_grads.iter_mut().enumerate() {
                    let (grad, pixel) = candidate.grad_at(at + co, p);
                    // A term is written whatever its gradient and counted only when that is
                    // non-zero: a branch on it, taken for about half of a ReLU's values,
                    // was mispredicted as often. Adding a zero leaves the bias as it was.
                    let kept = usize::from(grad != 0.0);
                    *bias_grad += grad;
                    let count = &mut channel_counts[co];
                    channel_terms[co * channel_room + *count] = (group.bases[pixel], grad);
                    *count += kept;
                    let count = &mut pixel_counts[pixel];
                    pixel_terms[pixel * pixel_room + *count] = (co * taps, grad);
                    *count += kept;
                }
            }
            if with_input_grad {
                // Each of the group's pixels once: pooling windows' pixels are distinct, and
                // without pooling only the first `outputs` carry terms.
                for (pixel, &base) in group.bases.iter().enumerate() {
                    let terms = &pixel_terms[pixel * pixel_room..][..pixel_counts[pixel]];
                    add_filter_rows::<M>(
                        self.weight,
                        terms,
                        row_taps,
                        padded_grad,
                        base,
                        stride,
                        g,
                    );
                }
            }
        }
        for (co, weight_grad) in weight_grads.chunks_exact_mut(taps).enumerate() {
            let terms = &channel_terms[co * channel_room..][..channel_counts[co]];
            add_filter_rows::<M>(padded, terms, stride, weight_grad, 0, row_taps, g);
        }
    }
}

/// [`add_rows`] over a filter's `kernel[0]` rows of `row_taps` values, two at a time: row
/// `ky` of the sums starts at `dest_at + ky * dest_step` in `dest`, and each term's at
/// `ky * source_step` past its own offset in `source`.
#[inline(always)]
fn add_filter_rows<M: MulAdd>(
    source: &[f32],
    terms: &[(usize, f32)],
    source_step: usize,
    dest: &mut [f32],
    dest_at: usize,
    dest_step: usize,
    g: &Geometry,
) {
    let (rows, len) = (g.spec.kernel[0], g.row_taps);
    let row = |ky: usize| (ky * source_step, dest_at + ky * dest_step);
    for ky in (0..rows).step_by(2) {
        let (source_at, dest_at) = row(ky);
        if ky + 1 < rows {
            let (source_next, dest_next) = row(ky + 1);
            let rows = ([source_at, source_next], [dest_at, dest_next]);
            add_rows::<M, 2>(source, terms, rows, dest, len);
        } else {
            add_rows::<M, 1>(source, terms, ([source_at], [dest_at]), dest, len);
        }
    }
}

/// For each of `R` rows `(source_at, dest_at)`: `dest[dest_at..][..len] += sum of scale *
/// source[at + source_at..][..len]` over `terms` of `(at, scale)`, in order. Each tile of
/// the rows (vectors of 16 lanes) is summed in registers over all terms and stored once;
/// the rows share each term's scale and give the FMAs `R` times as many independent chains
/// (with 4 accumulators, their 4-cycle latency kept one FMA pipe of two busy).
#[inline(always)]
fn add_rows<M: MulAdd, const R: usize>(
    source: &[f32],
    terms: &[(usize, f32)],
    rows: ([usize; R], [usize; R]),
    dest: &mut [f32],
    len: usize,
) {
    if terms.is_empty() {
        return;
    }
    let vectors = len / LANES;
    // 4 vectors a row on AVX-512 (8 zmm accumulators for two rows); on AVX2, whose 16-lane
    // vector is two ymm registers, 4 for one row or 2 for two (8 ymm either way).
    let mut done = if M::WIDE || R == 1 {
        add_row_tiles::<M, R, 4>(source, terms, rows, dest, 0, vectors)
    } else {
        add_row_tiles::<M, R, 2>(source, terms, rows, dest, 0, vectors)
    };
    done += add_row_tiles::<M, R, 1>(source, terms, rows, dest, done, vectors - done);
    let start = done * LANES;
    for (source_at, dest_at) in rows.0.into_iter().zip(rows.1) {
        for &(at, scale) in terms {
            let source = &source[at + source_at + start..][..len - start];
            for (sum, x) in dest[dest_at + start..][..len - start]
                .iter_mut()
                .zip(source)
            {
                *sum = M::mul_add(scale, *x, *sum);
            }
        }
    }
}

/// [`add_rows`] over the whole tiles of `V` vectors in `vectors` vectors from vector `from`;
/// returns how many vectors they covered.
#[inline(always)]
fn add_row_tiles<M: MulAdd, const R: usize, const V: usize>(
    source: &[f32],
    terms: &[(usize, f32)],
    (source_rows, dest_rows): ([usize; R], [usize; R]),
    dest: &mut [f32],
    from: usize,
    vectors: usize,
) -> usize {
    let tiles = vectors / V;
    for tile in 0..tiles {
        let first = (from + tile * V) * LANES;
        let mut acc = [[[0.0f32; LANES]; V]; R];
        for &(at, scale) in terms {
            for (acc, row) in acc.iter_mut().zip(source_rows) {
                let (x, _) = source[at + row + first..][..V * LANES].as_chunks::<LANES>();
                for (acc, x) in acc.iter_mut().zip(x) {
                    *acc = mul_add_lanes::<M>(scale, x, *acc);
                }
            }
        }
        for (acc, row) in acc.iter().zip(dest_rows) {
            let (sums, _) = dest[row + first..][..V * LANES].as_chunks_mut::<LANES>();
            add_lanes(sums, acc);
        }
    }
    tiles * V
}

/// One candidate's block output, its loss gradient and (when pooling) pooling positions.
pub(super) struct CandidateOutput<'a> {
    output: &'a [f32],
    output_grad: &'a [f32],
    /// Empty without pooling.
    argmax: &'a [u8],
    slope: f32,
}

impl CandidateOutput<'_> {
    /// [`grad_at`](Self::grad_at) for the `lanes` values from `at` (a block of channels),
    /// in whole 16-lane arrays, which vectorise: the gradients (zero past `lanes`) and the
    /// pixels they go to.
    #[inline(always)]
    fn lanes_at(&self, at: usize, lanes: usize, p: usize) -> ([f32; LANES], [u8; LANES]) {
        let mut grad = [0.0; LANES];
        let mut from = [p as u8; LANES];
        if lanes < LANES {
            for lane in 0..lanes {
                let (g, pixel) = self.grad_at(at + lane, p);
                (grad[lane], from[lane]) = (g, pixel as u8);
            }
            return (grad, from);
        }
        let output: &[f32; LANES] = self.output[at..][..LANES].try_into().expect("LANES");
        let output_grad: &[f32; LANES] = self.output_grad[at..][..LANES].try_into().expect("LANES");
        for lane in 0..LANES {
            grad[lane] = through_activation(output[lane], output_grad[lane], self.slope);
        }
        if !self.argmax.is_empty() {
            from.copy_from_slice(&self.argmax[at..][..LANES]);
        }
        (grad, from)
    }

    /// The gradient of output value `i` (of its group's output pixel `p`) through the
    /// activation, whose derivative is read from the output's sign, and which of the group's
    /// convolution pixels it goes to: the one its pooling window took the maximum from.
    #[inline(always)]
    fn grad_at(&self, i: usize, p: usize) -> (f32, usize) {
        let grad = through_activation(self.output[i], self.output_grad[i], self.slope);
        let pixel = if self.argmax.is_empty() {
            p
        } else {
            usize::from(self.argmax[i])
        };
        (grad, pixel)
    }
}

/// [`weight_grad_tile`] over the whole tiles of `TAPS` in `row_grad` (consecutive taps from
/// `offset`); returns how many taps they covered.
#[inline(always)]
fn weight_grad_tiles<M: MulAdd, const TAPS: usize>(
    padded: &[f32],
    pixels: &[(usize, [f32; LANES])],
    offset: usize,
    row_grad: &mut [[f32; LANES]],
) -> usize {
    let (tiles, _) = row_grad.as_chunks_mut::<TAPS>();
    for (i, tile) in tiles.iter_mut().enumerate() {
        weight_grad_tile::<M, TAPS>(padded, pixels, offset + TAPS * i, tile);
    }
    TAPS * tiles.len()
}

/// Add to `sums` (`TAPS` consecutive taps, 16 output channels each) the sum over `pixels` of
/// each pixel's input at those taps (`offset` past its base) times its gradient. The
/// accumulators stay in registers across the pixels, as in the forward tile.
#[inline(always)]
pub(super) fn weight_grad_tile<M: MulAdd, const TAPS: usize>(
    padded: &[f32],
    pixels: &[(usize, [f32; LANES])],
    offset: usize,
    sums: &mut [[f32; LANES]; TAPS],
) {
    // Two halves: with one array of 8, the compiler stored the sums on every pixel.
    let half = TAPS.div_ceil(2);
    let mut low = [[0.0f32; LANES]; TAPS];
    let mut high = [[0.0f32; LANES]; TAPS];
    for (base, grads) in pixels {
        let inputs: &[f32; TAPS] = padded[base + offset..][..TAPS]
            .try_into()
            .expect("TAPS values");
        for (acc, &a) in low[..half].iter_mut().zip(&inputs[..half]) {
            *acc = mul_add_lanes::<M>(a, grads, *acc);
        }
        for (acc, &a) in high[..TAPS - half].iter_mut().zip(&inputs[half..]) {
            *acc = mul_add_lanes::<M>(a, grads, *acc);
        }
    }
    add_lanes(sums, low[..half].iter().chain(&high[..TAPS - half]));
}

/// `sums += acc`, lane by lane.
#[inline(always)]
fn add_lanes<'a>(sums: &mut [[f32; LANES]], acc: impl IntoIterator<Item = &'a [f32; LANES]>) {
    for (sum, acc) in sums.iter_mut().zip(acc) {
        for (sum, acc) in sum.iter_mut().zip(acc) {
            *sum += acc;
        }
    }
}

/// The gradient `grad` of an activated `output` through the activation (a leaky ReLU of
/// `slope`), whose derivative is read from the output's sign.
#[inline(always)]
fn through_activation(output: f32, grad: f32, slope: f32) -> f32 {
    if output > 0.0 { grad } else { grad * slope }
}

/// `a * x + acc`, lane by lane.
#[inline(always)]
fn mul_add_lanes<M: MulAdd>(a: f32, x: &[f32; LANES], acc: [f32; LANES]) -> [f32; LANES] {
    let mut out = [0.0; LANES];
    for lane in 0..LANES {
        out[lane] = M::mul_add(a, x[lane], acc[lane]);
    }
    out
}

pub(super) struct BackwardCandidate<'a> {
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
