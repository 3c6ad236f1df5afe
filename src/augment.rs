//! SPEC.md's preprocessing and augmentation, on host images: resize to a square (aspect not
//! kept), horizontal and vertical flips (p 0.5 each), rotation (p 0.5, angle in [-90, 90]
//! degrees, zero fill), zoom (p 0.5, factor in [0.9, 1.1]) and a random square crop.
//!
//! Rotation and zoom are one affine resampling about the image centre (bilinear for the image,
//! bilinear then re-thresholded at 0.5 for the mask; pixels from outside are 0). The same
//! geometry is applied to an image and its mask.

use image::{GrayImage, RgbImage};

use crate::rng::Rng;

/// Augmentation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Side of the random crop (256 in SPEC.md).
    pub crop: u32,
    /// Probability of each flip.
    pub flip: f64,
    /// Probability of a rotation.
    pub rotate: f64,
    /// Largest rotation angle in degrees.
    pub max_angle: f64,
    /// Probability of a zoom.
    pub zoom: f64,
    /// Zoom factor range.
    pub zoom_range: (f64, f64),
}

impl Augment {
    /// SPEC.md's augmentation with a crop of `crop` pixels.
    pub fn spec(crop: u32) -> Self {
        Augment {
            crop,
            flip: 0.5,
            rotate: 0.5,
            max_angle: 90.0,
            zoom: 0.5,
            zoom_range: (0.9, 1.1),
        }
    }
}

/// One augmented sample: planar RGB `[3, crop, crop]` in [0, 1] and, for labeled images, the
/// mask `[crop, crop]` in {0, 1}.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Planar RGB.
    pub image: Vec<f32>,
    /// Binary mask.
    pub mask: Option<Vec<f32>>,
}

/// Applies the augmentation to an image (already resized to the working square) and its
/// optional mask.
pub fn augment(img: &RgbImage, mask: Option<&GrayImage>, a: &Augment, rng: &mut Rng) -> Sample {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let hflip = rng.chance(a.flip);
    let vflip = rng.chance(a.flip);
    let angle = if rng.chance(a.rotate) {
        rng.range(-a.max_angle, a.max_angle).to_radians()
    } else {
        0.0
    };
    let scale = if rng.chance(a.zoom) {
        rng.range(a.zoom_range.0, a.zoom_range.1)
    } else {
        1.0
    };
    let crop = (a.crop as usize).min(w).min(h);
    let x0 = rng.below(w - crop + 1);
    let y0 = rng.below(h - crop + 1);

    // Output pixel (u, v) of the crop -> position p in the full transformed image -> source
    // position by the inverse of flip, rotation and zoom about the centre.
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let identity = angle == 0.0 && scale == 1.0;
    let source = |u: usize, v: usize| -> (f64, f64) {
        let mut px = (x0 + u) as f64;
        let mut py = (y0 + v) as f64;
        if hflip {
            px = w as f64 - 1.0 - px;
        }
        if vflip {
            py = h as f64 - 1.0 - py;
        }
        if identity {
            return (px, py);
        }
        let (dx, dy) = ((px - cx) / scale, (py - cy) / scale);
        (cx + cos * dx + sin * dy, cy - sin * dx + cos * dy)
    };
    let plane = crop * crop;
    let mut image = vec![0f32; 3 * plane];
    let mut out_mask = mask.map(|_| vec![0f32; plane]);
    let src_rgb = img.as_raw();
    let src_mask = mask.map(|m| m.as_raw());
    for v in 0..crop {
        for u in 0..crop {
            let (sx, sy) = source(u, v);
            let i = v * crop + u;
            for c in 0..3 {
                image[c * plane + i] = bilinear(src_rgb, w, h, 3, c, sx, sy) / 255.0;
            }
            if let (Some(m), Some(out)) = (src_mask, out_mask.as_mut()) {
                out[i] = if bilinear(m, w, h, 1, 0, sx, sy) >= 127.5 {
                    1.0
                } else {
                    0.0
                };
            }
        }
    }
    Sample {
        image,
        mask: out_mask,
    }
}

/// Bilinear sample of channel `c` of an interleaved 8-bit buffer; 0 outside the image.
fn bilinear(buf: &[u8], w: usize, h: usize, channels: usize, c: usize, x: f64, y: f64) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = ((x - fx) as f32, (y - fy) as f32);
    let (ix, iy) = (fx as i64, fy as i64);
    let at = |xx: i64, yy: i64| -> f32 {
        if xx < 0 || yy < 0 || xx >= w as i64 || yy >= h as i64 {
            0.0
        } else {
            buf[(yy as usize * w + xx as usize) * channels + c] as f32
        }
    };
    let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
    let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
    top * (1.0 - ty) + bottom * ty
}
