//! The page's segmentation of one image, stage by stage (SPEC.md "Inference" and the page's
//! stage pictures): the passes of the two-stage network with one asynchronous read-back per
//! stage (so that each stage is timed on WebGPU too), and the pictures of what each stage made
//! (coarse mask, erased image, the five gate maps, inpainting, composite, the self-correction
//! map). [`super::Engine::segment`] decodes the image and assembles the result around them.

use super::pool::{on_pool, ready};
use super::{now, picture_grey, picture_rgb, read, read_all, set};
use crate::model::Scl;
use crate::{Error, imageio};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use image::RgbImage;
use js_sys::Object;

/// A gate map read back from the device: its values (mean over channels) and `(width, height)`.
type GateMap = (Vec<f32>, (usize, usize));

/// What the passes read back (host values, `n x n` maps) and when each stage ended.
pub(super) struct Passes {
    /// Stage-2 probabilities (the single-stage network's only mask).
    fine: Vec<f32>,
    /// Two-stage networks only: stage 1's mask and the pictures' maps.
    maps: Option<StageMaps>,
    /// `performance.now()` at the end of the coarse, fusion, segmentation and inpainting
    /// stages (all equal for a single-stage network).
    pub ends: [f64; 4],
}

impl Passes {
    /// Stage-1 probabilities (the fine mask for a single-stage network).
    pub fn coarse(&self) -> &[f32] {
        self.maps.as_ref().map_or(&self.fine, |m| &m.coarse)
    }

    /// The fine probabilities; the stage maps (up to 10 n^2 values) are freed.
    pub fn into_fine(self) -> Vec<f32> {
        self.fine
    }
}

/// The two-stage network's intermediate maps.
pub(super) struct StageMaps {
    /// Stage-1 probabilities.
    coarse: Vec<f32>,
    /// The erased image `[3, n, n]`.
    masked: Vec<f32>,
    /// The five gate maps (empty for gate-free fusions).
    gates: Vec<GateMap>,
    /// The inpainting decoder's image `[3, n, n]`.
    inpainted: Vec<f32>,
    /// The inpainting inside the fine mask, the input outside `[3, n, n]`.
    composite: Vec<f32>,
}

/// Runs the network on `x` (`[1, 3, n, n]`), stage by stage; `ends` are on this thread's
/// clock. The multi-threaded build runs the passes on a worker of its pool ([`on_pool`]):
/// the stages are timed there and moved onto this clock, and the last stage's end is when
/// the result is back here.
pub(super) async fn run(model: &Scl, x: Tensor<4>) -> Result<Passes, Error> {
    if cfg!(target_feature = "atomics") {
        let t0 = now();
        let mut passes = on_pool(|| {
            let start = now();
            let passes = ready(passes(model, x)).unwrap_or_else(|| {
                Err(Error::Device(
                    "a read on the CPU backend did not complete".into(),
                ))
            });
            passes.map(|p| Passes {
                ends: p.ends.map(|t| t - start),
                ..p
            })
        })?;
        passes.ends = passes.ends.map(|t| t0 + t);
        passes.ends[3] = now();
        Ok(passes)
    } else {
        passes(model, x).await
    }
}

async fn passes(model: &Scl, x: Tensor<4>) -> Result<Passes, Error> {
    if model.config.two_stage {
        two_stage(model, x).await
    } else {
        // Single-stage network (the supervised baseline): one mask.
        let (coarse, fine) = model.predict_mask(x)?;
        drop(coarse);
        let fine = read(fine).await?;
        let t = now();
        Ok(Passes {
            fine,
            maps: None,
            ends: [t; 4],
        })
    }
}

async fn two_stage(model: &Scl, x: Tensor<4>) -> Result<Passes, Error> {
    // Stage 1: coarse mask and the erased image.
    let coarse = model.coarse(x.clone(), 1);
    let mut back = read_all(vec![coarse.prob.clone(), coarse.masked.clone()]).await?;
    let masked = back.pop().expect("two maps");
    let coarse_v = back.pop().expect("two maps");
    let t_coarse = now();
    // Stage 2: encode the erased image, fuse.
    let fused = model.fuse(&coarse.features, coarse.masked.clone(), 1);
    let gates: Vec<GateMap> = match &fused.gates {
        Some(gates) => {
            let sizes = gates.iter().map(|z| (z.dims()[3], z.dims()[2]));
            let means = gates.iter().map(|z| z.clone().mean_dim(1)).collect();
            read_all(means).await?.into_iter().zip(sizes).collect()
        }
        None => {
            // Gate-free fusions: make sure the fusion finished before timing it.
            read(fused.g[4].clone()).await?;
            Vec::new()
        }
    };
    let t_fusion = now();
    let seg = model.seg.forward(&fused.g, false, 1).swap_remove(0);
    let fine = sigmoid(seg);
    let fine_v = read(fine.clone()).await?;
    let t_segment = now();
    let inp = model.inp.as_ref().expect("two-stage network");
    let inp = inp.forward(&fused.g, false, 1).swap_remove(0);
    let composite = crate::model::network::composite(x, inp.clone(), &fine);
    let mut back = read_all(vec![inp, composite]).await?;
    let t_inpaint = now();
    let composite = back.pop().expect("two images");
    let inpainted = back.pop().expect("two images");
    Ok(Passes {
        fine: fine_v,
        maps: Some(StageMaps {
            coarse: coarse_v,
            masked,
            gates,
            inpainted,
            composite,
        }),
        ends: [t_coarse, t_fusion, t_segment, t_inpaint],
    })
}

/// Puts the stage pictures into `stages` (the coarse mask always; the two-stage maps and the
/// self-correction map when there are any) and the corrected areas into `out`.
pub(super) fn pictures(passes: &Passes, input: &RgbImage, n: usize, stages: &Object, out: &Object) {
    let coarse = imageio::map_to_grey(passes.coarse(), n, n);
    set(stages, "coarse", picture_grey(&coarse));
    let Some(maps) = &passes.maps else {
        return;
    };
    let rgb = |v: &[f32]| picture_rgb(&imageio::chw_to_rgb(v, n, n));
    set(stages, "masked", rgb(&maps.masked));
    for (i, (g, (w, h))) in maps.gates.iter().enumerate() {
        let heat = imageio::heat_map(g, *w, *h);
        set(stages, &format!("gate{}", i + 1), picture_rgb(&heat));
    }
    set(stages, "inpainted", rgb(&maps.inpainted));
    set(stages, "composite", rgb(&maps.composite));
    let (correction, added, removed) = imageio::correction_map(input, &maps.coarse, &passes.fine);
    set(stages, "correction", picture_rgb(&correction));
    set(out, "addedArea", added);
    set(out, "removedArea", removed);
}
