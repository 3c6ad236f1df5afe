//! The x2 bilinear upsampling (half-pixel centres) against hand-computed values, and its two
//! formulations (Burn's `interpolate`, used on the CPU; elementwise, used on the GPU) against
//! each other, forward and backward.

use burn::prelude::*;
use scl::model::layers::{resize_bilinear, upsample2, upsample2_elementwise};

#[test]
fn upsample2_matches_hand_values() {
    let d = Device::flex();
    // One row [1, 2]: PyTorch's F.interpolate(scale_factor=2, mode="bilinear",
    // align_corners=False) gives [1, 1.25, 1.75, 2] (0.75/0.25 weights, edges clamped); the
    // single row is repeated.
    for up in [upsample2, upsample2_elementwise] {
        hand_values(up, &d);
    }
}

fn hand_values(up: fn(Tensor<4>) -> Tensor<4>, d: &Device) {
    let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 1, 1, 2]), d);
    let y: Vec<f32> = up(x).into_data().try_into_vec().unwrap();
    assert_eq!(y, vec![1.0, 1.25, 1.75, 2.0, 1.0, 1.25, 1.75, 2.0]);
    // A 2x2 [[0, 4], [8, 12]]: row 1 of the output is 0.75 * row 0 + 0.25 * row 1 of the
    // W-upsampled [[0, 1, 3, 4], [8, 9, 11, 12]], i.e. [2, 3, 5, 6].
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.0f32, 4.0, 8.0, 12.0], [1, 1, 2, 2]),
        d,
    );
    let y: Vec<f32> = up(x).into_data().try_into_vec().unwrap();
    assert_eq!(&y[4..8], &[2.0, 3.0, 5.0, 6.0]);
    assert_eq!(&y[0..4], &[0.0, 1.0, 3.0, 4.0]);
    assert_eq!(&y[12..16], &[8.0, 9.0, 11.0, 12.0]);
}

#[test]
fn upsample2_equals_burn_bilinear_interpolate() {
    let d = Device::flex();
    d.seed(3);
    let x = Tensor::<4>::random(
        [2, 3, 5, 7],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &d,
    );
    let a: Vec<f32> = upsample2_elementwise(x.clone())
        .into_data()
        .try_into_vec()
        .unwrap();
    let b: Vec<f32> = resize_bilinear(x, 10, 14)
        .into_data()
        .try_into_vec()
        .unwrap();
    let max = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-6, "max difference {max}");
}

#[test]
fn upsample2_gradients() {
    // Every input pixel's weights sum to 2 along each axis (0.25 + 0.75 + 0.75 + 0.25 inside,
    // 1 + 0.75 + 0.25 at a clamped edge), so d sum(up(x)) / dx = 4 everywhere.
    let d = Device::flex().autodiff();
    d.seed(4);
    let x = Tensor::<4>::random(
        [2, 3, 5, 7],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &d,
    )
    .require_grad();
    for up in [upsample2, upsample2_elementwise] {
        let g = up(x.clone()).sum().backward();
        let gx: Vec<f32> = x.grad(&g).unwrap().into_data().try_into_vec().unwrap();
        assert!(gx.iter().all(|&v| (v - 4.0).abs() < 1e-5), "{gx:?}");
    }
    // A weighted sum: both formulations give the same gradient.
    let r = Tensor::<4>::random(
        [2, 3, 10, 14],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &d,
    );
    let grad = |up: fn(Tensor<4>) -> Tensor<4>| -> Vec<f32> {
        let g = (up(x.clone()) * r.clone()).sum().backward();
        x.grad(&g).unwrap().into_data().try_into_vec().unwrap()
    };
    let (a, b) = (grad(upsample2), grad(upsample2_elementwise));
    let max = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-5, "max gradient difference {max}");
}
