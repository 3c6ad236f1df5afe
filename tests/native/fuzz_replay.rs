//! Replays the committed fuzzing corpus (`fuzz/corpus/<target>`, minimised by
//! `scripts/fuzz.sh`) and any fixed crasher (`fuzz/regressions/<target>`) through the same
//! checks as the cargo-fuzz targets (`fuzz/checks.rs`), on stable: no input may panic.

use std::path::Path;

#[path = "../../fuzz/checks.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", e.path().display());
            n += 1;
        }
    }
    assert!(n > 0, "no committed fuzz corpus for {target}");
}

#[test]
fn decode_image_corpus() {
    replay("decode_image", checks::decode_image);
}

#[test]
fn weights_corpus() {
    replay("weights", checks::weights);
}

#[test]
fn names_corpus() {
    replay("names", checks::names);
}
