//! `scl train` end to end on a tiny generated dataset: the run folder's files, the partition
//! (labeled / unlabeled / validation disjoint and complete), a bad pair skipped, and resume.

use std::collections::BTreeSet;

use scl::ModelConfig;
use scl::data::Partition;
use scl::train::{MeanTeacherOptions, Method, RunState, TrainOptions, run};

use crate::common::{dataset_dir, disc_at, read_json};

/// The tiny dataset in its own folder `name` (tests run in parallel).
fn dataset(name: &str) -> std::path::PathBuf {
    let d = dataset_dir(name);
    for i in 0..11 {
        let (img, mask) = disc_at(64, 64, 16.0 + 3.0 * i as f32, 20.0 + 2.0 * i as f32, 12.0);
        img.save(d.join(format!("images/p{i:02}.png"))).unwrap();
        mask.save(d.join(format!("masks/p{i:02}.png"))).unwrap();
    }
    // A twelfth pair whose image cannot be decoded: reported and skipped wherever it lands.
    std::fs::write(d.join("images/p11.png"), b"not an image").unwrap();
    disc_at(64, 64, 32.0, 32.0, 12.0)
        .1
        .save(d.join("masks/p11.png"))
        .unwrap();
    d
}

/// Two epochs of one iteration of `method` on the tiny dataset at 64 px (r18-w8).
fn options(data: std::path::PathBuf, method: Method) -> TrainOptions {
    TrainOptions {
        data,
        train_split: "train".into(),
        val_split: "val".into(),
        val_fraction: 0.3,
        label_ratio: 0.5,
        method,
        config: ModelConfig::preset("r18-w8").unwrap(),
        pretrained: None,
        seed: 3,
        epochs: 2,
        iters_per_epoch: Some(1),
        batch: 2,
        lr: 0.01,
        size: 64,
        crop: 64,
        val_every: 1,
        inp_weight: 1.0,
        coarse_weight: 0.0,
        mean_teacher: MeanTeacherOptions {
            ema: 0.99,
            consistency: 0.1,
            rampup: 0.4,
            teacher_noise: 0.1,
        },
        diagnostic_images: 2,
    }
}

#[test]
fn train_writes_the_run_and_resumes() {
    let data = dataset("trainer");
    let out = data.join("run");
    let mut options = options(data.clone(), Method::Scl);
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
    let Partition { labeled, unlabeled } = read_json(&out.join("partition.json"));
    let val: Vec<String> = read_json(&out.join("validation.json"));
    assert_eq!((labeled.len(), unlabeled.len(), val.len()), (4, 4, 4));
    let all: BTreeSet<&String> = labeled.iter().chain(&unlabeled).chain(&val).collect();
    assert_eq!(all.len(), 12, "the three lists overlap");
    let expected: BTreeSet<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    assert_eq!(all.into_iter().cloned().collect::<BTreeSet<_>>(), expected);

    let state: RunState = read_json(&out.join("state.json"));
    assert_eq!(state.iteration, 2);
    assert_eq!(state.epochs.len(), 2);
    assert!(state.epochs.iter().all(|e| e.validation.is_some()));
    assert!(state.best_epoch >= 1);
    let rows = || {
        std::fs::read_to_string(out.join("log.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(rows(), 1 + 2);
    let best = scl::weights::load_file(&out.join("best.bpk"), &device).unwrap();
    assert!(best.config.two_stage);

    // Resume to a third epoch: the same folder continues at iteration 2 and the log gets its
    // third row. A row written after the last checkpoint (a run killed between the two) is
    // dropped: the log is rewritten from the saved state's epochs.
    std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("log.csv"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"3,3,unsaved\n"))
        .unwrap();
    assert_eq!(rows(), 1 + 3);
    options.epochs = 3;
    run(&options, &out, &device, true).unwrap();
    let state: RunState = read_json(&out.join("state.json"));
    assert_eq!(state.iteration, 3);
    assert_eq!(state.epochs.len(), 3);
    assert_eq!(rows(), 1 + 3);
    let log = std::fs::read_to_string(out.join("log.csv")).unwrap();
    assert!(
        !log.contains("unsaved"),
        "the unsaved row survived the resume"
    );
    // The partition of a resumed run is the same one (it is a function of the seed).
    assert_eq!(read_json::<Vec<String>>(&out.join("validation.json")), val);
    let _ = std::fs::remove_dir_all(&data);
}

/// A stage-1 loss needs a stage 1: asking for one with a single-stage method is refused
/// before anything is read or trained.
#[test]
fn coarse_weight_needs_a_two_stage_method() {
    let dir = std::env::temp_dir().join("scl-no-such-dataset");
    let refused = |options: &TrainOptions| {
        run(
            options,
            &dir.join("run"),
            &burn::prelude::Device::flex(),
            false,
        )
        .unwrap_err()
        .to_string()
    };
    let mut options = options(dir.clone(), Method::Supervised);
    options.coarse_weight = 1.0;
    let err = refused(&options);
    assert!(
        err.contains("--coarse-weight needs a two-stage method"),
        "{err}"
    );
    options.method = Method::Scl;
    options.coarse_weight = f64::NAN;
    let err = refused(&options);
    assert!(
        err.contains("--coarse-weight must be a finite number"),
        "{err}"
    );
}

/// One epoch of `method` into a fresh run folder named after `name`: the run's
/// `options.json` and its best checkpoint (the folder is removed).
fn train_one_epoch(name: &str, method: Method) -> (serde_json::Value, scl::Scl) {
    let data = dataset(name);
    let out = data.join("run");
    let mut options = options(data.clone(), method);
    options.epochs = 1;
    assert!(options.config.two_stage, "the preset is two-stage");
    let device = burn::prelude::Device::flex();
    run(&options, &out, &device, false).unwrap();
    let recorded: serde_json::Value = read_json(&out.join("options.json"));
    let best = scl::weights::load_file(&out.join("best.bpk"), &device).unwrap();
    let _ = std::fs::remove_dir_all(&data);
    (recorded, best)
}

/// `options.json` records the network the method trained, not the preset's: r18-w8 is a
/// two-stage preset, and supervised training makes it single-stage.
#[test]
fn options_record_the_trained_network() {
    let (recorded, best) = train_one_epoch("trainer-sup", Method::Supervised);
    assert_eq!(recorded["method"], "supervised");
    assert_eq!(recorded["config"]["two_stage"], false);
    assert!(!best.config.two_stage);
}

/// The residual concatenation's flag is not in the weights record (only its convolution is):
/// a trained checkpoint must come back as a residual block, from the configuration it carries.
#[test]
fn residual_concat_checkpoint_loads_as_residual() {
    let (recorded, best) = train_one_epoch("trainer-catres", Method::SclConcatRes);
    assert_eq!(recorded["method"], "scl-concat-res");
    assert!(best.config.two_stage);
    assert_eq!(best.config.fusion, scl::Fusion::ConcatResidual);
    assert_eq!(best.fusion.len(), 5);
    assert!(
        best.fusion
            .iter()
            .all(|f| f.kind() == scl::Fusion::ConcatResidual)
    );
}
