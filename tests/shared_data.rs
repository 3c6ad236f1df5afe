//! Checks that need the shared real data and weights (`../shared/`), which a user's clone does
//! not have: ignored by the default `cargo test`, run by `scripts/test-shared.sh`
//! (`cargo test --release --test shared_data -- --ignored`).
#![cfg(not(target_family = "wasm"))]

use std::path::Path;

use burn::prelude::*;
use scl::model::Scl;
use scl::{EncoderKind, ModelConfig};

const MOBILENET: &str = "../shared/weights/mobilenetv2-imagenet-features.safetensors";

fn read_f32(path: &str) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The imported MobileNetV2 encoder against torchvision's MobileNetV2 with the same file loaded
/// (`scripts/mobilenet_fixture.py` wrote its five taps on a fixed input, eval mode).
#[test]
#[ignore = "needs ../shared/weights (scripts/test-shared.sh)"]
fn mobilenet_v2_import_matches_torchvision() {
    assert!(Path::new(MOBILENET).is_file(), "{MOBILENET} not found");
    let device = Device::flex();
    let cfg = ModelConfig::preset("mnv2").unwrap().with_e5_channels(None);
    assert_eq!(cfg.encoder, EncoderKind::MobileNetV2);
    let model = Scl::new(&cfg, &device).unwrap();
    let (model, report) = scl::pretrained::import_file(model, Path::new(MOBILENET)).unwrap();
    // 260 tensors in the file; features.18 (conv + 4 BN tensors) is not used.
    assert_eq!(report.loaded, 255);
    assert_eq!(report.ignored.len(), 5);
    let fixture = read_f32("tests/fixtures/mobilenetv2_taps.f32");
    let (input, mut rest) = fixture.split_at(3 * 32 * 32);
    let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), [1, 3, 32, 32]), &device);
    let taps = model.valid().encoder.forward(x, 1);
    for (i, t) in taps.into_iter().enumerate() {
        let got: Vec<f32> = t.into_data().try_into_vec_as().unwrap();
        let (want, r) = rest.split_at(got.len());
        rest = r;
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "e{}: {} values, max |burn - torchvision| {err:.2e} (values up to {scale:.3})",
            i + 1,
            got.len()
        );
        assert!(err <= 1e-4 * scale.max(1.0), "e{}: error {err}", i + 1);
    }
    assert!(rest.is_empty());
}
