//! Crash-safe training runs: `scl train` killed (SIGKILL) in the middle of writing a
//! checkpoint leaves every checkpoint file whole, and `--resume` finishes the run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{dataset_dir, disc_at};

fn dataset() -> std::path::PathBuf {
    let d = dataset_dir("crash");
    for i in 0..8 {
        let (img, mask) = disc_at(64, 64, 20.0 + 3.0 * i as f32, 30.0, 10.0);
        img.save(d.join(format!("images/c{i}.png"))).unwrap();
        mask.save(d.join(format!("masks/c{i}.png"))).unwrap();
    }
    d
}

fn train(data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scl"));
    c.args(["train", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--preset",
            "r18-w8",
            "--method",
            "scl",
            "--epochs",
            "3",
            "--iters-per-epoch",
            "1",
            "--batch",
            "2",
            "--size",
            "64",
            "--crop",
            "64",
            "--val-fraction",
            "0.25",
            "--diagnostic-images",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        c.arg("--resume");
    }
    c
}

#[test]
fn killed_during_a_checkpoint_write_then_resumed() {
    let data = dataset();
    let out = data.join("run");
    // Every checkpoint file pauses 1.5 s between its write and its rename: the kill lands
    // while a temporary file exists.
    let mut child = train(&data, &out, false)
        .env("SCL_TEST_SAVE_PAUSE_MS", "1500")
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut killed_mid_write = false;
    while t0.elapsed() < Duration::from_secs(300) {
        let tmp = std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .unwrap_or(false);
        // Kill during a write of the second epoch's checkpoint (the first one made the files).
        if tmp && out.join("state.json").is_file() {
            child.kill().unwrap();
            killed_mid_write = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait().unwrap();
    assert!(killed_mid_write, "no checkpoint write was caught in time");
    // Whatever is there is whole.
    let device = burn::prelude::Device::flex();
    for f in ["last.bpk", "best.bpk"] {
        scl::weights::load_file(&out.join(f), &device).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let state: scl::train::RunState =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert!(state.iteration >= 1);
    // And the run finishes from there.
    let status = train(&data, &out, true).status().unwrap();
    assert!(status.success());
    let state: scl::train::RunState =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.iteration, 3);
    let _ = std::fs::remove_dir_all(&data);
}
