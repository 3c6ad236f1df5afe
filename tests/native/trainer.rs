//! `scl train` end to end on a tiny generated dataset: the run folder's files, the partition
//! (labeled / unlabeled / validation disjoint and complete), a bad pair skipped, and resume.

use std::collections::BTreeSet;
use std::path::PathBuf;

use image::{GrayImage, Luma, Rgb, RgbImage};
use scl::ModelConfig;
use scl::trainer::{Method, RunState, TrainOptions, run};

/// A 64x64 image of a red disc at (cx, cy) on blue, and its mask.
fn disc(cx: f32, cy: f32) -> (RgbImage, GrayImage) {
    let inside = |x: u32, y: u32| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < 144.0;
    (
        RgbImage::from_fn(64, 64, |x, y| {
            if inside(x, y) {
                Rgb([220, 40, 30])
            } else {
                Rgb([30, 60, 200])
            }
        }),
        GrayImage::from_fn(64, 64, |x, y| Luma([if inside(x, y) { 255 } else { 0 }])),
    )
}

fn dataset() -> PathBuf {
    let d = std::env::temp_dir().join(format!("scl-trainer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("images")).unwrap();
    std::fs::create_dir_all(d.join("masks")).unwrap();
    for i in 0..11 {
        let (img, mask) = disc(16.0 + 3.0 * i as f32, 20.0 + 2.0 * i as f32);
        img.save(d.join(format!("images/p{i:02}.png"))).unwrap();
        mask.save(d.join(format!("masks/p{i:02}.png"))).unwrap();
    }
    // A twelfth pair whose image cannot be decoded: reported and skipped wherever it lands.
    std::fs::write(d.join("images/p11.png"), b"not an image").unwrap();
    disc(32.0, 32.0).1.save(d.join("masks/p11.png")).unwrap();
    d
}

fn stems(path: PathBuf) -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_writes_the_run_and_resumes() {
    let data = dataset();
    let out = data.join("run");
    let mut options = TrainOptions {
        data: data.clone(),
        train_split: "train".into(),
        val_split: "val".into(),
        val_fraction: 0.3,
        label_ratio: 0.5,
        method: Method::Scl,
        config: ModelConfig::preset("r18-w8").unwrap(),
        seed: 3,
        epochs: 2,
        iters_per_epoch: Some(1),
        batch: 2,
        lr: 0.01,
        size: 64,
        crop: 64,
        val_every: 1,
        ema: 0.99,
        consistency: 0.1,
        rampup: 0.4,
        teacher_noise: 0.1,
    };
    let device = burn::prelude::Device::flex();
    run(&options, &out, &device, false).unwrap();

    for f in [
        "best.bpk",
        "last.bpk",
        "last-optim.bpk",
        "log.csv",
        "options.json",
        "partition.json",
        "state.json",
        "validation.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // 12 stems: round(0.3 * 12) = 4 validation, the other 8 split round(0.5 * 8) = 4 labeled.
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("partition.json")).unwrap())
            .unwrap();
    let list = |k: &str| -> Vec<String> { serde_json::from_value(p[k].clone()).unwrap() };
    let (labeled, unlabeled) = (list("labeled"), list("unlabeled"));
    let val = stems(out.join("validation.json"));
    assert_eq!((labeled.len(), unlabeled.len(), val.len()), (4, 4, 4));
    let all: BTreeSet<&String> = labeled.iter().chain(&unlabeled).chain(&val).collect();
    assert_eq!(all.len(), 12, "the three lists overlap");
    let expected: BTreeSet<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    assert_eq!(all.into_iter().cloned().collect::<BTreeSet<_>>(), expected);

    let state: RunState =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.iteration, 2);
    assert_eq!(state.epochs.len(), 2);
    assert!(state.epochs.iter().all(|e| e.val.is_some()));
    assert!(state.best_epoch >= 1);
    let rows = |o: &PathBuf| {
        std::fs::read_to_string(o.join("log.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(rows(&out), 1 + 2);
    let best = scl::weights::load_file(&out.join("best.bpk"), &device).unwrap();
    assert!(best.config.two_stage);

    // Resume to a third epoch: the same folder continues at iteration 2 and appends to the log.
    options.epochs = 3;
    run(&options, &out, &device, true).unwrap();
    let state: RunState =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.iteration, 3);
    assert_eq!(state.epochs.len(), 3);
    assert_eq!(rows(&out), 1 + 3);
    // The partition of a resumed run is the same one (it is a function of the seed).
    assert_eq!(stems(out.join("validation.json")), val);
    let _ = std::fs::remove_dir_all(&data);
}
