//! Validation and evaluation (SPEC.md "Evaluation"): per-image scores of the fine mask and of
//! the stage-1 (coarse) mask at the working size, threshold 0.5, and what stage 2 changed.

use burn::prelude::*;

use super::loader::load_pairs;
use crate::Error;
use crate::backend::read_f32;
use crate::data::Pair;
use crate::metrics::{Confusion, Correction, Scores};
use crate::model::Scl;

/// Validation data: images and masks at the working size.
pub struct ValSet {
    /// Stems.
    pub stems: Vec<String>,
    /// Planar images `[3, S, S]`.
    pub images: Vec<Vec<f32>>,
    /// Binary masks `[S, S]`.
    pub masks: Vec<Vec<f32>>,
    /// Working size.
    pub size: u32,
}

impl ValSet {
    /// Loads `pairs` at `size`, skipping (and reporting) bad ones.
    pub fn load(pairs: &[Pair], size: u32) -> Self {
        let loaded = load_pairs(pairs, size, true);
        let mut v = ValSet {
            stems: Vec::new(),
            images: Vec::new(),
            masks: Vec::new(),
            size,
        };
        for (stem, img, mask) in loaded {
            v.stems.push(stem);
            v.images.push(crate::imageio::rgb_to_chw(&img));
            v.masks.push(
                mask.expect("mask")
                    .pixels()
                    .map(|p| if p[0] >= 128 { 1.0 } else { 0.0 })
                    .collect(),
            );
        }
        v
    }

    /// The images in batches of `n` as `[B, 3, S, S]` tensors on `device`, each with its
    /// masks.
    pub fn batches<'a>(
        &'a self,
        n: usize,
        device: &'a Device,
    ) -> impl Iterator<Item = (Tensor<4>, &'a [Vec<f32>])> + 'a {
        let s = self.size as usize;
        self.images
            .chunks(n)
            .zip(self.masks.chunks(n))
            .map(move |(imgs, masks)| {
                let flat: Vec<f32> = imgs.iter().flatten().copied().collect();
                let x =
                    Tensor::<4>::from_data(TensorData::new(flat, [imgs.len(), 3, s, s]), device);
                (x, masks)
            })
    }
}

/// Per-image scores of one model on a [`ValSet`], in the set's order.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// The fine (stage-2) mask: the network's prediction.
    pub fine: Vec<Scores>,
    /// The stage-1 (coarse) mask, the one stage 2 erases. For a single-stage network it is the
    /// prediction itself.
    pub coarse: Vec<Scores>,
    /// What stage 2 changed in the coarse mask, against the truth (all zero for a single-stage
    /// network).
    pub corrections: Vec<Correction>,
}

impl Evaluation {
    /// Images whose fine Dice is above, and below, their coarse Dice: where stage 2 helped and
    /// where it hurt.
    pub fn dice_changes(&self) -> (usize, usize) {
        let pairs = || self.fine.iter().zip(&self.coarse);
        (
            pairs().filter(|(f, c)| f.dice > c.dice).count(),
            pairs().filter(|(f, c)| f.dice < c.dice).count(),
        )
    }
}

/// Scores `model` (an inference copy) on `val`: fine and coarse masks at the working size,
/// threshold 0.5, batches of 4.
pub fn evaluate(model: &Scl, val: &ValSet, device: &Device) -> Result<Evaluation, Error> {
    let s = val.size as usize;
    let mut ev = Evaluation::default();
    for (x, masks) in val.batches(4, device) {
        let (coarse, fine) = model.predict_mask(x)?;
        let (coarse, fine) = (read_f32(coarse)?, read_f32(fine)?);
        for ((f, c), m) in fine.chunks(s * s).zip(coarse.chunks(s * s)).zip(masks) {
            ev.fine.push(Confusion::from_maps(f, m).scores());
            ev.coarse.push(Confusion::from_maps(c, m).scores());
            ev.corrections.push(Correction::from_maps(c, f, m));
        }
    }
    Ok(ev)
}
