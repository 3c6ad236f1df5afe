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
    let batch = Batch::new(Some((x.clone(), y)), Some(x));
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

#[test]
fn joint_pass_equals_two_separate_passes() {
    // Without dropout the one-pass implementation must give the losses, gradients and
    // running statistics of SPEC.md's two forward passes.
    let ad = dev().autodiff();
    let cfg = light().with_dropout(0.0);
    let (x, y) = disc_batch(4, 64, &ad);
    let (xu, _) = disc_batch(4, 64, &ad);
    let xu = xu.flip([3]);
    let batch = Batch::new(Some((x.clone(), y.clone())), Some(xu));
    let a = model(&cfg, &ad);
    let b = model(&cfg, &ad);
    let (sa, ia) = train::losses(&a, &batch);
    let (sb, ib) = train::losses_two_passes(&b, &batch);
    let ta = train::LossWeights::SPEC.total(sa.clone(), ia.clone());
    let tb = train::LossWeights::SPEC.total(sb.clone(), ib.clone());
    assert_close(scalar(sa.unwrap()), scalar(sb.unwrap()), 1e-4, "L_seg");
    assert_close(scalar(ia.unwrap()), scalar(ib.unwrap()), 1e-4, "L_inp");
    let ga = ta.backward();
    let gb = tb.backward();
    for (pa, pb) in [
        (
            resnet(&a).conv1.weight.clone(),
            resnet(&b).conv1.weight.clone(),
        ),
        (
            a.seg.head.hidden.conv.weight.clone(),
            b.seg.head.hidden.conv.weight.clone(),
        ),
        (
            a.inp.as_ref().unwrap().blocks[2].expand.conv.weight.clone(),
            b.inp.as_ref().unwrap().blocks[2].expand.conv.weight.clone(),
        ),
    ] {
        let (va, vb) = (to_vec(pa.grad(&ga).unwrap()), to_vec(pb.grad(&gb).unwrap()));
        let scale = vb.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (p, q) in va.iter().zip(&vb) {
            assert!((p - q).abs() <= 1e-3 * scale + 1e-6, "gradient {p} vs {q}");
        }
    }
    // The inpainting decoder runs once per iteration in both versions, so its running
    // statistics must agree (layers run twice per pass see the same updates in another order).
    let (ra, rb) = (
        to_vec(
            a.inp.as_ref().unwrap().blocks[1]
                .reduce
                .bn
                .running_var
                .value(),
        ),
        to_vec(
            b.inp.as_ref().unwrap().blocks[1]
                .reduce
                .bn
                .running_var
                .value(),
        ),
    );
    for (p, q) in ra.iter().zip(&rb) {
        assert_close(*p as f64, *q as f64, 1e-4, "running variance");
    }
}

#[test]
fn stage_one_loss_is_bce_plus_dice_of_the_coarse_mask() {
    // Without dropout, the stage-1 loss (`--coarse-weight`) must be BCE + Dice worked out here
    // in f64 from the coarse probability of a separate stage-1 pass over the labeled images
    // (batch statistics are per sub-batch, so the joint pass's labeled half is that pass).
    let ad = dev().autodiff();
    let cfg = light().with_dropout(0.0);
    let (x, y) = disc_batch(2, 64, &ad);
    let (xu, _) = disc_batch(2, 64, &ad);
    let m = model(&cfg, &ad);
    let joint = Batch::new(Some((x.clone(), y.clone())), Some(xu.flip([3])));
    let labeled = Batch::new(Some((x.clone(), y.clone())), None);
    let (p, g) = (to_vec(m.coarse(x, 1).prob), to_vec(y));
    let n = (p.len() / 2) as f64;
    let mut bce = 0.0;
    let mut dice = 0.0;
    for (ps, gs) in p.chunks(p.len() / 2).zip(g.chunks(g.len() / 2)) {
        let (mut inter, mut sp, mut sg) = (0.0, 0.0, 0.0);
        for (&pi, &gi) in ps.iter().zip(gs) {
            let (pi, gi) = (pi as f64, gi as f64);
            bce -= gi * pi.ln() + (1.0 - gi) * (1.0 - pi).ln();
            inter += pi * gi;
            sp += pi;
            sg += gi;
        }
        dice += 1.0 - (2.0 * inter + 1.0) / (sp + sg + 1.0);
    }
    let expected = bce / (2.0 * n) + dice / 2.0;
    for (name, batch) in [("joint pass", &joint), ("labeled only", &labeled)] {
        let l = train::losses_with(&m, batch, true);
        let coarse = l.coarse.expect("a stage-1 loss");
        assert_close(scalar(coarse.clone()), expected, 1e-4, name);
        // It trains the shared segmentation decoder and the encoder through the stage-1 pass.
        let grads = coarse.backward();
        for (what, w) in [
            ("decoder head", m.seg.head.hidden.conv.weight.clone()),
            ("encoder conv1", resnet(&m).conv1.weight.clone()),
        ] {
            let gv = to_vec(w.grad(&grads).expect(what));
            assert!(
                gv.iter().any(|v| *v != 0.0),
                "{name}: no gradient at the {what}"
            );
        }
    }
    // SPEC.md's method has no stage-1 loss, and a single-stage network has no stage 1.
    assert!(train::losses_with(&m, &joint, false).coarse.is_none());
    let single = model(&light().with_dropout(0.0).with_two_stage(false), &ad);
    assert!(train::losses_with(&single, &labeled, true).coarse.is_none());
}
