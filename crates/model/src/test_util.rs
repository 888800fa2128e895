//! Helpers shared by the unit tests.

use burn::module::Param;
use burn::prelude::*;

use crate::backend::CpuAutodiff;

/// Deterministic pseudo-random values in [-1, 1) of shape `dims`.
pub fn random<B: Backend, const D: usize>(dims: [usize; D], salt: u32) -> Tensor<B, D> {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n as u32)
        .map(|i| {
            let x = i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(salt.wrapping_mul(40_503));
            2.0 * (x >> 8) as f32 / (1u32 << 24) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), &Default::default())
}

/// Equal shapes and values equal to a relative 1e-4.
pub fn assert_close<B: Backend, const D: usize>(a: &Tensor<B, D>, b: &Tensor<B, D>, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let values = |t: &Tensor<B, D>| t.to_data().convert::<f32>().into_vec::<f32>().unwrap();
    for (i, (x, y)) in values(a).iter().zip(&values(b)).enumerate() {
        assert!(
            (x - y).abs() < 1e-4 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// `ours` and `burns`, the same function of the same input computed two ways, agree in value
/// and in the gradient of `kernel` for a pseudo-random weighting of the output.
pub fn assert_same_values_and_gradient<const D: usize>(
    ours: Tensor<CpuAutodiff, D>,
    burns: Tensor<CpuAutodiff, D>,
    kernel: &Param<Tensor<CpuAutodiff, 4>>,
) {
    assert_close(&ours.clone().inner(), &burns.clone().inner(), "values");
    let weighting = random::<CpuAutodiff, D>(ours.dims(), 2);
    let gradient = |y: Tensor<CpuAutodiff, D>| {
        let grads = (y * weighting.clone()).sum().backward();
        kernel.val().grad(&grads).expect("gradient")
    };
    assert_close(&gradient(ours), &gradient(burns), "the kernel's gradient");
}
