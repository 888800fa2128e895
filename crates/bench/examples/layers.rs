use model::kernels::{ConvBlock, Layout, conv_block};
fn main() {
    let n = 256;
    // (side, c_in, c_out, layout)
    let layers = [
        (21, 4, 32, Layout::ChannelsFirst),
        (10, 32, 32, Layout::ChannelsLast),
        (5, 32, 64, Layout::ChannelsLast),
        (2, 64, 64, Layout::ChannelsLast),
    ];
    for (side, c_in, c_out, layout) in layers {
        let spec = ConvBlock {
            layout,
            kernel: [2, 2],
            padding: [(0, 1), (0, 1)],
            pool: true,
            slope: 0.0,
        };
        let x: Vec<f32> = (0..n * side * side * c_in)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..c_out * c_in * 4)
            .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let b = vec![0.1f32; c_out];
        conv_block(&x, [n, side, side, c_in], &w, &b, &spec, false);
        let t = std::time::Instant::now();
        let mut reps = 0;
        while t.elapsed().as_secs_f64() < 1.5 {
            std::hint::black_box(conv_block(&x, [n, side, side, c_in], &w, &b, &spec, false));
            reps += 1;
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let used = (side / 2 * 2) * (side / 2 * 2);
        let flops = 2.0 * (n * used * c_out * c_in * 4) as f64;
        println!(
            "side {side} {c_in}->{c_out}: {:.1} us/cand, {:.1} GFLOP/s useful",
            s / n as f64 * 1e6,
            flops / s / 1e9
        );
    }
}
