//! Fuzz target: the `.bpk` weights reader (Burnpack header, the embedded configuration, the
//! f16/f32 tensor payload), as `scl` and the page's "Import weights" run it. Must never panic;
//! a header that parses and describes a small network is also loaded into one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((config, _)) = scl::weights::read_header(data, "fuzz")
        && config.width <= 16
    {
        let device = burn::prelude::Device::flex();
        let _ = scl::weights::from_bytes(data, "fuzz", &device);
    }
});
