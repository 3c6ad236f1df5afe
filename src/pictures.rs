//! The stage pictures of one image as `scl predict --stages` writes them (SPEC.md "Inference"
//! and "The two stages"): the coarse mask, the erased input, the inpainting, the composite, the
//! five gate maps, the self-correction map (what stage 2 added to and removed from the coarse
//! mask), the fine probability and the overlay, each at the image's own size. The page draws
//! the same pictures from its own read-backs (`web::stages`).

use burn::prelude::*;
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, RgbImage};

use crate::backend::read_f32;
use crate::model::SclOutput;
use crate::{Error, imageio};

/// The pictures of one image, named by stage, and what the masks say.
pub struct StagePictures {
    /// `(name, picture)` in the order of the method: `coarse`, `masked`, `inpainted`,
    /// `composite`, `gate1`..`gate5` (gated fusions only), `correction`, `fine_prob`, `overlay`.
    pub pictures: Vec<(String, DynamicImage)>,
    /// The fine mask (0/255) at the image's own size: what `scl predict` writes as the mask.
    pub mask: GrayImage,
    /// Fractions of the image the fine mask added to / removed from the coarse mask, counted at
    /// the image's own size (the resolution of the downloaded masks).
    pub added: f64,
    /// See `added`.
    pub removed: f64,
}

/// The pictures of `out`, the network's pass over `img` resized to `n x n` (batch 1).
pub fn stage_pictures(out: SclOutput, img: &RgbImage, n: usize) -> Result<StagePictures, Error> {
    let (ow, oh) = (img.width(), img.height());
    let fine = read_f32(out.fine())?;
    let coarse_mask = imageio::prob_to_mask(&read_f32(out.coarse)?, n, n, ow, oh);
    let mask = imageio::prob_to_mask(&fine, n, n, ow, oh);
    let (correction, added, removed) =
        imageio::correction_map(img, &unit(&coarse_mask), &unit(&mask));
    let back = |t: Tensor<4>| -> Result<DynamicImage, Error> {
        let rgb = imageio::chw_to_rgb(&read_f32(t)?, n, n);
        Ok(DynamicImage::ImageRgb8(imageio::resize_rgb(&rgb, ow, oh)))
    };
    let mut pictures = vec![
        ("coarse".to_string(), DynamicImage::ImageLuma8(coarse_mask)),
        ("masked".into(), back(out.masked)?),
        ("inpainted".into(), back(out.inp[0].clone())?),
        ("composite".into(), back(out.composite)?),
    ];
    for (i, g) in out.gates.into_iter().enumerate() {
        let [_, _, gh, gw] = g.dims();
        let heat = imageio::heat_map(&read_f32(g)?, gw, gh);
        let heat = imageops::resize(&heat, ow, oh, FilterType::Nearest);
        pictures.push((format!("gate{}", i + 1), DynamicImage::ImageRgb8(heat)));
    }
    pictures.push(("correction".into(), DynamicImage::ImageRgb8(correction)));
    let grey = imageio::map_to_grey(&fine, n, n);
    let grey = imageops::resize(&grey, ow, oh, FilterType::Triangle);
    pictures.push(("fine_prob".into(), DynamicImage::ImageLuma8(grey)));
    let overlay = imageio::overlay(img, &mask, 0.45);
    pictures.push(("overlay".into(), DynamicImage::ImageRgb8(overlay)));
    Ok(StagePictures {
        pictures,
        mask,
        added,
        removed,
    })
}

/// A 0/255 mask as 0/1 values.
fn unit(mask: &GrayImage) -> Vec<f32> {
    mask.pixels().map(|p| f32::from(p[0]) / 255.0).collect()
}
