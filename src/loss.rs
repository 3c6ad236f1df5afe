//! The losses of SPEC.md: deep-supervised BCE + Dice for labeled images, masked L1 inpainting
//! loss for unlabeled images, and their weighted total.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use crate::model::network::{threshold, untracked_on};

/// Weight of the segmentation loss in the total (SPEC.md).
pub const SEG_WEIGHT: f64 = 2.0;
/// Weight of the inpainting loss in the total (SPEC.md).
pub const INP_WEIGHT: f64 = 1.0;

/// 2x2 average pooling with stride 2 (odd trailing rows/columns are dropped).
pub fn pool2(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
}

/// `x` downsampled to every size in `sizes` by repeated 2x2 average pooling. Each size must be
/// `x`'s size divided by a power of two (the decoder's output sizes are). Values stay soft.
pub fn pyramid(x: Tensor<4>, sizes: &[[usize; 2]]) -> Vec<Tensor<4>> {
    let mut cur = x;
    sizes
        .iter()
        .map(|&[h, w]| {
            while cur.dims()[2] > h || cur.dims()[3] > w {
                cur = pool2(cur.clone());
            }
            debug_assert_eq!([cur.dims()[2], cur.dims()[3]], [h, w]);
            cur.clone()
        })
        .collect()
}

/// Mean binary cross-entropy between `sigmoid(logits)` and the (soft) `target`, computed from
/// the logits in the numerically stable form `max(z, 0) - z y + ln(1 + e^-|z|)`.
pub fn bce_with_logits(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let z = logits;
    let stable = z.clone().clamp_min(0.0) - z.clone() * target + (z.abs().neg().exp() + 1.0).log();
    stable.mean()
}

/// Soft Dice loss per sample, `1 - (2 sum(p g) + 1) / (sum(p) + sum(g) + 1)`, averaged over
/// the batch.
pub fn dice_loss(prob: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let b = prob.dims()[0];
    let p = prob.reshape([b as i64, -1]);
    let g = target.reshape([b as i64, -1]);
    let inter = (p.clone() * g.clone()).sum_dim(1);
    let denom = p.sum_dim(1) + g.sum_dim(1) + 1.0;
    let dice = (inter * 2.0 + 1.0) / denom;
    (dice.neg() + 1.0).mean()
}

/// Deep-supervised segmentation loss: the sum over the outputs (logits, any number, finest
/// first) of BCE + Dice against `target` (`[B, 1, H, W]`, values in [0, 1]) pooled to each
/// output's size.
pub fn segmentation_loss(outputs: &[Tensor<4>], target: Tensor<4>) -> Tensor<1> {
    let sizes: Vec<[usize; 2]> = outputs.iter().map(|o| [o.dims()[2], o.dims()[3]]).collect();
    let targets = pyramid(target, &sizes);
    outputs
        .iter()
        .zip(targets)
        .map(|(z, g)| bce_with_logits(z.clone(), g.clone()) + dice_loss(sigmoid(z.clone()), g))
        .reduce(|a, b| a + b)
        .expect("at least one segmentation output")
}

/// Masked L1 inpainting loss: for each level, the mean absolute error between the inpainting
/// output and the image `x` pooled to that size, over the pixels (all 3 channels, the whole
/// batch pooled together) where that level's segmentation output, detached, is `>= 0.5`;
/// summed over levels. A level with no such pixel contributes exactly 0 (and a zero gradient).
///
/// `inpainted` and `seg_logits` are finest first and pair up level by level.
pub fn inpainting_loss(
    inpainted: &[Tensor<4>],
    seg_logits: &[Tensor<4>],
    x: Tensor<4>,
) -> Tensor<1> {
    assert_eq!(
        inpainted.len(),
        seg_logits.len(),
        "one mask per inpainting output"
    );
    let sizes: Vec<[usize; 2]> = inpainted
        .iter()
        .map(|o| [o.dims()[2], o.dims()[3]])
        .collect();
    // Targets, masks and pixel counts carry no gradient: computed off the autodiff tape.
    let device = x.device();
    let lift = |t: Tensor<4>| untracked_on(t, &device);
    let targets = pyramid(x.clone().inner(), &sizes);
    inpainted
        .iter()
        .zip(seg_logits)
        .zip(targets)
        .map(|((o, z), t)| {
            let m = threshold(&sigmoid(z.clone().inner()));
            let channels = o.dims()[1] as f64;
            let count = (m.clone().sum() * channels).clamp_min(1.0);
            let err = ((o.clone() - lift(t)).abs() * lift(m)).sum();
            err / untracked_on(count, &device)
        })
        .reduce(|a, b| a + b)
        .expect("at least one inpainting output")
}

/// `L = 2 L_seg + 1 L_inp`.
pub fn total_loss(seg: Tensor<1>, inp: Tensor<1>) -> Tensor<1> {
    seg * SEG_WEIGHT + inp * INP_WEIGHT
}
