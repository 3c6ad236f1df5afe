//! Fuzz target: image decoding (every accepted format: PNG, JPEG, BMP, TIFF, GIF, WebP), as
//! the CLI and the page's `Engine.inspect`/`segment` run it. Must never panic or allocate past
//! the decode limit; a decoded image must be convertible to the network's RGB input and a mask.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_image(data));
