//! Fuzz target: the `.bpk` weights reader (Burnpack header, the embedded configuration, the
//! f16/f32 tensor payload), as `scl` and the page's "Import weights" run it. Must never panic;
//! a header that parses and describes a small network is also loaded into one.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::weights(data));
