//! Image decoding never panics and names the problem; odd pixel formats are converted.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgba};
use scl::imageio::*;

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn err(bytes: &[u8]) -> String {
    decode_rgb(bytes, "f").unwrap_err().to_string()
}

#[test]
fn bad_files_give_clear_errors() {
    assert!(err(b"").contains("empty"));
    assert!(err(b"hello, world").contains("not an image"));
    let jpeg = encode(DynamicImage::new_rgb8(64, 64), ImageFormat::Jpeg);
    assert!(err(&jpeg[..jpeg.len() / 2]).contains("truncated"));
    let png = encode(DynamicImage::new_rgb8(64, 64), ImageFormat::Png);
    assert!(err(&png[..png.len() - 30]).contains("corrupt or truncated"));
    // A PNG header announcing 100000 x 100000 pixels.
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let e = err(&huge);
    assert!(e.contains("too large") || e.contains("corrupt"), "{e}");
}

#[test]
fn grey_16bit_and_rgba_become_rgb() {
    let grey = ImageBuffer::from_fn(4, 2, |x, _| Luma([x as u8 * 60]));
    let rgb = decode_rgb(
        &encode(DynamicImage::ImageLuma8(grey), ImageFormat::Png),
        "g",
    )
    .unwrap();
    assert_eq!(rgb.get_pixel(3, 1).0, [180, 180, 180]);

    let g16 = ImageBuffer::from_fn(2, 2, |_, _| Luma([65535u16]));
    let rgb = decode_rgb(
        &encode(DynamicImage::ImageLuma16(g16), ImageFormat::Png),
        "g16",
    )
    .unwrap();
    assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);

    let rgba = ImageBuffer::from_fn(2, 2, |_, _| Rgba([10u8, 20, 30, 0]));
    let rgb = decode_rgb(
        &encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        "a",
    )
    .unwrap();
    assert_eq!(rgb.get_pixel(1, 1).0, [10, 20, 30]);
}

#[test]
fn tensor_layout_and_masks() {
    let img = image::RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 255, 0, 51]));
    assert_eq!(rgb_to_chw(&img), vec![0.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
    assert_eq!(chw_to_rgb(&rgb_to_chw(&img), 2, 1), img);
    // 2x2 probabilities [0.9, 0.1; 0.2, 0.6] kept at size: threshold 0.5.
    let m = prob_to_mask(&[0.9, 0.1, 0.2, 0.6], 2, 2, 2, 2);
    assert_eq!(m.into_raw(), vec![255, 0, 0, 255]);
    // Upscaled to 4x4: corners keep their value.
    let m = prob_to_mask(&[0.9, 0.1, 0.2, 0.6], 2, 2, 4, 4);
    assert_eq!(
        (
            m.get_pixel(0, 0)[0],
            m.get_pixel(3, 0)[0],
            m.get_pixel(0, 3)[0]
        ),
        (255, 0, 0)
    );
    let mask = decode_mask(
        &encode(
            DynamicImage::ImageLuma8(ImageBuffer::from_fn(2, 1, |x, _| {
                Luma([if x == 0 { 127 } else { 128 }])
            })),
            ImageFormat::Png,
        ),
        "m",
    )
    .unwrap();
    assert_eq!(mask.into_raw(), vec![0, 255]);
    // Heat map ends: viridis' first and last colours.
    let h = heat_map(&[0.0, 1.0], 2, 1);
    assert_eq!(
        (h.get_pixel(0, 0).0, h.get_pixel(1, 0).0),
        ([68, 1, 84], [253, 231, 37])
    );
}
