//! Fuzz target: image decoding (every accepted format: PNG, JPEG, BMP, TIFF, GIF, WebP), as
//! the CLI and the page's `Engine.inspect`/`segment` run it. Must never panic or allocate past
//! the decode limit; a decoded image must be convertible to the network's RGB input and a mask.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = scl::imageio::decode_full(data, "fuzz") {
        let _ = d.notes();
        let rgb = d.image.to_rgb8();
        assert!(rgb.width() > 0 && rgb.height() > 0);
        let _ = scl::imageio::resize_rgb(&rgb, 32, 32);
    }
});
