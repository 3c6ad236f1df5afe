//! 50 SGD steps on four synthetic image/mask pairs (a bright disc on noise) must at least halve
//! the segmentation loss.

use burn::prelude::*;
use scl::train::{self, Batch};

use crate::common::*;

fn disc_batch(n: usize, size: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let mut img = Vec::with_capacity(n * 3 * size * size);
    let mut mask = Vec::with_capacity(n * size * size);
    let noise = to_vec(image(n, size, size, 99, &Device::flex()));
    for b in 0..n {
        let (cx, cy, r) = (
            (size / 3 + 7 * b) as f32,
            (size / 2 + 3 * b) as f32,
            (size / 5 + b) as f32,
        );
        let inside =
            |x: usize, y: usize| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r;
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let n = noise[((b * 3 + c) * size + y) * size + x] * 0.5;
                    img.push(if inside(x, y) { 0.5 + n } else { n });
                }
            }
        }
        for y in 0..size {
            for x in 0..size {
                mask.push(if inside(x, y) { 1.0 } else { 0.0 });
            }
        }
    }
    (
        tensor4(img, [n, 3, size, size], device),
        tensor4(mask, [n, 1, size, size], device),
    )
}

#[test]
fn fifty_steps_halve_the_segmentation_loss() {
    let ad = dev().autodiff();
    ad.seed(7);
    let mut m = model(&light(), &ad);
    let (x, y) = disc_batch(4, 64, &ad);
    let batch = Batch {
        labeled: Some((x.clone(), y)),
        unlabeled: Some(x),
    };
    let mut optim = train::sgd();
    let mut first = None;
    let mut last = 0.0;
    for i in 0..50 {
        let (next, terms) = train::step(m, &mut optim, &batch, train::poly_lr(0.05, i, 50));
        m = next;
        assert!(terms.total.is_finite());
        first.get_or_insert(terms.seg);
        last = terms.seg;
    }
    let first = first.unwrap();
    println!("segmentation loss: step 1 {first:.4}, step 50 {last:.4}");
    assert!(last <= first / 2.0, "L_seg went from {first} to {last}");
}
