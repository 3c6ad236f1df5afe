//! The shipped weights on the fixed synthetic image: the native result that the browser tests
//! (`tests/web.rs`) must reproduce. `SCL_WRITE_FIXTURE=1 cargo test --test native fixture`
//! rewrites `tests/fixtures/forward_64.f32` after the shipped weights change.

use burn::prelude::*;
use scl::weights;

/// Side of the fixture image.
const SIDE: usize = 64;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/forward_64.f32");

#[test]
fn shipped_weights_reproduce_the_committed_fixture() {
    let bytes = include_bytes!("../../weights/scl.bpk");
    let device = Device::flex();
    let model = weights::from_bytes(bytes, "weights/scl.bpk", &device)
        .expect("shipped weights load")
        .valid();
    let n = SIDE;
    let x = Tensor::<4>::from_data(
        TensorData::new(scl::imageio::synthetic_image(n, n), [1, 3, n, n]),
        &device,
    );
    let out = model.forward(x).unwrap();
    let fine = out.fine();
    let mut got: Vec<f32> = out.coarse.into_data().try_into_vec().unwrap();
    got.extend(fine.into_data().try_into_vec::<f32>().unwrap());
    if std::env::var_os("SCL_WRITE_FIXTURE").is_some() {
        let raw: Vec<u8> = got.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(FIXTURE, raw).unwrap();
    }
    let raw = std::fs::read(FIXTURE).expect("fixture present");
    let want: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got.len(), 2 * n * n);
    assert_eq!(want.len(), got.len());
    // Same backend, same machine code path: the fixture is reproduced to float rounding.
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-5, "native output moved from the fixture by {max}");
}
