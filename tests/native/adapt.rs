//! Adaptation to a new site (`scl::adapt`) on synthetic images: AdaBN against batch statistics
//! computed independently, the gradient objectives moving their loss the right way, and the
//! collapse guard.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use image::{Rgb, RgbImage};
use scl::adapt::{AdaptOptions, Adapter, Objective, Verdict, folder, guard};
use scl::model::Scl;

use crate::common::*;

/// `n` 64x64 images of a bright disc on a textured background, tinted by `tint` (a new "site").
fn site(n: usize, tint: [f32; 3]) -> Vec<RgbImage> {
    (0..n)
        .map(|i| {
            let (cx, cy, r) = (
                20.0 + 3.0 * i as f32,
                30.0 + 2.0 * i as f32,
                10.0 + i as f32,
            );
            RgbImage::from_fn(64, 64, |x, y| {
                let d = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
                let base = if d {
                    [230.0, 90.0, 80.0]
                } else {
                    [120.0, 60.0, 50.0]
                };
                let tex = 20.0 * ((x as f32 * 0.7 + y as f32 * 1.3 + i as f32).sin());
                Rgb(std::array::from_fn(|c| {
                    (base[c] * tint[c] + tex).clamp(0.0, 255.0) as u8
                }))
            })
        })
        .collect()
}

fn single_stage() -> Scl {
    model(&light().with_two_stage(false), &dev())
}

#[test]
fn adabn_statistics_are_the_mean_of_the_batch_statistics() {
    // Single-stage network: the stem's batch norm sees only conv1(x). Its running mean after
    // AdaBN must be the mean over the batches of the per-channel batch means of conv1(x), and
    // its running variance the mean of the unbiased batch variances, computed here directly.
    let device = dev();
    let m = single_stage();
    let images = site(6, [0.6, 1.2, 1.0]);
    let mut options = AdaptOptions::new(Objective::parse("adabn").unwrap(), 64);
    options.batch = 4; // batches of 4 and 2
    let (adapted, report) =
        folder::adapt_images(&m, &images, options, &device, |_, _, _| {}).unwrap();
    assert_eq!(report.adabn_batches, 2);
    let stem = &resnet(&m).conv1;
    let (mut means, mut vars) = (vec![0f64; 8], vec![0f64; 8]);
    for chunk in images.chunks(4) {
        let flat: Vec<f32> = chunk.iter().flat_map(scl::imageio::rgb_to_chw).collect();
        let x = tensor4(flat, [chunk.len(), 3, 64, 64], &device);
        let y = conv2d(
            x,
            stem.weight.val(),
            None,
            ConvOptions::new([2, 2], [3, 3], [1, 1], 1),
        );
        let [b, c, h, w] = y.dims();
        let v = to_vec(y);
        for ch in 0..c {
            let vals: Vec<f64> = (0..b)
                .flat_map(|i| v[(i * c + ch) * h * w..(i * c + ch + 1) * h * w].iter())
                .map(|&a| a as f64)
                .collect();
            let n = vals.len() as f64;
            let mu = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|a| (a - mu).powi(2)).sum::<f64>() / (n - 1.0);
            means[ch] += mu / 2.0;
            vars[ch] += var / 2.0;
        }
    }
    let bn = &resnet(&adapted).bn1;
    let rm = to_vec(bn.running_mean.value());
    let rv = to_vec(bn.running_var.value());
    for ch in 0..8 {
        assert!(
            (rm[ch] as f64 - means[ch]).abs() < 1e-4 * (1.0 + means[ch].abs()),
            "mean {ch}: {} vs {}",
            rm[ch],
            means[ch]
        );
        assert!(
            (rv[ch] as f64 - vars[ch]).abs() < 1e-3 * vars[ch],
            "var {ch}: {} vs {}",
            rv[ch],
            vars[ch]
        );
    }
    // And they moved: the fresh network's statistics were 0 and 1.
    assert!(rv.iter().any(|&v| (v - 1.0).abs() > 0.1));
}

#[test]
fn gradient_objectives_lower_their_loss() {
    let device = dev();
    let m = model(&light(), &device);
    let images = site(4, [1.0, 1.0, 1.0]);
    for name in ["inpainting", "tent", "pseudo"] {
        let mut options = AdaptOptions::new(Objective::parse(name).unwrap(), 64);
        options.steps = 12;
        options.lr = 0.01;
        options.crop = 64;
        let mut a = Adapter::new(&m, &device, options).unwrap();
        // The same batch every step: the loss on it must go down.
        let x = a.crops(&images);
        let mut losses = Vec::new();
        for _ in 0..12 {
            let (loss, _, verdict) = a.step_sync(x.clone()).unwrap();
            losses.push(loss);
            if verdict != Verdict::Continue {
                break;
            }
        }
        let (first, last) = (losses[0], *losses.last().unwrap());
        println!(
            "{name}: loss {first:.5} -> {last:.5} in {} steps",
            losses.len()
        );
        assert!(last < first, "{name}: loss went from {first} to {last}");
    }
}

#[test]
fn tent_moves_only_batch_norm_affine_parameters() {
    let device = dev();
    let m = model(&light(), &device);
    let images = site(2, [1.0, 1.0, 1.0]);
    let mut options = AdaptOptions::new(Objective::parse("tent").unwrap(), 64);
    options.steps = 3;
    options.lr = 0.05;
    options.crop = 64;
    options.batch = 2;
    let (adapted, _) = folder::adapt_images(&m, &images, options, &device, |_, _, _| {}).unwrap();
    let conv = |s: &Scl| to_vec(s.seg.blocks[2].reduce.conv.weight.val());
    let gamma = |s: &Scl| to_vec(s.seg.blocks[2].reduce.bn.gamma.val());
    assert_eq!(conv(&m), conv(&adapted), "a convolution moved under TENT");
    assert_ne!(gamma(&m), gamma(&adapted), "batch-norm scales did not move");
}

#[test]
fn inpainting_needs_an_scl_network() {
    let e = Adapter::new(
        &single_stage(),
        &dev(),
        AdaptOptions::new(Objective::parse("inpainting").unwrap(), 64),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("no inpainting decoder"), "{e}");
    assert!(Objective::parse("adabn+tent").unwrap().adabn);
    assert!(Objective::parse("tent+adabn").is_err());
}

#[test]
fn collapse_is_caught_and_the_weights_revert() {
    // The rule itself, on hand-picked values: from 20% lesion, 4.9% is a collapse (below a
    // quarter), 5.1% is not; 80.1% is (more than three quarters of the background gone).
    assert!(guard::is_collapse(0.2, 0.049));
    assert!(!guard::is_collapse(0.2, 0.051));
    assert!(guard::is_collapse(0.2, 0.801));
    assert!(!guard::is_collapse(0.2, 0.79));
    // Negligible lesions cannot collapse downwards.
    assert!(!guard::is_collapse(0.001, 0.0));

    // A real run whose recorded foreground we drive to zero: the guard stops it and the
    // model goes back to the original weights.
    let device = dev();
    let m = model(&light(), &device);
    let images = site(2, [1.0, 1.0, 1.0]);
    let mut options = AdaptOptions::new(Objective::parse("pseudo").unwrap(), 64);
    options.lr = 0.05;
    options.crop = 64;
    options.batch = 2;
    let mut a = Adapter::new(&m, &device, options).unwrap();
    let x = a.crops(&images);
    let mut verdict = Verdict::Continue;
    for fg in [
        0.3, 0.3, 0.3, 0.2, 0.1, 0.05, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ] {
        let p = a.step(x.clone()).unwrap();
        let loss = p.loss.into_scalar::<f32>() as f64;
        verdict = a.record(loss, fg);
        if verdict != Verdict::Continue {
            break;
        }
    }
    let Verdict::Collapsed { message } = verdict else {
        panic!("no collapse caught");
    };
    assert!(
        message.contains("30.0%") && message.contains("reverted"),
        "{message}"
    );
    assert!(a.step(x).is_err(), "a stopped run must refuse more steps");
    let w = |s: &Scl| to_vec(s.seg.blocks[1].expand.conv.weight.val());
    assert_eq!(w(&a.model().unwrap()), w(&m));
}

#[test]
fn prior_matching_brings_the_predicted_lesion_fraction_to_the_prior() {
    // A random two-stage network on 6 images: after `prior` matching at 0.3, the fraction of
    // pixels whose fine probability is >= 0.5, counted here from the adapted network's own
    // predictions, is 0.3 (the tolerance plus one histogram bin's worth), and only the output
    // bias of the segmentation head moved, by the offset the report gives.
    let device = dev();
    let m = model(&light(), &device);
    let images = site(6, [0.8, 1.1, 1.0]);
    let mut options = AdaptOptions::new(Objective::parse("prior").unwrap(), 64);
    options.prior = 0.3;
    options.batch = 4;
    let (adapted, report) =
        folder::adapt_images(&m, &images, options, &device, |_, _, _| {}).unwrap();
    let flat: Vec<f32> = images.iter().flat_map(scl::imageio::rgb_to_chw).collect();
    let x = tensor4(flat, [6, 3, 64, 64], &device);
    let (_, fine) = adapted.predict_mask(x).unwrap();
    let p = to_vec(fine);
    let fraction = p.iter().filter(|&&v| v >= 0.5).count() as f64 / p.len() as f64;
    println!(
        "prior rounds {:?}: fraction {fraction:.4}",
        report.prior_rounds
    );
    assert!((fraction - 0.3).abs() < 0.01, "fraction {fraction}");
    let offset = report.prior_rounds.last().unwrap().offset;
    let bias = |s: &Scl| to_vec(s.seg.head.out.bias.as_ref().unwrap().val())[0];
    assert!((bias(&adapted) - bias(&m) - offset).abs() < 1e-5);
    let w = |s: &Scl| to_vec(s.seg.head.out.weight.val());
    assert_eq!(w(&m), w(&adapted));
    assert!(Objective::parse("adabn+inpainting+prior").unwrap().prior);
    assert_eq!(
        Objective::parse("adabn+prior").unwrap().name(),
        "adabn+prior"
    );
}
