//! Folder datasets (`images/` + `masks/`), splits and the seeded labeled/unlabeled selection.
//!
//! Masks are matched to images by stem, trying in order: `<stem>.<ext>` (Kvasir-SEG),
//! `<stem>_segmentation.<ext>` (ISIC), `<stem>-exp1.<ext>` (RIM-ONE) and `<stem>_mask.<ext>`,
//! for any image extension. A pair that cannot be used (no mask, undecodable file, image and
//! mask of different sizes) is reported by name and skipped; it never stops a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::imageio;
use crate::rng::Rng;

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif", "webp"];

/// Mask-name patterns tried for an image stem, in order.
pub const MASK_PATTERNS: [&str; 4] = ["{}", "{}_segmentation", "{}-exp1", "{}_mask"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An image and, when found, its mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// File stem of the image.
    pub stem: String,
    /// Image path.
    pub image: PathBuf,
    /// Mask path.
    pub mask: Option<PathBuf>,
}

/// Pairs each image with the mask whose stem is the image's stem under the first of
/// [`MASK_PATTERNS`] that exists. Files whose names are not valid UTF-8 are left out (their
/// stems could not be named in a `split.json`). Fuzzed (`fuzz/fuzz_targets/names.rs`).
pub fn pair_up(images: Vec<PathBuf>, masks: Vec<PathBuf>) -> Vec<Pair> {
    let by_stem: BTreeMap<String, PathBuf> = masks
        .into_iter()
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    images
        .into_iter()
        .filter_map(|image| {
            let stem = image.file_stem()?.to_str()?.to_string();
            let mask = MASK_PATTERNS
                .iter()
                .find_map(|pat| by_stem.get(&pat.replace("{}", &stem)).cloned());
            Some(Pair { stem, image, mask })
        })
        .collect()
}

/// The pairs of a dataset folder.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The folder.
    pub root: PathBuf,
    /// Pairs sorted by stem.
    pub pairs: Vec<Pair>,
}

impl Dataset {
    /// Scans `root/images` and `root/masks`.
    pub fn scan(root: &Path) -> Result<Self, Error> {
        let images_dir = root.join("images");
        let masks_dir = root.join("masks");
        let list = |dir: &Path| -> Result<Vec<PathBuf>, Error> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            v.sort();
            Ok(v)
        };
        let images = list(&images_dir)?;
        if images.is_empty() {
            return Err(Error::Config(format!(
                "{}: no images",
                images_dir.display()
            )));
        }
        let masks = if masks_dir.is_dir() {
            list(&masks_dir)?
        } else {
            Vec::new()
        };
        Ok(Dataset {
            root: root.to_path_buf(),
            pairs: pair_up(images, masks),
        })
    }

    /// The pairs whose stems are in `stems`, in the order of `stems`; unknown stems are
    /// returned as the second value.
    pub fn select(&self, stems: &[String]) -> (Vec<Pair>, Vec<String>) {
        let index: BTreeMap<&str, &Pair> =
            self.pairs.iter().map(|p| (p.stem.as_str(), p)).collect();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for s in stems {
            match index.get(s.as_str()) {
                Some(p) => found.push((*p).clone()),
                None => missing.push(s.clone()),
            }
        }
        (found, missing)
    }

    /// A split: from `root/split.json` (`{"train": [...], "val": [...]}`) when present,
    /// otherwise a seeded random split holding out `val_fraction` of the pairs as `val`.
    pub fn split(&self, name: &str, val_fraction: f64, seed: u64) -> Result<Vec<String>, Error> {
        let file = self.root.join("split.json");
        if file.is_file() {
            let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
            let splits: BTreeMap<String, Vec<String>> = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
            return splits.get(name).cloned().ok_or_else(|| {
                Error::Config(format!(
                    "{}: no split named '{name}' (it has: {})",
                    file.display(),
                    splits.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            });
        }
        let mut stems: Vec<String> = self.pairs.iter().map(|p| p.stem.clone()).collect();
        Rng::stream(seed, 0x5EED).shuffle(&mut stems);
        let n_val = ((stems.len() as f64) * val_fraction).round() as usize;
        let (val, train) = stems.split_at(n_val);
        let mut out = match name {
            "val" => val.to_vec(),
            "train" => train.to_vec(),
            "all" => self.pairs.iter().map(|p| p.stem.clone()).collect(),
            other => {
                return Err(Error::Config(format!(
                    "{}: no split.json, so only 'train', 'val' and 'all' exist (asked for '{other}')",
                    self.root.display()
                )));
            }
        };
        out.sort();
        Ok(out)
    }
}

/// The labeled/unlabeled partition of a training split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Stems used with their masks.
    pub labeled: Vec<String>,
    /// Stems used as unlabeled images (their masks are never read).
    pub unlabeled: Vec<String>,
}

impl Partition {
    /// Selects `round(ratio * n)` labeled stems at random (seeded); the rest are unlabeled.
    /// Both lists are sorted.
    pub fn select(stems: &[String], ratio: f64, seed: u64) -> Self {
        let mut s = stems.to_vec();
        s.sort();
        Rng::stream(seed, 0x1ABE1).shuffle(&mut s);
        let n = ((s.len() as f64) * ratio.clamp(0.0, 1.0)).round() as usize;
        let mut labeled = s[..n].to_vec();
        let mut unlabeled = s[n..].to_vec();
        labeled.sort();
        unlabeled.sort();
        Partition { labeled, unlabeled }
    }
}

/// Decodes a pair and resizes it to `size x size` (image bilinear, mask bilinear then
/// thresholded at 0.5). Errors name the file and the problem.
pub fn load_pair(pair: &Pair, size: u32) -> Result<(RgbImage, GrayImage), Error> {
    let mask_path = pair
        .mask
        .as_ref()
        .ok_or_else(|| Error::Image(format!("{}: no mask found in masks/", pair.stem)))?;
    let bytes = std::fs::read(&pair.image).map_err(|e| io(&pair.image, e))?;
    let img = imageio::decode_rgb(&bytes, &pair.image.display().to_string())?;
    let bytes = std::fs::read(mask_path).map_err(|e| io(mask_path, e))?;
    let mask = imageio::decode_mask(&bytes, &mask_path.display().to_string())?;
    let (iw, ih) = (img.width(), img.height());
    if (mask.width(), mask.height()) != (iw, ih) {
        return Err(Error::Image(format!(
            "{}: image is {iw}x{ih} but its mask is {}x{}",
            pair.stem,
            mask.width(),
            mask.height()
        )));
    }
    Ok((
        imageio::resize_rgb(&img, size, size),
        imageio::resize_mask(&mask, size, size),
    ))
}

/// Decodes an image and resizes it to `size x size`.
pub fn load_image(path: &Path, size: u32) -> Result<RgbImage, Error> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let img = imageio::decode_rgb(&bytes, &path.display().to_string())?;
    Ok(imageio::resize_rgb(&img, size, size))
}

/// The image files to read from `dir`: the `split` of a dataset folder (one with `images/`;
/// `all` for every image), or every image file of a plain folder (`split` must then be `all`).
/// Sorted by name.
pub fn image_paths(dir: &Path, split: &str) -> Result<Vec<PathBuf>, Error> {
    if dir.join("images").is_dir() {
        let ds = Dataset::scan(dir)?;
        let stems = ds.split(split, 0.2, 1)?;
        let (pairs, missing) = ds.select(&stems);
        for m in &missing {
            eprintln!("skipped: {m}: listed in the split but not found in images/");
        }
        return Ok(pairs.into_iter().map(|p| p.image).collect());
    }
    if split != "all" {
        return Err(Error::Config(format!(
            "{}: a plain folder of images has no split '{split}' (use --split all, or a dataset \
             folder with images/ and split.json)",
            dir.display()
        )));
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    if v.is_empty() {
        return Err(Error::Config(format!("{}: no images", dir.display())));
    }
    v.sort();
    Ok(v)
}
