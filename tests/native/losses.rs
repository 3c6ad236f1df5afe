//! Losses against numbers computed by hand.

use scl::loss::*;

use crate::common::*;

const LN2: f64 = std::f64::consts::LN_2;

#[test]
fn bce_matches_hand_values() {
    let device = dev();
    // p = sigmoid(0) = 0.5 and sigmoid(ln 3) = 0.75; targets 1 and 0:
    // mean(-ln 0.5, -ln 0.25) = (0.693147 + 1.386294) / 2.
    let z = tensor4(vec![0.0, 3f32.ln()], [1, 1, 1, 2], &device);
    let y = tensor4(vec![1.0, 0.0], [1, 1, 1, 2], &device);
    assert_close(
        scalar(bce_with_logits(z.clone(), y)),
        (LN2 + 2.0 * LN2) / 2.0,
        1e-6,
        "BCE",
    );
    // Soft target 0.5 on p = 0.75: -(0.5 ln 0.75 + 0.5 ln 0.25) = 0.8369882.
    let z = tensor4(vec![3f32.ln()], [1, 1, 1, 1], &device);
    let y = tensor4(vec![0.5], [1, 1, 1, 1], &device);
    assert_close(scalar(bce_with_logits(z, y)), 0.836_988_1, 1e-6, "soft BCE");
    // Large logits stay finite: z = 100, y = 0 gives 100.
    let z = tensor4(vec![100.0], [1, 1, 1, 1], &device);
    let y = tensor4(vec![0.0], [1, 1, 1, 1], &device);
    assert_close(scalar(bce_with_logits(z, y)), 100.0, 1e-4, "BCE at z = 100");
}

#[test]
fn dice_matches_hand_values() {
    let device = dev();
    // Sample 1: p = [0.5, 0.75], g = [1, 0]: 1 - (2 * 0.5 + 1) / (1.25 + 1 + 1) = 0.3846154.
    // Sample 2: p = [1, 0], g = [1, 0]: 1 - (2 + 1) / (1 + 1 + 1) = 0.
    let p = tensor4(vec![0.5, 0.75, 1.0, 0.0], [2, 1, 1, 2], &device);
    let g = tensor4(vec![1.0, 0.0, 1.0, 0.0], [2, 1, 1, 2], &device);
    assert_close(
        scalar(dice_loss(p, g)),
        (1.0 - 2.0 / 3.25) / 2.0,
        1e-6,
        "Dice",
    );
}

#[test]
fn pyramid_averages_2x2_blocks() {
    let device = dev();
    let y = tensor4(
        vec![
            1.0, 1.0, 0.0, 0.0, //
            1.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 1.0, //
            0.0, 0.0, 1.0, 1.0,
        ],
        [1, 1, 4, 4],
        &device,
    );
    let p = pyramid(y, &[[4, 4], [2, 2], [1, 1]]);
    assert_eq!(to_vec(p[1].clone()), vec![0.75, 0.0, 0.0, 1.0]);
    assert_eq!(to_vec(p[2].clone()), vec![0.4375]);
}

#[test]
fn segmentation_loss_sums_bce_and_dice_over_levels() {
    let device = dev();
    // All logits 0 (p = 0.5): BCE = ln 2 at every level whatever the target.
    // Level 4x4, target with a 2x2 block of ones: Dice = 1 - (2*0.5*4 + 1) / (8 + 4 + 1) = 8/13.
    // Level 2x2, pooled target [1, 0, 0, 0]: Dice = 1 - (1 + 1) / (2 + 1 + 1) = 0.5.
    let mut y = vec![0.0f32; 16];
    for i in [0, 1, 4, 5] {
        y[i] = 1.0;
    }
    let y = tensor4(y, [1, 1, 4, 4], &device);
    let outs = vec![
        tensor4(vec![0.0; 16], [1, 1, 4, 4], &device),
        tensor4(vec![0.0; 4], [1, 1, 2, 2], &device),
    ];
    let expected = 2.0 * LN2 + 8.0 / 13.0 + 0.5;
    assert_close(scalar(segmentation_loss(&outs, y)), expected, 1e-6, "L_seg");
}

#[test]
fn inpainting_loss_is_masked_mean_absolute_error() {
    let device = dev();
    // x: 2x2, channel values c * 0.1 + pixel * 0.2 (channel c, pixel 0..3).
    let x: Vec<f32> = (0..3)
        .flat_map(|c| (0..4).map(move |i| c as f32 * 0.1 + i as f32 * 0.2))
        .collect();
    let x_t = tensor4(x.clone(), [1, 3, 2, 2], &device);
    // Output: all 0.5.
    let out0 = tensor4(vec![0.5; 12], [1, 3, 2, 2], &device);
    // Masks: level 0 keeps pixels 0 and 2 (logits > 0); level 1 (1x1) is empty.
    let seg0 = tensor4(vec![1.0, -1.0, 0.5, -3.0], [1, 1, 2, 2], &device);
    let out1 = tensor4(vec![0.0; 3], [1, 3, 1, 1], &device);
    let seg1 = tensor4(vec![-5.0], [1, 1, 1, 1], &device);
    let mut err = 0.0;
    for c in 0..3 {
        for i in [0, 2] {
            err += (0.5 - x[c * 4 + i] as f64).abs();
        }
    }
    let expected = err / 6.0;
    let loss = inpainting_loss(&[out0, out1], &[seg0, seg1], x_t);
    assert_close(scalar(loss), expected, 1e-6, "L_inp");
}

#[test]
fn inpainting_loss_with_empty_masks_is_zero_with_finite_gradient() {
    let ad = dev().autodiff();
    let out = tensor4(vec![0.3; 12], [1, 3, 2, 2], &ad).require_grad();
    let seg = tensor4(vec![-1.0; 4], [1, 1, 2, 2], &ad);
    let x = tensor4(vec![0.9; 12], [1, 3, 2, 2], &ad);
    let loss = inpainting_loss(std::slice::from_ref(&out), &[seg], x);
    let v = to_vec(loss.clone());
    assert_eq!(v, vec![0.0]);
    let grads = loss.backward();
    let g = to_vec(out.grad(&grads).unwrap());
    assert!(g.iter().all(|v| v.is_finite() && *v == 0.0));
}

#[test]
fn total_weights_segmentation_twice() {
    let device = dev();
    let seg = burn::tensor::Tensor::<1>::from_floats([0.25], &device);
    let inp = burn::tensor::Tensor::<1>::from_floats([0.5], &device);
    assert_close(scalar(total_loss(seg, inp)), 1.0, 1e-7, "L");
}
