use burn::prelude::*;
use scl::ModelConfig;
use scl::weights::{self, Precision, WeightsError};

use crate::common::*;

fn fine(m: &scl::Scl, x: Tensor<4>) -> Vec<f32> {
    to_vec(m.forward(x).unwrap().fine())
}

/// The residual concatenation's `residual` flag is not in the record: a saved concat-res
/// network (with non-zero fusion convolutions) must load back as one, giving the same output,
/// where building its record into a plain concatenation would not.
#[test]
fn residual_concat_saves_and_loads_as_residual() {
    let device = dev();
    let cfg = light().with_fusion(scl::Fusion::ConcatResidual);
    let m = model(&cfg, &device).valid();
    let x = image(1, 64, 64, 12, &device);
    let bytes = weights::to_bytes(&m, Precision::F32).unwrap();
    let loaded = weights::from_bytes(&bytes, "mem", &device).unwrap().valid();
    assert!(
        loaded
            .fusion
            .iter()
            .all(|f| f.kind() == scl::Fusion::ConcatResidual)
    );
    assert_eq!(fine(&m, x.clone()), fine(&loaded, x.clone()));
    // The same weights as a plain concatenation give another output.
    let mut plain = m.clone();
    for f in &mut plain.fusion {
        f.residual = false;
    }
    assert_ne!(fine(&m, x.clone()), fine(&plain, x));
}

/// Every fusion's CLI name parses back to it; an unknown one names the choices.
#[test]
fn fusion_names_parse_back() {
    for f in scl::Fusion::ALL {
        assert_eq!(scl::Fusion::parse(f.name()).unwrap(), f);
    }
    let err = scl::Fusion::parse("sum").unwrap_err().to_string();
    assert!(
        err.contains("unknown fusion 'sum'") && err.contains("concat-res"),
        "{err}"
    );
}

#[test]
fn save_load_is_bit_identical() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let x = image(1, 64, 64, 11, &device);
    let before = m.forward(x.clone()).unwrap();
    let bytes = weights::to_bytes(&m, Precision::F32).unwrap();
    let loaded = weights::from_bytes(&bytes, "mem", &device).unwrap().valid();
    let after = loaded.forward(x).unwrap();
    assert_eq!(to_vec(before.fine()), to_vec(after.fine()));
    assert_eq!(to_vec(before.inp[0].clone()), to_vec(after.inp[0].clone()));
    assert_eq!(to_vec(before.coarse), to_vec(after.coarse));
}

#[test]
fn f16_round_trip_is_close_and_smaller() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let x = image(1, 64, 64, 12, &device);
    let full = weights::to_bytes(&m, Precision::F32).unwrap();
    let half = weights::to_bytes(&m, Precision::F16).unwrap();
    assert!(
        half.len() < full.len() * 6 / 10,
        "f16 file {} vs f32 {}",
        half.len(),
        full.len()
    );
    let loaded = weights::from_bytes(&half, "half", &device).unwrap().valid();
    let a = fine(&m, x.clone());
    let b = fine(&loaded, x);
    let max = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    // Stated tolerance: f16 keeps 11 significant bits of each convolution weight (relative
    // error <= 2^-11, checked below); through this untrained network the fine probabilities
    // then move by less than 0.01.
    assert!(max < 1e-2, "f16 round trip moved a probability by {max}");
    let (w, w16) = (
        to_vec(resnet(&m).layer2[0].conv1.weight.val()),
        to_vec(resnet(&loaded).layer2[0].conv1.weight.val()),
    );
    for (a, b) in w.iter().zip(&w16) {
        assert!(
            (a - b).abs() <= a.abs() * 2f32.powi(-11) + 1e-7,
            "{a} -> {b}"
        );
    }
    // Batch-norm statistics are kept in f32.
    assert_eq!(
        to_vec(resnet(&m).bn1.running_var.value()),
        to_vec(resnet(&loaded).bn1.running_var.value())
    );
}

#[test]
fn wrong_weights_files_give_their_own_errors() {
    let device = dev();
    let m = model(&light(), &device);
    let good = weights::to_bytes(&m, Precision::F32).unwrap();

    let e = weights::from_bytes(&good[..good.len() / 2], "cut.bpk", &device).unwrap_err();
    assert!(matches!(e, WeightsError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    let e = weights::from_bytes(&good[..10], "tiny.bpk", &device).unwrap_err();
    assert!(
        matches!(
            e,
            WeightsError::NotBurnpack(_) | WeightsError::Truncated { .. }
        ),
        "{e}"
    );

    let png = scl::imageio::encode_png(&image::DynamicImage::new_rgb8(4, 4)).unwrap();
    let e = weights::from_bytes(&png, "picture.png", &device).unwrap_err();
    assert!(matches!(e, WeightsError::IsImage { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "picture.png: this is a Png image, not a weights file (.bpk)"
    );

    let e = weights::from_bytes(b"", "empty.bpk", &device).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");

    let other = model(&ModelConfig::preset("r18-w16").unwrap(), &device);
    let other_bytes = weights::to_bytes(&other, Precision::F32).unwrap();
    let e = weights::load_into(m.clone(), &other_bytes, "other.bpk").unwrap_err();
    assert!(matches!(e, WeightsError::ConfigMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("resnet18 w16 gff") && e.to_string().contains("resnet18 w8 gff"),
        "{e}"
    );

    // A Burnpack file made by something else (a bare convolution).
    use burn::store::{BurnpackStore, ModuleSnapshot};
    let conv = burn::nn::conv::Conv2dConfig::new([1, 1], [1, 1]).init(&device);
    let mut store = BurnpackStore::from_bytes(None);
    conv.save_into(&mut store).unwrap();
    let foreign = store.get_bytes().unwrap().to_vec();
    let e = weights::from_bytes(&foreign, "foreign.bpk", &device).unwrap_err();
    assert!(matches!(e, WeightsError::NotScl(_)), "{e}");
}

#[test]
fn weights_file_round_trip_on_disk() {
    let device = dev();
    let m = model(&light(), &device).valid();
    let dir = std::env::temp_dir().join(format!("scl-weights-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.bpk");
    weights::save_file(&m, &path, Precision::F32).unwrap();
    let loaded = weights::load_file(&path, &device).unwrap().valid();
    let x = image(1, 32, 32, 13, &device);
    assert_eq!(fine(&m, x.clone()), fine(&loaded, x));
    let e = weights::load_file(&dir.join("missing.bpk"), &device).unwrap_err();
    assert!(matches!(e, WeightsError::Io { .. }), "{e}");
    std::fs::remove_dir_all(dir).ok();
}
