//! Replays the committed fuzzing corpus (`fuzz/corpus/<target>`, minimised by
//! `scripts/fuzz.sh`) and any fixed crasher (`fuzz/regressions/<target>`) through the same
//! calls as the cargo-fuzz targets in `fuzz/fuzz_targets/`, on stable: no input may panic.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::common::dev;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    assert!(!out.is_empty(), "no committed fuzz corpus for {target}");
    out
}

#[test]
fn decode_image_corpus() {
    for (_, data) in inputs("decode_image") {
        if let Ok(d) = scl::imageio::decode_full(&data, "fuzz") {
            let _ = d.notes();
            let rgb = d.image.to_rgb8();
            assert!(rgb.width() > 0 && rgb.height() > 0);
            let _ = scl::imageio::resize_rgb(&rgb, 32, 32);
        }
    }
}

#[test]
fn weights_corpus() {
    let device = dev();
    for (_, data) in inputs("weights") {
        if let Ok((config, _)) = scl::weights::read_header(&data, "fuzz")
            && config.width <= 16
        {
            let _ = scl::weights::from_bytes(&data, "fuzz", &device);
        }
    }
}

#[test]
fn names_corpus() {
    for (name, data) in inputs("names") {
        let text = String::from_utf8_lossy(&data);
        let _ = scl::adapt::Objective::parse(&text);
        let _ = scl::adapt::Scope::parse(&text);
        let _ = scl::backend::Backend::parse(&text);
        let _ = scl::EncoderKind::parse(&text);
        let (mut images, mut masks, mut in_masks) = (Vec::new(), Vec::new(), false);
        for line in data.split(|&b| b == b'\n') {
            if line.is_empty() {
                in_masks = true;
                continue;
            }
            let p = PathBuf::from("d").join(OsStr::from_bytes(line));
            if in_masks {
                masks.push(p)
            } else {
                images.push(p)
            }
        }
        for pair in scl::data::pair_up(images, masks) {
            if let Some(mask) = pair.mask {
                let m = mask.file_stem().unwrap().to_str().unwrap();
                assert!(
                    scl::data::MASK_PATTERNS
                        .iter()
                        .any(|pat| pat.replace("{}", &pair.stem) == m),
                    "{name}: {} paired with {}",
                    pair.stem,
                    mask.display()
                );
            }
        }
    }
}
