//! CPU kernels for channels-last convolution and pooling: plain loops over `f32` slices,
//! parallel across the candidates of a batch.
//!
//! burn-flex convolves one stamp at a time: per stamp it converts to NHWC, builds an im2col
//! tile and calls a GEMM of `(C_out, k*k*C_in) x (k*k*C_in, H*W)`. With 21x21 stamps those
//! GEMMs are tiny and the per-stamp overheads dominate (5% of the CPU's peak for SeedCnn).
//! With these kernels a whole batch is one `(N*H*W, k*k*C_in) x (k*k*C_in, C_out)` GEMM,
//! and activations stay channels-last between layers so nothing is transposed.

use rayon::prelude::*;

/// Memory order of a 4-D activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `(N, H, W, C)`, as between the channels-last layers.
    ChannelsLast,
    /// `(N, C, H, W)`, as stamps arrive.
    ChannelsFirst,
}

/// A stride-1 im2col: which input layout, kernel size and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2col {
    pub layout: Layout,
    /// `[kH, kW]`.
    pub kernel: [usize; 2],
    /// `[(top, bottom), (left, right)]` rows and columns of zeros.
    pub padding: [(usize, usize); 2],
}

impl Im2col {
    /// Output `(H', W')` for an `(H, W)` input.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let [(top, bottom), (left, right)] = self.padding;
        (
            height + top + bottom + 1 - self.kernel[0],
            width + left + right + 1 - self.kernel[1],
        )
    }

    /// Kernel taps: `kH * kW`.
    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix: `C * kH * kW`.
    pub fn columns(&self, channels: usize) -> usize {
        self.taps() * channels
    }

    /// The kernel taps (`ky * kW + kx`) of output pixel `pixel` (row-major over `H' x W'`)
    /// that read inside the input, each with the index of that input pixel's channel 0 in
    /// one stamp and the stride between its channels. Taps in the zero padding are left out.
    fn taps_of(
        &self,
        [height, width, channels]: [usize; 3],
        out_w: usize,
        pixel: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let (y, x) = (pixel / out_w, pixel % out_w);
        let [(top, _), (left, _)] = self.padding;
        let k_w = self.kernel[1];
        (0..self.taps()).filter_map(move |tap| {
            let sy = (y + tap / k_w).checked_sub(top).filter(|&sy| sy < height)?;
            let sx = (x + tap % k_w).checked_sub(left).filter(|&sx| sx < width)?;
            Some(match self.layout {
                Layout::ChannelsLast => (tap, (sy * width + sx) * channels, 1),
                Layout::ChannelsFirst => (tap, sy * width + sx, height * width),
            })
        })
    }
}

/// `input`: `dims = [N, H, W, C]` (logical) stored in `spec.layout` -> the
/// `(N * H' * W', C * kH * kW)` im2col matrix; column `c * kH * kW + ky * kW + kx` holds
/// `input[n, y + ky - top, x + kx - left, c]` (zero outside the input). That is the order of a
/// `Conv2d` weight `(C_out, C_in, kH, kW)` flattened per output channel, so the GEMM takes the
/// weight as it is stored.
pub fn im2col(input: &[f32], [n, height, width, channels]: [usize; 4], spec: &Im2col) -> Vec<f32> {
    let (out_h, out_w) = spec.output_size(height, width);
    let (columns, taps) = (spec.columns(channels), spec.taps());
    let stamp = height * width * channels;
    let mut out = vec![0.0f32; n * out_h * out_w * columns];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(out_h * out_w * columns)
        .zip(input.par_chunks(stamp))
        .for_each(|(out, input)| {
            for (pixel, row) in out.chunks_exact_mut(columns).enumerate() {
                // Taps in the zero padding are skipped: `out` starts zeroed.
                for (tap, start, step) in spec.taps_of([height, width, channels], out_w, pixel) {
                    for (c, v) in row.iter_mut().skip(tap).step_by(taps).enumerate() {
                        *v = input[start + c * step];
                    }
                }
            }
        });
    out
}

/// The gradient of [`im2col`]: every column entry is added back to the input pixel it was
/// copied from. Returns `dims` stored in `spec.layout`.
pub fn col2im(
    columns_grad: &[f32],
    [n, height, width, channels]: [usize; 4],
    spec: &Im2col,
) -> Vec<f32> {
    let (out_h, out_w) = spec.output_size(height, width);
    let (columns, taps) = (spec.columns(channels), spec.taps());
    let stamp = height * width * channels;
    let mut grad = vec![0.0f32; n * stamp];
    if grad.is_empty() {
        return grad;
    }
    grad.par_chunks_mut(stamp)
        .zip(columns_grad.par_chunks(out_h * out_w * columns))
        .for_each(|(grad, columns_grad)| {
            for (pixel, row) in columns_grad.chunks_exact(columns).enumerate() {
                for (tap, start, step) in spec.taps_of([height, width, channels], out_w, pixel) {
                    for (c, g) in row.iter().skip(tap).step_by(taps).enumerate() {
                        grad[start + c * step] += g;
                    }
                }
            }
        });
    grad
}

/// The four inputs of pooling window (`i`, `j`) of a channels-last stamp, top-left first.
fn window(width: usize, channels: usize, i: usize, j: usize) -> [usize; 4] {
    let top_left = (2 * i * width + 2 * j) * channels;
    let below = width * channels;
    [
        top_left,
        top_left + channels,
        top_left + below,
        top_left + below + channels,
    ]
}

/// 2x2 max-pooling, stride 2, of channels-last `dims = [N, H, W, C]` -> `(N, H/2, W/2, C)`;
/// an odd last row or column is dropped (Keras' valid pooling).
pub fn max_pool_2x2(input: &[f32], [n, height, width, channels]: [usize; 4]) -> Vec<f32> {
    let (out_h, out_w) = (height / 2, width / 2);
    let mut out = vec![0.0f32; n * out_h * out_w * channels];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(out_h * out_w * channels)
        .zip(input.par_chunks(height * width * channels))
        .for_each(|(out, input)| {
            for (pixel, out) in out.chunks_exact_mut(channels).enumerate() {
                let [a, b, c, d] = window(width, channels, pixel / out_w, pixel % out_w);
                for (k, v) in out.iter_mut().enumerate() {
                    *v = input[a + k]
                        .max(input[b + k])
                        .max(input[c + k].max(input[d + k]));
                }
            }
        });
    out
}

/// The gradient of [`max_pool_2x2`]: each output's gradient goes to the first input of its
/// window holding the maximum.
pub fn max_pool_2x2_backward(
    input: &[f32],
    output_grad: &[f32],
    [n, height, width, channels]: [usize; 4],
) -> Vec<f32> {
    let (out_h, out_w) = (height / 2, width / 2);
    let stamp = height * width * channels;
    let mut grad = vec![0.0f32; n * stamp];
    if grad.is_empty() || out_h * out_w == 0 {
        return grad;
    }
    grad.par_chunks_mut(stamp)
        .zip(input.par_chunks(stamp))
        .zip(output_grad.par_chunks(out_h * out_w * channels))
        .for_each(|((grad, input), output_grad)| {
            for (pixel, output_grad) in output_grad.chunks_exact(channels).enumerate() {
                let taps = window(width, channels, pixel / out_w, pixel % out_w);
                for (k, g) in output_grad.iter().enumerate() {
                    let best = taps
                        .iter()
                        .map(|t| t + k)
                        .reduce(|best, i| if input[i] > input[best] { i } else { best })
                        .expect("four taps");
                    grad[best] += g;
                }
            }
        });
    grad
}
