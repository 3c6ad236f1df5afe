//! The x2 bilinear upsampling (half-pixel centres) against hand-computed values and against
//! Burn's `interpolate`.

use burn::prelude::*;
use scl::model::layers::{resize_bilinear, upsample2};

#[test]
fn upsample2_matches_hand_values() {
    let d = Device::flex();
    // One row [1, 2]: PyTorch's F.interpolate(scale_factor=2, mode="bilinear",
    // align_corners=False) gives [1, 1.25, 1.75, 2] (0.75/0.25 weights, edges clamped); the
    // single row is repeated.
    let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 1, 1, 2]), &d);
    let y: Vec<f32> = upsample2(x).into_data().try_into_vec().unwrap();
    assert_eq!(y, vec![1.0, 1.25, 1.75, 2.0, 1.0, 1.25, 1.75, 2.0]);
    // A 2x2 [[0, 4], [8, 12]]: row 1 of the output is 0.75 * row 0 + 0.25 * row 1 of the
    // W-upsampled [[0, 1, 3, 4], [8, 9, 11, 12]], i.e. [2, 3, 5, 6].
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.0f32, 4.0, 8.0, 12.0], [1, 1, 2, 2]),
        &d,
    );
    let y: Vec<f32> = upsample2(x).into_data().try_into_vec().unwrap();
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
    let a: Vec<f32> = upsample2(x.clone()).into_data().try_into_vec().unwrap();
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
