//! Browser tests (wasm32, headless Chromium): `wasm-pack test --headless --chrome` or
//! `cargo test --target wasm32-unknown-unknown` with wasm-bindgen-test-runner. `scripts/test.sh`
//! runs them twice: with WebGPU (SwiftShader, `--enable-unsafe-webgpu`) and without (the Flex
//! CPU fallback); `SCL_TEST_BACKEND` (read at build time) names the backend each run must use.
#![cfg(target_family = "wasm")]

use js_sys::{Array, Reflect, Uint8Array};
use scl::web::{Engine, webgpu_adapter};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

// In a dedicated worker, as the page runs the model: long GPU work there never blocks the page
// (or the WebDriver that drives the test).
wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// Side of the fixture image.
const SIDE: usize = 64;

/// The page's default weights (the shipped SCL model).
const WEIGHTS: &[u8] = include_bytes!("../weights/scl.bpk");
/// `[coarse, fine]` probabilities of the shipped weights on `scl::imageio::synthetic_image(64, 64)`, computed
/// natively on the Flex backend (`tests/native/fixture.rs` writes and checks it); little-endian
/// f32.
const FIXTURE: &[u8] = include_bytes!("fixtures/forward_64.f32");
/// Largest allowed difference between browser and native probabilities. WebGPU (SwiftShader)
/// sums in another order and uses its own exp; a sigmoid output differs by ~1e-5 typically,
/// so 2e-3 leaves room without hiding a real error (a wrong layer moves outputs by >0.05).
const TOLERANCE: f32 = 2e-3;

/// The backend this run uses: WebGPU when the browser offers an adapter (a software one
/// included: these tests exercise the WebGPU code path), else Flex. Checked against
/// `SCL_TEST_BACKEND` when set.
async fn backend() -> &'static str {
    let chosen = if webgpu_adapter().await.is_some() {
        "webgpu"
    } else {
        "flex"
    };
    if let Some(want) = option_env!("SCL_TEST_BACKEND") {
        assert_eq!(chosen, want, "this run must use {want}");
    }
    web_sys_log(&format!("backend under test: {chosen}"));
    chosen
}

fn web_sys_log(s: &str) {
    let console = Reflect::get(&js_sys::global(), &"console".into()).unwrap();
    let log: js_sys::Function = Reflect::get(&console, &"log".into()).unwrap().into();
    log.call1(&console, &s.into()).unwrap();
}

fn message(e: JsValue) -> String {
    Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn engine(weights: &[u8]) -> Engine {
    let b = backend().await;
    let e = Engine::create(b.into(), weights.to_vec(), "scl.bpk".into())
        .await
        .map_err(|e| message(e.into()))
        .expect("engine");
    assert_eq!(e.backend(), b);
    e
}

fn fixture() -> Vec<f32> {
    FIXTURE
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[wasm_bindgen_test]
async fn two_stage_forward_matches_native() {
    let e = engine(WEIGHTS).await;
    let n = SIDE;
    let got = e
        .forward_raw(scl::imageio::synthetic_image(n, n), n, n)
        .await
        .map_err(|e| message(e.into()))
        .unwrap();
    let want = fixture();
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    web_sys_log(&format!(
        "max |browser - native| = {max:e} over {} values",
        got.len()
    ));
    assert!(max <= TOLERANCE, "max difference {max} > {TOLERANCE}");
    // The fixture is not trivial: the fine mask covers part of the image, not none or all,
    // and the refinement changed the coarse mask.
    let fine = &want[n * n..];
    let area = fine.iter().filter(|&&p| p >= 0.5).count() as f32 / (n * n) as f32;
    assert!(area > 0.02 && area < 0.99, "fixture fine-mask area {area}");
    let changed = want[..n * n]
        .iter()
        .zip(fine)
        .filter(|(c, f)| (**c >= 0.5) != (**f >= 0.5))
        .count();
    assert!(changed > 0, "coarse and fine masks are identical");
}

fn png(chw: &[f32], w: usize, h: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = |c: usize| (chw[c * w * h + y as usize * w + x as usize] * 255.0).round() as u8;
        image::Rgb([at(0), at(1), at(2)])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[wasm_bindgen_test]
async fn fine_tuning_lowers_the_inpainting_loss() {
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    let bytes = png(&scl::imageio::synthetic_image(n, n), n, n);
    e.finetune_begin(true, 7)
        .map_err(|e| message(e.into()))
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let files = Array::of2(&Uint8Array::from(&bytes[..]), &Uint8Array::from(&bytes[..]));
        let names = Array::of2(&"a.png".into(), &"b.png".into());
        let l = e
            .finetune_step(files, names, n as u32, n as u32, 0.01)
            .await
            .map_err(|e| message(e.into()))
            .unwrap();
        assert!(l.is_finite());
        losses.push(l);
    }
    web_sys_log(&format!("inpainting losses: {losses:?}"));
    let first = (losses[0] + losses[1]) / 2.0;
    let last = (losses[6] + losses[7]) / 2.0;
    assert!(last < first, "loss did not fall: {losses:?}");
    assert_eq!(e.finetune_steps(), 8);
}

#[wasm_bindgen_test]
async fn export_then_import_gives_identical_outputs() {
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    // Change the weights first, so the export is not just the file we loaded.
    let bytes = png(&scl::imageio::synthetic_image(n, n), n, n);
    e.finetune_begin(false, 3).unwrap();
    e.finetune_step(
        Array::of1(&Uint8Array::from(&bytes[..])),
        Array::of1(&"a.png".into()),
        n as u32,
        n as u32,
        0.01,
    )
    .await
    .map_err(|e| message(e.into()))
    .unwrap();
    let exported = e
        .export_weights(false)
        .await
        .map_err(|e| message(e.into()))
        .unwrap();
    let imported = engine(&exported).await;
    let x = scl::imageio::synthetic_image(n, n);
    let a = e.forward_raw(x.clone(), n, n).await.unwrap();
    let b = imported.forward_raw(x, n, n).await.unwrap();
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    // The fine-tuned network differs from the shipped one.
    let shipped = fixture();
    assert!(a.iter().zip(&shipped).any(|(p, q)| (p - q).abs() > 1e-6));
}

#[wasm_bindgen_test]
async fn bad_weights_and_images_give_clear_errors() {
    let b = backend().await;
    let err = Engine::create(b.into(), b"not weights at all".to_vec(), "x.bpk".into())
        .await
        .err()
        .map(|e| message(e.into()))
        .expect("an error");
    assert!(err.contains("x.bpk"), "{err}");
    let truncated = WEIGHTS[..WEIGHTS.len() / 2].to_vec();
    let err = Engine::create(b.into(), truncated, "half.bpk".into())
        .await
        .err()
        .map(|e| message(e.into()))
        .expect("an error");
    assert!(err.contains("half.bpk"), "{err}");
    let e = engine(WEIGHTS).await;
    for (bytes, name, want) in [
        (Vec::new(), "empty.png", "empty"),
        (b"hello".to_vec(), "notes.txt", "not an image"),
        (
            vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0],
            "cut.png",
            "cut.png",
        ),
    ] {
        let err = e
            .segment(bytes, name.into(), 64)
            .await
            .err()
            .map(|e| message(e.into()))
            .expect("an error");
        assert!(err.contains(want), "{name}: {err}");
    }
}
