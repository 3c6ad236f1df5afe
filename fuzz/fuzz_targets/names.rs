//! Fuzz target: names a user controls: dataset file names paired into image/mask pairs
//! (`scl::data::pair_up`, odd names, non-UTF-8 bytes), adaptation objectives, scopes, encoder
//! and backend names. Must never panic; every pair's mask must be the image's stem under one
//! of the mask patterns.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = scl::adapt::Objective::parse(&text);
    let _ = scl::adapt::Scope::parse(&text);
    let _ = scl::backend::Backend::parse(&text);
    let _ = scl::EncoderKind::parse(&text);
    // Lines before the first empty line are image names, the rest mask names.
    let mut images = Vec::new();
    let mut masks = Vec::new();
    let mut in_masks = false;
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
                    .any(|pat| pat.replace("{}", &pair.stem) == m)
            );
        }
    }
});
