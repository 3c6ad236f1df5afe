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

/// `pattern` in the style of the page test's regular expressions, reduced to what
/// `expect.json` uses: alternatives `a|b`, each a sequence of parts joined by `.*`.
fn matches(text: &str, pattern: &str) -> bool {
    pattern.split('|').any(|alt| {
        let mut rest = text;
        alt.split(".*").all(|part| match rest.find(part) {
            Some(i) => {
                rest = &rest[i + part.len()..];
                true
            }
            None => false,
        })
    })
}

/// The hostile-file set of the page test (tests/page/hostile, written by make_hostile.py with
/// its expectations): every file the page must refuse is refused natively with the expected
/// reason, every file it must add decodes, and its notes say what was converted.
#[test]
fn hostile_files_are_refused_or_decoded_as_expected() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/page/hostile");
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap();
    let expect = expect.as_object().unwrap();
    assert!(expect.len() >= 25, "only {} hostile files", expect.len());
    let mut failures = Vec::new();
    for (name, e) in expect {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let pattern = e["message"].as_str().unwrap();
        let outcome = match decode_full(&bytes, name) {
            Ok(d) => Ok(format!(
                "{}x{} {} {}",
                d.image.width(),
                d.image.height(),
                d.format,
                d.notes().join("; ")
            )),
            Err(err) => Err(err.to_string()),
        };
        match (e["add"].as_bool(), &outcome) {
            (Some(true), Ok(text)) | (Some(false), Err(text)) if matches(text, pattern) => {}
            (None, _) => {}
            _ => failures.push(format!(
                "{name}: expected add={} /{pattern}/, got {outcome:?}",
                e["add"]
            )),
        }
        if e["add"] == true {
            colours_survive(name, &bytes, &mut failures);
        }
        if let Err(text) = &outcome {
            assert!(
                text.starts_with(&format!("{name}: ")),
                "{text} does not name {name}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The generator's 64x64 images are a disc of (178, 64, 51) centred at (29, 35) on a
/// (217, 140, 128) background (grey ones: the ITU-R 601 luma of those, 96 and 161): each
/// conversion (16-bit, palette, CMYK, alpha, animation...) must give those colours back.
fn colours_survive(name: &str, bytes: &[u8], failures: &mut Vec<String>) {
    let img = decode_rgb(bytes, name).unwrap();
    if img.dimensions() != (64, 64) {
        return;
    }
    let grey = name.contains("grey");
    let (bg, disc) = if grey {
        ([161u8; 3], [96u8; 3])
    } else {
        ([217, 140, 128], [178, 64, 51])
    };
    for ((x, y), want) in [((4, 4), bg), ((60, 4), bg), ((29, 35), disc)] {
        let got = img.get_pixel(x, y).0;
        if got
            .iter()
            .zip(want)
            .any(|(&g, w)| (g as i32 - w as i32).abs() > 8)
        {
            failures.push(format!(
                "{name}: pixel ({x}, {y}) is {got:?}, expected {want:?}"
            ));
        }
    }
}

/// The EXIF-rotated JPEG is turned upright: 48 wide, 64 high, its disc (drawn upright by the
/// generator at 45% of the width, 55% of the height) where the generator drew it.
#[test]
fn exif_orientation_is_applied() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/page/hostile/exif-rotated.jpg");
    let img = decode_rgb(&std::fs::read(path).unwrap(), "exif-rotated.jpg").unwrap();
    assert_eq!(img.dimensions(), (48, 64));
    let red = |x, y| {
        let p: &image::Rgb<u8> = img.get_pixel(x, y);
        p[1] < 100 // the disc is (178, 64, 51), the background (217, 140, 128)
    };
    assert!(red(21, 35), "the disc's centre is not at (21, 35)");
    assert!(!red(4, 4) && !red(43, 4) && !red(4, 60) && !red(43, 60));
    // The disc reaches 12 px from its centre: 9..33 across, 23..47 down.
    assert!(red(21, 25) && red(21, 45) && red(11, 35) && red(31, 35));
}

#[test]
fn correction_map_colours_added_and_removed_pixels() {
    // A 4x2 image: pixel by pixel, (coarse, fine) = both lesion, added, removed, neither.
    let input = image::RgbImage::from_pixel(4, 2, image::Rgb([90, 60, 30]));
    let coarse = [0.9, 0.2, 0.7, 0.1, 0.5, 0.49, 0.5, 0.0];
    let fine = [0.8, 0.6, 0.3, 0.0, 0.5, 0.5, 0.49, 0.0];
    let (img, added, removed) = correction_map(&input, &coarse, &fine);
    // Added: pixels 1 and 5 (0.49 -> 0.5); removed: pixels 2 and 6 (0.5 -> 0.49): 2 of 8 each.
    assert_eq!((added, removed), (0.25, 0.25));
    assert_eq!(img.get_pixel(1, 0).0, ADDED);
    assert_eq!(img.get_pixel(1, 1).0, ADDED);
    assert_eq!(img.get_pixel(2, 0).0, REMOVED);
    assert_eq!(img.get_pixel(2, 1).0, REMOVED);
    // Kept lesion: 150 + value / 4; background: value / 3.
    assert_eq!(img.get_pixel(0, 0).0, [172, 165, 157]);
    assert_eq!(img.get_pixel(0, 1).0, [172, 165, 157]);
    assert_eq!(img.get_pixel(3, 0).0, [30, 20, 10]);
}

/// `scl predict --stages`' pictures from a hand-made pass over a 4x4 image: the coarse mask is
/// the left half, the fine mask the top half, so stage 2 added the top-right quarter and removed
/// the bottom-left one (a quarter of the image each), in the two legend colours.
#[test]
fn stage_pictures_name_every_stage_and_colour_the_correction() {
    use burn::prelude::*;
    let device = Device::flex();
    let map = |f: &dyn Fn(usize, usize) -> f32, c: usize| {
        let v: Vec<f32> = (0..c * 16).map(|i| f((i % 16) / 4, i % 4)).collect();
        Tensor::<4>::from_data(TensorData::new(v, [1, c, 4, 4]), &device)
    };
    let coarse = map(&|_, x| if x < 2 { 0.9 } else { 0.1 }, 1);
    let fine_logits = map(&|y, _| if y < 2 { 5.0 } else { -5.0 }, 1);
    let rgb = map(&|_, _| 0.5, 3);
    let out = scl::model::SclOutput {
        mask: coarse.clone().greater_equal_elem(0.5).float(),
        coarse,
        masked: rgb.clone(),
        gates: (0..5).map(|_| map(&|_, _| 0.5, 1)).collect(),
        seg: vec![fine_logits],
        inp: vec![rgb.clone()],
        composite: rgb,
    };
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([90, 120, 150]));
    let p = scl::pictures::stage_pictures(out, &img, 4).unwrap();
    let names: Vec<&str> = p.pictures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "coarse",
            "masked",
            "inpainted",
            "composite",
            "gate1",
            "gate2",
            "gate3",
            "gate4",
            "gate5",
            "correction",
            "fine_prob",
            "overlay"
        ]
    );
    assert!(
        p.pictures
            .iter()
            .all(|(_, q)| (q.width(), q.height()) == (4, 4))
    );
    assert_eq!((p.added, p.removed), (0.25, 0.25));
    let correction = p.pictures[9].1.to_rgb8();
    assert_eq!(correction.get_pixel(3, 0).0, ADDED, "top right: added");
    assert_eq!(
        correction.get_pixel(0, 3).0,
        REMOVED,
        "bottom left: removed"
    );
    assert_eq!(
        correction.get_pixel(3, 3).0,
        [30, 40, 50],
        "background: the input dimmed to 1/3"
    );
    let mask: Vec<u8> = p.mask.pixels().map(|q| q[0]).collect();
    assert_eq!(
        mask,
        [[255u8; 8], [0; 8]].concat(),
        "the fine mask: the top half"
    );
}
