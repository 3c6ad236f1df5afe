//! The training data (SPEC.md "Training"): decoding and resizing on all cores, and a background
//! thread that samples and augments the batches of each iteration. Sampling is deterministic in
//! the seed and the iteration index, so a resumed run sees exactly the batches it would have
//! seen: each list is reshuffled every pass (the labeled set cycles while the unlabeled set is
//! traversed once per epoch).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use image::{GrayImage, RgbImage};

use crate::augment::{Augment, augment};
use crate::data::{self, Pair};
use crate::rng::Rng;

/// A decoded, resized training set. Unlabeled images keep their mask only for the oracle
/// ablation (erasing with the true lesion); no loss ever reads it otherwise.
pub struct Images {
    /// Labeled images and masks.
    pub labeled: Vec<(RgbImage, GrayImage)>,
    /// Unlabeled images (and hidden masks when loaded for the oracle).
    pub unlabeled: Vec<(RgbImage, Option<GrayImage>)>,
}

/// Decodes pairs on all cores; bad pairs are reported and skipped.
pub fn load_pairs(
    pairs: &[Pair],
    size: u32,
    with_masks: bool,
) -> Vec<(String, RgbImage, Option<GrayImage>)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = pairs.len().div_ceil(threads).max(1);
    let mut out = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|p| load_one(p, size, with_masks))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("loader thread"));
        }
    });
    out
}

fn load_one(
    p: &Pair,
    size: u32,
    with_masks: bool,
) -> Option<(String, RgbImage, Option<GrayImage>)> {
    let r = if with_masks {
        data::load_pair(p, size).map(|(i, m)| (i, Some(m)))
    } else {
        data::load_image(&p.image, size).map(|i| (i, None))
    };
    match r {
        Ok((i, m)) => Some((p.stem.clone(), i, m)),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A host batch (planar floats `[B, C, crop, crop]`).
pub struct HostBatch {
    /// Labeled images, masks and the batch size.
    pub labeled: Option<(Vec<f32>, Vec<f32>, usize)>,
    /// Unlabeled images, their hidden masks (oracle only) and the batch size.
    pub unlabeled: Option<(Vec<f32>, Option<Vec<f32>>, usize)>,
}

/// The `p`-th draw from a list of `n` items reshuffled each pass (seeded).
fn draw(
    n: usize,
    p: usize,
    seed: u64,
    stream: u64,
    cache: &mut Option<(usize, Vec<usize>)>,
) -> usize {
    let pass = p / n;
    if cache.as_ref().map(|c| c.0) != Some(pass) {
        let mut perm: Vec<usize> = (0..n).collect();
        Rng::stream(seed, stream ^ (pass as u64).wrapping_mul(0x9E37)).shuffle(&mut perm);
        *cache = Some((pass, perm));
    }
    cache.as_ref().expect("cache").1[p % n]
}

/// What the loader produces.
#[derive(Debug, Clone, Copy)]
pub struct LoaderSpec {
    /// Images per iteration (labeled, and unlabeled).
    pub batch: usize,
    /// The augmentation.
    pub aug: Augment,
    /// Sampling and augmentation seed.
    pub seed: u64,
    /// Produce an unlabeled batch.
    pub unlabeled: bool,
}

/// Starts the loader thread: batches for iterations `iterations`, deterministic in the seed and
/// the iteration (so a resumed run sees the same batches).
pub fn spawn_loader(
    images: Arc<Images>,
    spec: LoaderSpec,
    iterations: std::ops::Range<usize>,
) -> Receiver<HostBatch> {
    let (tx, rx) = sync_channel(3);
    std::thread::spawn(move || {
        let (mut lc, mut uc) = (None, None);
        let LoaderSpec {
            batch, aug, seed, ..
        } = spec;
        for it in iterations {
            let mut rng = Rng::stream(seed, 0xA000_0000 + it as u64);
            let labeled = (!images.labeled.is_empty()).then(|| {
                let (mut xs, mut ys) = (Vec::new(), Vec::new());
                for j in 0..batch {
                    let k = draw(images.labeled.len(), it * batch + j, seed, 1, &mut lc);
                    let (img, mask) = &images.labeled[k];
                    let s = augment(img, Some(mask), &aug, &mut rng);
                    xs.extend(s.image);
                    ys.extend(s.mask.expect("mask"));
                }
                (xs, ys, batch)
            });
            let unlabeled = (spec.unlabeled && !images.unlabeled.is_empty()).then(|| {
                let mut xs = Vec::new();
                let mut ms: Option<Vec<f32>> = None;
                for j in 0..batch {
                    let k = draw(images.unlabeled.len(), it * batch + j, seed, 2, &mut uc);
                    let (img, mask) = &images.unlabeled[k];
                    let s = augment(img, mask.as_ref(), &aug, &mut rng);
                    xs.extend(s.image);
                    if let Some(m) = s.mask {
                        ms.get_or_insert_with(Vec::new).extend(m);
                    }
                }
                (xs, ms, batch)
            });
            if tx.send(HostBatch { labeled, unlabeled }).is_err() {
                return;
            }
        }
    });
    rx
}
