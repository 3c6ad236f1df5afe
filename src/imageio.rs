//! Image decoding, conversion to and from tensors, and the pictures of each stage.
//!
//! Everything here is pure Rust and runs in the browser as in the CLI. Decoding never panics:
//! an empty, truncated, corrupt, unsupported or oversized file gives an [`Error::Image`] that
//! names the problem; the size limits are checked on the header, before any pixel buffer is
//! allocated. Grey, grey+alpha, RGBA and 16-bit images are converted to 8-bit RGB (alpha is
//! dropped, 16-bit values are scaled to 8 bits), and images are turned upright by their EXIF
//! orientation (masks too, so that an image and its mask stay aligned). [`decode_full`] also
//! says what was converted, for the page's report on dropped files.

use std::io::Cursor;

use burn::prelude::*;
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, Limits, RgbImage};

use crate::Error;

/// Largest image side accepted by the decoder, in pixels.
pub const MAX_DECODE_SIDE: u32 = 16_384;
/// Largest decoded image, in bytes (an 8-bit RGB image of about 9400 x 9400 pixels). The
/// check runs on the file's header, before any pixel buffer is allocated: a decompression bomb
/// (a small file claiming a huge image) is refused at once. In the browser memory that a
/// WebAssembly module grows never shrinks, hence a bound far below the 4 GiB address space.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Images smaller than this on either side get a note: enlarged to the working size, their
/// masks are coarse.
const TINY_SIDE: u32 = 32;

/// Decodes an image file's bytes to 8-bit RGB. `name` is used in error messages.
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<RgbImage, Error> {
    Ok(decode(bytes, name)?.to_rgb8())
}

/// Decodes an image file's bytes (any supported format) with size limits, upright (its EXIF
/// orientation applied, as browsers and image viewers show it).
pub fn decode(bytes: &[u8], name: &str) -> Result<DynamicImage, Error> {
    decode_full(bytes, name).map(|d| d.image)
}

/// An image file decoded, with what was done to make it the network's 8-bit RGB input.
pub struct Decoded {
    /// The pixels, upright.
    pub image: DynamicImage,
    /// The file's format in words ("PNG", "JPEG", ...).
    pub format: &'static str,
    /// The pixel layout stored in the file (grey, alpha, 16-bit...).
    pub stored: image::ColorType,
    /// The EXIF orientation that was applied.
    pub orientation: image::metadata::Orientation,
    /// An animated GIF with more than one frame (only the first is used).
    pub animated: bool,
}

impl Decoded {
    /// One short sentence per conversion a user should know about (grey, 16-bit, alpha, EXIF
    /// rotation, animation, a tiny image); empty for an ordinary 8-bit colour image.
    pub fn notes(&self) -> Vec<String> {
        use image::ColorType as C;
        let mut notes = Vec::new();
        let s = self.stored;
        if matches!(s, C::L8 | C::La8 | C::L16 | C::La16) {
            notes.push("grey image: its grey level is used for all three colour channels (the model was trained on colour)".into());
        }
        match s.bytes_per_pixel() / s.channel_count() {
            1 => {}
            2 => notes.push("16-bit: scaled to 8 bits".into()),
            _ => notes.push("floating-point pixels: clamped to 0..1 and scaled to 8 bits".into()),
        }
        if s.has_alpha() && translucent(&self.image) {
            notes.push("alpha channel ignored (transparent pixels keep their colour)".into());
        }
        if self.orientation != image::metadata::Orientation::NoTransforms {
            notes.push(format!(
                "turned upright following its EXIF orientation ({:?})",
                self.orientation
            ));
        }
        if self.animated {
            notes.push("animated GIF: only the first frame is used".into());
        }
        let (w, h) = (self.image.width(), self.image.height());
        if w < TINY_SIDE || h < TINY_SIDE {
            notes.push(format!(
                "only {w}x{h} pixels: enlarged to the working size, its mask will be coarse"
            ));
        }
        notes
    }
}

/// Decodes an image file and says how (see [`Decoded`]). Refuses, with a message naming the
/// file and the problem, empty files, other kinds of file (text, SVG, PDF, weights...),
/// truncated or corrupt data, unsupported variants and images over the size limits.
pub fn decode_full(bytes: &[u8], name: &str) -> Result<Decoded, Error> {
    use image::ImageDecoder;
    if bytes.is_empty() {
        return Err(Error::Image(format!("{name}: the file is empty")));
    }
    let format = image::guess_format(bytes).map_err(|_| not_an_image(bytes, name))?;
    let what = format_name(format);
    if !supported_format(format) {
        return Err(Error::Image(format!(
            "{name}: {format:?} images are not supported (supported: PNG, JPEG, BMP, TIFF, GIF, WebP)"
        )));
    }
    // The JPEG decoder fills a cut-off file with grey instead of failing: require the
    // end-of-image marker near the end (some writers append a little padding after it).
    if format == ImageFormat::Jpeg {
        let tail = &bytes[bytes.len().saturating_sub(4096)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(Error::Image(format!(
                "{name}: the JPEG file is truncated (it has no end-of-image marker)"
            )));
        }
    }
    let decode_error = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => too_large(name, what),
        image::ImageError::Unsupported(u) => Error::Image(format!(
            "{name}: this {what} variant is not supported ({u})"
        )),
        other => Error::Image(format!(
            "{name}: the {what} file is corrupt or truncated ({})",
            other.to_string().trim()
        )),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // The size the header claims, checked before the pixel buffer is allocated.
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(too_large(name, what));
    }
    let stored = decoder.color_type();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::Image(format!("{name}: the image has no pixels")));
    }
    image.apply_orientation(orientation);
    let animated = format == ImageFormat::Gif && gif_frames(bytes) > 1;
    Ok(Decoded {
        image,
        format: what,
        stored,
        orientation,
        animated,
    })
}

/// Whether any pixel is not fully opaque (GIF and many PNGs carry an alpha channel that is
/// opaque everywhere: nothing to tell the user then).
fn translucent(img: &DynamicImage) -> bool {
    match img {
        DynamicImage::ImageLumaA8(b) => b.pixels().any(|p| p[1] < u8::MAX),
        DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p[3] < u8::MAX),
        DynamicImage::ImageLumaA16(b) => b.pixels().any(|p| p[1] < u16::MAX),
        DynamicImage::ImageRgba16(b) => b.pixels().any(|p| p[3] < u16::MAX),
        DynamicImage::ImageRgba32F(b) => b.pixels().any(|p| p[3] < 1.0),
        _ => false,
    }
}

fn too_large(name: &str, what: &str) -> Error {
    Error::Image(format!(
        "{name}: the {what} image is too large (at most {MAX_DECODE_SIDE} pixels a side and {} MiB decoded)",
        MAX_DECODE_BYTES >> 20
    ))
}

/// The message for bytes that are no image format this tool knows, saying what they are
/// when that is easy to tell.
fn not_an_image(bytes: &[u8], name: &str) -> Error {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let supported = "(supported: PNG, JPEG, BMP, TIFF, GIF, WebP)";
    let what = if crate::weights::looks_like_weights(bytes) {
        "this is a model weights file (.bpk), not an image".to_string()
    } else if head.contains("<svg") {
        "an SVG (vector) drawing: this tool reads raster images only; export it as PNG".into()
    } else if bytes.starts_with(b"%PDF") {
        format!("a PDF document, not an image {supported}")
    } else if image::ImageFormat::from_path(name).is_ok_and(supported_format) {
        format!("not an image this tool can read, although its name says so {supported}")
    } else {
        format!("not an image this tool can read {supported}")
    };
    Error::Image(format!("{name}: {what}"))
}

/// How many frames a GIF has, counting at most two (enough to tell an animation).
fn gif_frames(bytes: &[u8]) -> usize {
    use image::AnimationDecoder;
    image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
        .map(|d| d.into_frames().take(2).filter(Result::is_ok).count())
        .unwrap_or(1)
}

/// The formats this build decodes (the `image` crate features in Cargo.toml).
fn supported_format(f: ImageFormat) -> bool {
    use ImageFormat as F;
    matches!(f, F::Png | F::Jpeg | F::Bmp | F::Tiff | F::Gif | F::WebP)
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

/// Decodes a ground-truth mask: any format, binarised as `luma > 127` (the data's convention).
/// Returns 0/1 values, row-major, and the mask's size.
pub fn decode_mask(bytes: &[u8], name: &str) -> Result<GrayImage, Error> {
    let grey = decode(bytes, name)?.to_luma8();
    Ok(GrayImage::from_fn(grey.width(), grey.height(), |x, y| {
        image::Luma([if grey.get_pixel(x, y)[0] > 127 {
            255
        } else {
            0
        }])
    }))
}

/// Resizes (bilinear, aspect not kept, as SPEC.md's preprocessing) when the size differs.
pub fn resize_rgb(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.width() == w && img.height() == h {
        img.clone()
    } else {
        image::imageops::resize(img, w, h, FilterType::Triangle)
    }
}

/// Planar `[3, H, W]` floats in [0, 1] of an RGB image.
pub fn rgb_to_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// A `[1, 3, H, W]` tensor of an RGB image.
pub fn rgb_to_tensor(img: &RgbImage, device: &Device) -> Tensor<4> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    Tensor::from_data(TensorData::new(rgb_to_chw(img), [1, 3, h, w]), device)
}

/// An RGB image of planar `[3, H, W]` values in [0, 1] (clamped).
pub fn chw_to_rgb(data: &[f32], w: usize, h: usize) -> RgbImage {
    assert_eq!(data.len(), 3 * w * h, "planar RGB size");
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb(std::array::from_fn(|c| to_u8(data[c * w * h + i])))
    })
}

/// A grey image of `[H, W]` values in [0, 1] (clamped).
pub fn map_to_grey(data: &[f32], w: usize, h: usize) -> GrayImage {
    assert_eq!(data.len(), w * h, "map size");
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([to_u8(data[y as usize * w + x as usize])])
    })
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The binary mask (0 or 255) of a probability map resized (bilinear, on the probabilities) to
/// `out_w x out_h` and thresholded at 0.5.
pub fn prob_to_mask(prob: &[f32], w: usize, h: usize, out_w: u32, out_h: u32) -> GrayImage {
    let grey = map_to_grey(prob, w, h);
    let big = if grey.width() == out_w && grey.height() == out_h {
        grey
    } else {
        image::imageops::resize(&grey, out_w, out_h, FilterType::Triangle)
    };
    GrayImage::from_fn(out_w, out_h, |x, y| {
        image::Luma([if big.get_pixel(x, y)[0] >= 128 {
            255
        } else {
            0
        }])
    })
}

/// A heat map (a perceptually ordered dark-blue -> teal -> yellow ramp close to viridis) of
/// `[H, W]` values in [0, 1].
pub fn heat_map(data: &[f32], w: usize, h: usize) -> RgbImage {
    assert_eq!(data.len(), w * h, "map size");
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let v = data[y as usize * w + x as usize].clamp(0.0, 1.0) * 4.0;
        let i = (v.floor() as usize).min(3);
        let t = v - i as f32;
        image::Rgb(std::array::from_fn(|c| {
            (STOPS[i][c] * (1.0 - t) + STOPS[i + 1][c] * t).round() as u8
        }))
    })
}

/// Colour of the pixels the second stage added to the coarse mask (Okabe-Ito sky blue).
pub const ADDED: [u8; 3] = [86, 180, 233];
/// Colour of the pixels the second stage removed from the coarse mask (Okabe-Ito orange).
pub const REMOVED: [u8; 3] = [230, 159, 0];

/// What the second stage corrected (SPEC.md, "Self-correction"): the input, dimmed, with the
/// pixels where the fine mask (`fine >= 0.5`) and the coarse mask (`coarse >= 0.5`) agree on
/// lesion in light grey, the pixels the fine mask added in [`ADDED`] and those it removed in
/// [`REMOVED`] (two colours a colour-blind reader tells apart). Also returns the added and
/// removed areas as fractions of the image. `coarse` and `fine` are `[H, W]` maps at the
/// input's size.
pub fn correction_map(input: &RgbImage, coarse: &[f32], fine: &[f32]) -> (RgbImage, f64, f64) {
    let (w, h) = (input.width() as usize, input.height() as usize);
    assert_eq!(coarse.len(), w * h, "coarse map size");
    assert_eq!(fine.len(), w * h, "fine map size");
    let (mut added, mut removed) = (0usize, 0usize);
    let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let (c, f) = (coarse[i] >= 0.5, fine[i] >= 0.5);
        let p = input.get_pixel(x, y);
        image::Rgb(match (c, f) {
            (false, true) => {
                added += 1;
                ADDED
            }
            (true, false) => {
                removed += 1;
                REMOVED
            }
            (true, true) => std::array::from_fn(|k| (p[k] as u16 / 4 + 150) as u8),
            (false, false) => std::array::from_fn(|k| p[k] / 3),
        })
    });
    let n = (w * h).max(1) as f64;
    (img, added as f64 / n, removed as f64 / n)
}

/// The image with the mask drawn over it in a translucent colour (`alpha` in [0, 1]).
pub fn overlay(img: &RgbImage, mask: &GrayImage, alpha: f32) -> RgbImage {
    let colour = [255.0, 64.0, 32.0];
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y);
        if mask.get_pixel(x, y)[0] >= 128 {
            image::Rgb(std::array::from_fn(|c| {
                (p[c] as f32 * (1.0 - alpha) + colour[c] * alpha).round() as u8
            }))
        } else {
            *p
        }
    })
}

/// PNG bytes of any image buffer.
pub fn encode_png(img: &DynamicImage) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| Error::Image(format!("could not encode PNG: {e}")))?;
    Ok(out)
}

/// Resizes a binary (0/255) mask: bilinear on the mask, then thresholded at 0.5.
pub fn resize_mask(mask: &GrayImage, w: u32, h: u32) -> GrayImage {
    let big = if mask.width() == w && mask.height() == h {
        return mask.clone();
    } else {
        image::imageops::resize(mask, w, h, FilterType::Triangle)
    };
    GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if big.get_pixel(x, y)[0] >= 128 {
            255
        } else {
            0
        }])
    })
}

/// A fixed synthetic test image: a reddish disc with a soft edge on a textured pinkish
/// background, like a polyp on mucosa. Planar RGB `[3, h, w]` in [0, 1]; deterministic (no
/// random numbers). The browser tests, the native fixture and `scl compare-backends` use it.
pub fn synthetic_image(w: usize, h: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; 3 * w * h];
    let (cx, cy, r) = (w as f32 * 0.45, h as f32 * 0.55, w.min(h) as f32 * 0.25);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let inside = (1.0 - (d - r) / 3.0).clamp(0.0, 1.0);
            let tex = 0.05 * ((x as f32 * 0.7).sin() * (y as f32 * 0.45).cos());
            let bg = [0.85 + tex, 0.55 + tex, 0.5 + tex];
            let fg = [0.7, 0.25 + tex, 0.2];
            for c in 0..3 {
                v[c * w * h + y * w + x] =
                    (bg[c] * (1.0 - inside) + fg[c] * inside).clamp(0.0, 1.0);
            }
        }
    }
    v
}
