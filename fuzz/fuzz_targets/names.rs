//! Fuzz target: names a user controls: dataset file names paired into image/mask pairs
//! (`scl::data::pair_up`, odd names, non-UTF-8 bytes), adaptation objectives, scopes, encoder
//! and backend names. Must never panic; every pair's mask must be the image's stem under one
//! of the mask patterns.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::names(data));
