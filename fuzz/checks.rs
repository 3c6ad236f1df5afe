//! What each fuzz target does with one input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable replay of the committed corpus
//! (`tests/native/fuzz_replay.rs`), so that both run exactly the same calls. Each function
//! must never panic on any input; the asserts are the properties beyond that.

// Each fuzz binary calls one of the three.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Image decoding (every accepted format): a decoded image has pixels, converts to the
/// network's RGB input and resizes.
pub fn decode_image(data: &[u8]) {
    if let Ok(d) = scl::imageio::decode_full(data, "fuzz") {
        let _ = d.notes();
        let rgb = d.image.to_rgb8();
        assert!(rgb.width() > 0 && rgb.height() > 0);
        let _ = scl::imageio::resize_rgb(&rgb, 32, 32);
    }
}

/// The `.bpk` reader: the header, and the whole file when it describes a small network.
pub fn weights(data: &[u8]) {
    if let Ok((config, _)) = scl::weights::read_header(data, "fuzz")
        && config.width <= 16
    {
        let device = burn::prelude::Device::flex();
        let _ = scl::weights::from_bytes(data, "fuzz", &device);
    }
}

/// Names a user controls: option names, and dataset file names (lines before the first empty
/// line are images, the rest masks) paired by `scl::data::pair_up`, whose every mask must be
/// the image's stem under one of the mask patterns.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
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
                "{} paired with {}",
                pair.stem,
                mask.display()
            );
        }
    }
}
