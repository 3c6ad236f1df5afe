//! Browser tests (wasm32, headless Chromium): `wasm-pack test --headless --chrome` or
//! `cargo test --target wasm32-unknown-unknown` with wasm-bindgen-test-runner. `scripts/test.sh`
//! runs them three times: with WebGPU (SwiftShader, `--enable-unsafe-webgpu`), without (the Flex
//! CPU fallback), and on the multi-threaded build (wasm atomics: Flex on two Web Workers). Each
//! test logs the backend it ran on, and `scripts/test.sh` checks from the logs that each run used
//! only the backend it must (a build-time variable would make the first two runs two builds).
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
/// included: these tests exercise the WebGPU code path), else Flex. Logged for
/// `scripts/test.sh`, which checks it against the backend the run must use.
async fn backend() -> &'static str {
    let chosen = if webgpu_adapter().await.is_some() {
        "webgpu"
    } else {
        "flex"
    };
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

/// The multi-threaded build (wasm atomics, scripts/web-threads.sh): Flex's rayon pool
/// of two Web Workers, started once, before the first engine; the tests then run every pass
/// on it. The test runner serves the page cross-origin isolated, as shared memory needs.
#[cfg(target_feature = "atomics")]
async fn thread_pool() {
    thread_local!(static POOL: js_sys::Promise = scl::web::init_thread_pool(2));
    wasm_bindgen_futures::JsFuture::from(POOL.with(Clone::clone))
        .await
        .expect("the thread pool starts");
    assert_eq!(scl::web::cpu_threads(), 2);
    web_sys_log("threads under test: 2");
}

async fn engine(weights: &[u8]) -> Engine {
    #[cfg(target_feature = "atomics")]
    thread_pool().await;
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

fn field(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

/// One adaptation step on `bytes` (as `n` copies), returning its loss.
async fn adapt_step(e: &mut Engine, bytes: &[u8], n: usize) -> f64 {
    let files = Array::new();
    let names = Array::new();
    for i in 0..n {
        files.push(&Uint8Array::from(bytes));
        names.push(&format!("img{i}.png").into());
    }
    let r = e
        .adapt_step(files, names)
        .await
        .map_err(|e| message(e.into()))
        .unwrap();
    assert!(field(&r, "stopped").is_undefined(), "collapse guard fired");
    field(&r, "loss").as_f64().unwrap()
}

#[wasm_bindgen_test]
async fn adaptation_lowers_the_inpainting_loss() {
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    let bytes = png(&scl::imageio::synthetic_image(n, n), n, n);
    let s = n as u32;
    e.adapt_begin("inpainting".into(), 8, 0.01, 2, s, s, "all".into(), 7)
        .map_err(|e| message(e.into()))
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let l = adapt_step(&mut e, &bytes, 2).await;
        assert!(l.is_finite());
        losses.push(l);
    }
    web_sys_log(&format!("inpainting losses: {losses:?}"));
    let first = (losses[0] + losses[1]) / 2.0;
    let last = (losses[6] + losses[7]) / 2.0;
    assert!(last < first, "loss did not fall: {losses:?}");
    assert_eq!(e.adapt_steps(), 8);
}

#[wasm_bindgen_test]
async fn adabn_changes_the_outputs_without_a_gradient_step() {
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    // A darker, bluer image than the training data: new batch-norm statistics.
    let x: Vec<f32> = scl::imageio::synthetic_image(n, n)
        .iter()
        .enumerate()
        .map(|(i, &v)| if i < n * n * 2 { v * 0.4 } else { v })
        .collect();
    let bytes = png(&x, n, n);
    let s = n as u32;
    e.adapt_begin("adabn".into(), 0, 1e-3, 2, s, s, "".into(), 1)
        .map_err(|e| message(e.into()))
        .unwrap();
    let files = Array::of2(&Uint8Array::from(&bytes[..]), &Uint8Array::from(&bytes[..]));
    let names = Array::of2(&"a.png".into(), &"b.png".into());
    e.adapt_adabn(files, names)
        .map_err(|e| message(e.into()))
        .unwrap();
    assert_eq!(e.adapt_steps(), 0);
    // The objective has no gradient steps.
    let err = e
        .adapt_step(
            Array::of1(&Uint8Array::from(&bytes[..])),
            Array::of1(&"a.png".into()),
        )
        .await
        .err()
        .map(|e| message(e.into()))
        .expect("an error");
    assert!(err.contains("no gradient steps"), "{err}");
    let got = e
        .forward_raw(scl::imageio::synthetic_image(n, n), n, n)
        .await
        .unwrap();
    assert!(got.iter().all(|v| v.is_finite()));
    let shipped = fixture();
    let moved = got
        .iter()
        .zip(&shipped)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    web_sys_log(&format!("AdaBN moved the outputs by up to {moved}"));
    assert!(moved > 1e-3, "AdaBN left the outputs unchanged");
}

#[wasm_bindgen_test]
async fn prior_matching_brings_the_lesion_fraction_to_the_prior() {
    // Rounds of `adapt_prior` over two images until the engine is done; then the fine mask of
    // the same image, from the page's own forward, covers the training set's mean lesion
    // fraction (0.16; the rounds stop within 0.005 of it, plus a bin's worth here).
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    let bytes = png(&scl::imageio::synthetic_image(n, n), n, n);
    let s = n as u32;
    e.adapt_begin("prior".into(), 0, 1e-3, 2, s, s, "".into(), 1)
        .map_err(|e| message(e.into()))
        .unwrap();
    let mut rounds = 0;
    loop {
        let files = Array::of2(&Uint8Array::from(&bytes[..]), &Uint8Array::from(&bytes[..]));
        let names = Array::of2(&"a.png".into(), &"b.png".into());
        e.adapt_prior(files, names)
            .await
            .map_err(|e| message(e.into()))
            .unwrap();
        let r = e.adapt_prior_end().map_err(|e| message(e.into())).unwrap();
        rounds += 1;
        if !field(&r, "again").as_bool().unwrap() {
            break;
        }
    }
    let got = e
        .forward_raw(scl::imageio::synthetic_image(n, n), n, n)
        .await
        .unwrap();
    let fine = &got[n * n..];
    let area = fine.iter().filter(|&&p| p >= 0.5).count() as f32 / (n * n) as f32;
    web_sys_log(&format!(
        "prior matching: {rounds} rounds, fine-mask area {area}"
    ));
    assert!(
        (area - 0.16).abs() < 0.01,
        "fine-mask area {area} after {rounds} rounds"
    );
}

#[wasm_bindgen_test]
async fn adaptation_objectives_and_defaults_are_offered() {
    let list = Engine::adapt_objectives();
    let names: Vec<String> = list
        .iter()
        .map(|o| field(&o, "name").as_string().unwrap())
        .collect();
    for want in [
        "adabn",
        "inpainting",
        "tent",
        "adabn+tent",
        "adabn+inpainting",
        "adabn+prior",
        "adabn+inpainting+prior",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    let d = Engine::adapt_defaults("tent".into(), 160)
        .map_err(|e| message(e.into()))
        .unwrap();
    assert_eq!(field(&d, "scope").as_string().unwrap(), "bn");
    let err = Engine::adapt_defaults("nonsense".into(), 160)
        .err()
        .map(|e| message(e.into()))
        .expect("an error");
    assert!(err.contains("unknown adaptation objective"), "{err}");
}

#[wasm_bindgen_test]
async fn export_then_import_gives_identical_outputs() {
    let mut e = engine(WEIGHTS).await;
    let n = SIDE;
    // Change the weights first, so the export is not just the file we loaded.
    let bytes = png(&scl::imageio::synthetic_image(n, n), n, n);
    let s = n as u32;
    e.adapt_begin(
        "inpainting".into(),
        1,
        0.01,
        1,
        s,
        s,
        "no-encoder".into(),
        3,
    )
    .unwrap();
    adapt_step(&mut e, &bytes, 1).await;
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
    // The adapted network differs from the shipped one.
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
