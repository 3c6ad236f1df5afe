//! Initialisation against PyTorch's rules (the reference the project ports from): torchvision's
//! He-normal fan-out for the ResNet encoder's convolutions, `nn.Conv2d`'s default
//! `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for every other convolution's weight and bias, and
//! small starting logits.

use scl::ModelConfig;
use scl::model::Scl;

use crate::common::*;

fn stats(v: &[f32]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().map(|&x| (x as f64).abs()).fold(0.0, f64::max);
    (mean, var.sqrt(), max)
}

#[test]
fn decoder_and_fusion_convs_use_pytorch_defaults() {
    let device = dev();
    device.seed(11);
    let m = Scl::new(&ModelConfig::preset("r18-w16").unwrap(), &device).unwrap();
    // (weight, bias, fan_in) of convolutions outside the encoder.
    let head = &m.seg.head.out; // 1x1, 8 -> 1
    let fuse = &m.fusion[3].gff.as_ref().unwrap().fuse; // 3x3, 128 -> 64
    let reduce = &m.seg.blocks[1].reduce.conv; // 3x3, 192 -> 48, no bias
    for (name, conv, fan_in) in [
        ("seg head out", head, 8usize),
        ("GFF4 fuse", fuse, 128 * 9),
        ("D4 reduce", reduce, 192 * 9),
    ] {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w = to_vec(conv.weight.val());
        let (mean, std, max) = stats(&w);
        assert!(
            max <= bound * (1.0 + 1e-6),
            "{name}: |w| up to {max}, bound {bound}"
        );
        if w.len() >= 1000 {
            // A uniform on [-b, b] has std b / sqrt(3).
            let expect = bound / 3f64.sqrt();
            assert!(
                (std / expect - 1.0).abs() < 0.1,
                "{name}: std {std}, expected {expect}"
            );
            assert!(mean.abs() < 0.1 * expect, "{name}: mean {mean}");
        }
        if let Some(b) = &conv.bias {
            let (_, _, max) = stats(&to_vec(b.val()));
            assert!(
                max <= bound * (1.0 + 1e-6),
                "{name}: |bias| up to {max}, bound {bound}"
            );
        }
    }
}

#[test]
fn encoder_convs_use_torchvision_he_fan_out() {
    let device = dev();
    device.seed(12);
    let m = Scl::new(&ModelConfig::preset("r18-w16").unwrap(), &device).unwrap();
    // layer3.0.conv2: 3x3, 64 -> 64: std sqrt(2 / (64 * 9)).
    let w = to_vec(resnet(&m).layer3[0].conv2.weight.val());
    let (_, std, _) = stats(&w);
    let expect = (2.0 / (64.0 * 9.0f64)).sqrt();
    assert!(
        (std / expect - 1.0).abs() < 0.05,
        "std {std}, expected {expect}"
    );
}

#[test]
fn fresh_network_starts_with_small_logits() {
    // With PyTorch's defaults the fine logits of a fresh network are O(0.5): a sum of 8
    // BN-ReLU features (E[h^2] = 1/2) times U(+-1/sqrt(8)) weights, var 8 * 1/24 * 1/2, plus a
    // U(+-1/sqrt(8)) bias: RMS about 0.46 (below 1.0 for all but rare draws). Kaiming fan-out
    // on the 1x1 head (weight and bias std sqrt(2)) gave an RMS about 3.
    let device = dev();
    device.seed(13);
    let ad = device.clone().autodiff();
    let m = Scl::new(&ModelConfig::preset("r18-w16").unwrap(), &ad).unwrap();
    let x = image(4, 64, 64, 5, &ad);
    let out = m.forward(x).unwrap();
    let v = to_vec(out.seg[0].clone());
    let rms = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    assert!(rms < 1.2, "fine logits RMS {rms}");
}
