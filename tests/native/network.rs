use burn::module::Param;
use burn::prelude::*;
use scl::flops::Macs;
use scl::model::{FineParts, Scl, trainable_params};
use scl::{Error, ModelConfig};

use crate::common::*;

fn dims(v: &[Tensor<4>]) -> Vec<[usize; 4]> {
    v.iter().map(|t| t.dims()).collect()
}

#[test]
fn paper_preset_parameter_count() {
    let m = model(&ModelConfig::preset("paper").unwrap(), &dev());
    let total = trainable_params(&m) as f64;
    // 49.04 M: an independent count of SPEC.md's layer table.
    assert!(
        (total - 49.04e6).abs() <= 0.005 * 49.04e6,
        "paper preset has {total} trainable parameters, expected 49.04 M +- 0.5%"
    );
    // torchvision's resnet34 has 21,797,672 parameters, of which fc has 512 * 1000 + 1000.
    assert_eq!(trainable_params(&m.encoder), 21_797_672 - 513_000);
    // GFF5: three 3x3 convolutions 1024 -> 512 with bias.
    assert_eq!(trainable_params(&m.fusion[4]), 3 * (1024 * 512 * 9 + 512));
}

#[test]
fn resnet18_encoder_matches_torchvision() {
    let cfg = ModelConfig::preset("r18-w16").unwrap().with_width(64);
    let m = model(&cfg, &dev());
    // torchvision's resnet18: 11,689,512 parameters, fc 513,000.
    assert_eq!(trainable_params(&m.encoder), 11_689_512 - 513_000);
}

#[test]
fn paper_preset_macs() {
    let m = Macs::of(&ModelConfig::preset("paper").unwrap(), 256, 256);
    let g = |v: u64| v as f64 / 1e9;
    // SPEC.md: encoder 4.8 G per pass, GFF 7.2 G, each decoder about 4.2 G, two-stage 28.7 G.
    assert_close(g(m.encoder), 4.8, 0.1, "encoder GMACs");
    assert_close(g(m.fusion), 7.2, 0.1, "fusion GMACs");
    assert_close(g(m.decoder + m.sides), 4.2, 0.15, "decoder GMACs");
    assert_close(g(m.two_stage()), 28.7, 0.4, "two-stage GMACs");
    // SPEC.md's "about 0.7 T" per 4 + 4 iteration counts 8 full two-stage passes and their
    // backward (3 x 8 x 28.7 G). This implementation runs no inpainting decoder for labeled
    // images and no backward through the gradient-free coarse decoder. From SPEC.md's part
    // figures (encoder E 4.8, fusion F 7.2, decoder D 3.6 + sides S 0.6):
    // labeled 3 (2E + F + D + S) + D = 66.6 G, unlabeled 3 (2E + F + 2(D + S)) + D = 79.2 G,
    // so 4 (66.6 + 79.2) = 583 G.
    assert_close(g(m.train_iteration(4, 4)), 583.0, 15.0, "training GMACs");
}

fn check_shapes(cfg: &ModelConfig, b: usize, h: usize, w: usize) {
    let device = dev();
    let m = model(cfg, &device).valid();
    let out = m.forward(image(b, h, w, 1, &device)).unwrap();
    assert_eq!(out.coarse.dims(), [b, 1, h, w]);
    assert_eq!(out.mask.dims(), [b, 1, h, w]);
    assert_eq!(out.masked.dims(), [b, 3, h, w]);
    assert_eq!(out.composite.dims(), [b, 3, h, w]);
    let levels = |c: usize, from: u32| -> Vec<[usize; 4]> {
        (from..from + 5).map(|k| [b, c, h >> k, w >> k]).collect()
    };
    assert_eq!(dims(&out.seg), levels(1, 0));
    assert_eq!(dims(&out.inp), levels(3, 0));
    assert_eq!(dims(&out.gates), levels(1, 1));
    let fine = to_vec(out.fine());
    assert!(fine.iter().all(|p| (0.0..=1.0).contains(p)));
    let mask = to_vec(out.mask);
    assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn shapes_paper_256() {
    check_shapes(&ModelConfig::preset("paper").unwrap(), 1, 256, 256);
}

#[test]
fn shapes_light_320x256() {
    check_shapes(&ModelConfig::preset("r18-w16").unwrap(), 2, 320, 256);
}

#[test]
fn add_and_concat_fusions_run_without_gates() {
    for fusion in [
        scl::Fusion::Add,
        scl::Fusion::Concat,
        scl::Fusion::ConcatResidual,
    ] {
        let cfg = light().with_fusion(fusion);
        let device = dev();
        let m = model(&cfg, &device).valid();
        let out = m.forward(image(1, 64, 64, 2, &device)).unwrap();
        assert!(out.gates.is_empty());
        assert_eq!(out.seg[0].dims(), [1, 1, 64, 64]);
    }
    // Fusion modules' parameters: add has none, concat one 1x1 conv per level.
    let device = dev();
    let add = model(&light().with_fusion(scl::Fusion::Add), &device);
    assert_eq!(add.fusion.iter().map(trainable_params).sum::<usize>(), 0);
    let expected: usize = [8, 8, 16, 32, 64].iter().map(|&c| 2 * c * c + c).sum();
    for fusion in [scl::Fusion::Concat, scl::Fusion::ConcatResidual] {
        let cat = model(&light().with_fusion(fusion), &device);
        assert_eq!(
            cat.fusion.iter().map(trainable_params).sum::<usize>(),
            expected
        );
    }
}

/// The residual concatenation starts as the identity on the image's features (its convolution
/// is zero), so that at initialisation both stages feed the shared segmentation decoder the
/// same features and the fine prediction equals the coarse one exactly. (`Scl::new`'s own
/// initialisation: the tests' deterministic weights would overwrite the zero convolution.)
#[test]
fn residual_concat_starts_with_fine_equal_to_coarse() {
    let device = dev();
    let x = image(1, 64, 64, 5, &device);
    let run = |fusion| {
        let m = Scl::new(&light().with_fusion(fusion), &device)
            .unwrap()
            .valid();
        let out = m.forward(x.clone()).unwrap();
        (to_vec(out.coarse.clone()), to_vec(out.fine()))
    };
    let (coarse, fine) = run(scl::Fusion::ConcatResidual);
    assert!(
        coarse.iter().any(|&v| (v - 0.5).abs() > 1e-3),
        "a trivial output"
    );
    assert_eq!(coarse, fine);
    // Plain concatenation does not (its 1x1 convolution is random).
    let (coarse, fine) = run(scl::Fusion::Concat);
    assert_ne!(coarse, fine);
}

#[test]
fn sizes_not_multiple_of_32_are_padded_and_cropped() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let (h, w) = (100, 70);
    let out = m.forward(image(1, h, w, 3, &device)).unwrap();
    assert_eq!(out.coarse.dims(), [1, 1, h, w]);
    assert_eq!(out.composite.dims(), [1, 3, h, w]);
    let c = |n: usize, k: u32| n.div_ceil(1 << k);
    for (k, t) in out.seg.iter().enumerate() {
        assert_eq!(t.dims(), [1, 1, c(h, k as u32), c(w, k as u32)]);
    }
    for (k, t) in out.gates.iter().enumerate() {
        assert_eq!(t.dims(), [1, 1, c(h, k as u32 + 1), c(w, k as u32 + 1)]);
    }
    // A 1x1 image works too.
    let tiny = m.forward(image(1, 1, 1, 4, &device)).unwrap();
    assert_eq!(tiny.seg[0].dims(), [1, 1, 1, 1]);
    // The valid region of an aligned input is unaffected by the padding path: a 64x64 image
    // gives the same fine mask through forward (no padding) and forward_aligned.
    let x = image(1, 64, 64, 5, &device);
    let a = to_vec(m.forward(x.clone()).unwrap().fine());
    let b = to_vec(m.forward_aligned(x, FineParts::ALL).fine());
    assert_eq!(a, b);
}

#[test]
fn bad_inputs_give_errors() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let grey = Tensor::<4>::zeros([1, 1, 64, 64], &device);
    assert!(matches!(m.forward(grey), Err(Error::Input(msg)) if msg.contains("3 (RGB) channels")));
    let empty = Tensor::<4>::zeros([1, 3, 0, 64], &device);
    assert!(matches!(m.forward(empty), Err(Error::Input(msg)) if msg.contains("empty")));
    let huge = Tensor::<4>::zeros([1, 3, 5000, 1], &device);
    assert!(matches!(m.forward(huge), Err(Error::Input(msg)) if msg.contains("larger")));
    assert!(matches!(
        Scl::new(&light().with_width(12), &device),
        Err(Error::Config(_))
    ));
    assert!(ModelConfig::preset("nope").is_err());
}

#[test]
fn mask_only_path_matches_full_pass() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let x = image(1, 64, 96, 6, &device);
    let full = m.forward(x.clone()).unwrap();
    let (coarse, fine) = m.predict_mask(x).unwrap();
    assert_eq!(to_vec(coarse), to_vec(full.coarse.clone()));
    assert_eq!(to_vec(fine), to_vec(full.fine()));
}

#[test]
fn masking_and_composite_follow_their_definitions() {
    let device = dev();
    let mut m = model(&light(), &device);
    // Force the coarse mask to cover everything: a large bias on the segmentation head.
    let bias = m.seg.head.out.bias.take().unwrap();
    m.seg.head.out.bias = Some(Param::initialized(
        bias.id,
        Tensor::<1>::full([1], 1e4, &device),
    ));
    let m = m.valid();
    let x = image(1, 64, 64, 7, &device);
    let out = m.forward(x.clone()).unwrap();
    assert!(to_vec(out.mask.clone()).iter().all(|&v| v == 1.0));
    assert!(to_vec(out.masked.clone()).iter().all(|&v| v == 0.0));
    // Fine mask everywhere too (same head): the composite is the inpainted image.
    assert_eq!(to_vec(out.composite), to_vec(out.inp[0].clone()));

    // And with a large negative bias nothing is erased and the composite is the input.
    let mut m2 = model(&light(), &device);
    let bias = m2.seg.head.out.bias.take().unwrap();
    m2.seg.head.out.bias = Some(Param::initialized(
        bias.id,
        Tensor::<1>::full([1], -1e4, &device),
    ));
    let m2 = m2.valid();
    let out = m2.forward(x.clone()).unwrap();
    assert!(to_vec(out.mask).iter().all(|&v| v == 0.0));
    assert_eq!(to_vec(out.masked), to_vec(x.clone()));
    assert_eq!(to_vec(out.composite), to_vec(x));
}

#[test]
fn no_gradient_flows_through_the_stage1_mask() {
    let ad = dev().autodiff();
    let m = model(&light(), &ad);
    let x = image(2, 64, 64, 8, &ad).require_grad();
    let coarse = m.coarse(x.clone(), 1);
    // A loss that depends on the parameters only through the thresholded mask.
    let loss = coarse.masked.clone().sum() + coarse.mask.clone().sum() + coarse.prob.clone().sum();
    let grads = loss.backward();
    let mut checked = 0;
    let mut with_grad = 0;
    struct V<'a> {
        grads: &'a burn::tensor::Gradients,
        checked: &'a mut usize,
        with_grad: &'a mut usize,
    }
    impl burn::module::ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            *self.checked += 1;
            if let Some(g) = p.grad(self.grads) {
                *self.with_grad += 1;
                let g = to_vec(g);
                assert!(
                    g.iter().all(|&v| v == 0.0),
                    "a parameter received gradient through the mask"
                );
            }
        }
    }
    m.visit(&mut V {
        grads: &grads,
        checked: &mut checked,
        with_grad: &mut with_grad,
    });
    assert!(checked > 50);
    assert_eq!(
        with_grad, 0,
        "parameters reached by a gradient through the threshold"
    );
    // d/dx sum(x * (1 - m)) = 1 - m, computed independently of the autodiff graph.
    let gx = to_vec(x.grad(&grads).unwrap());
    let m_host = to_vec(coarse.mask.clone());
    for (c, v) in gx.chunks(64 * 64).enumerate() {
        let b = c / 3;
        for (i, g) in v.iter().enumerate() {
            assert_eq!(*g, 1.0 - m_host[b * 64 * 64 + i]);
        }
    }

    // Sanity: the fine stage does send gradients to the segmentation decoder.
    let m = model(&light(), &ad);
    let out = m.forward_aligned(image(2, 64, 64, 9, &ad), FineParts::SEGMENT_DEEP);
    let grads = out.seg[0].clone().sum().backward();
    let g = m
        .seg
        .head
        .out
        .weight
        .grad(&grads)
        .expect("fine-stage gradient");
    assert!(to_vec(g).iter().any(|&v| v != 0.0));
}

#[test]
fn relu6_is_the_clamp_with_its_gradient() {
    use scl::model::mobilenet::relu6;
    let d = dev().autodiff();
    let x = tensor4(vec![-2.0, 0.5, 3.0, 5.9, 6.5, 100.0], [1, 1, 2, 3], &d).require_grad();
    let y = relu6(x.clone());
    assert_eq!(to_vec(y.clone()), vec![0.0, 0.5, 3.0, 5.9, 6.0, 6.0]);
    let g = y.sum().backward();
    assert_eq!(
        to_vec(x.grad(&g).unwrap()),
        vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
}

#[test]
fn dropout_keeps_nine_tenths_scaled() {
    // p = 0.1 on the CPU path: about 90% of a large tensor survives, each kept value scaled by
    // 1 / 0.9, the expectation preserved; identity outside autodiff.
    use scl::model::dropout::{Dropout, seed};
    seed(5);
    let d = dev().autodiff();
    let x = Tensor::<4>::ones([2, 4, 64, 64], &d);
    let v = to_vec(Dropout::new(0.1).forward(x));
    let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / v.len() as f64;
    assert!((kept - 0.9).abs() < 0.01, "kept {kept}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.9).abs() < 1e-6));
    let mean = v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
    assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    let y = to_vec(Dropout::new(0.1).forward(Tensor::<4>::ones([1, 1, 4, 4], &dev())));
    assert!(y.iter().all(|&a| a == 1.0));
}
