//! One SCL training iteration (SPEC.md "Losses" and "Training"; shared by the CLI trainer, the
//! benchmark and the page's fine-tuning): forward passes for a labeled and an unlabeled batch,
//! the losses, one backward pass and an SGD step.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::loss::{INP_WEIGHT, SEG_WEIGHT, inpainting_loss, segmentation_loss};
use crate::model::network::erase;
use crate::model::{FineParts, Scl};

/// The optimiser of SPEC.md: SGD, momentum 0.9 (no dampening, as PyTorch), weight decay 1e-5.
pub fn sgd() -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.0)
                .with_nesterov(false),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-5)))
        .init()
}

/// The poly learning-rate schedule `base * (1 - iter / max_iter)^0.9`.
pub fn poly_lr(base: f64, iter: usize, max_iter: usize) -> f64 {
    if max_iter == 0 {
        return base;
    }
    let frac = (iter as f64 / max_iter as f64).min(1.0);
    base * (1.0 - frac).powf(0.9)
}

/// The loss terms of one iteration (host values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// `L_seg` of the labeled batch (0 without one).
    pub seg: f64,
    /// `L_inp` of the unlabeled batch (0 without one).
    pub inp: f64,
    /// The stage-1 mask's BCE + Dice on the labeled batch (0 unless `--coarse-weight` > 0:
    /// this project's variant, not SPEC.md's method).
    #[serde(default)]
    pub coarse: f64,
    /// `2 L_seg + L_inp` (+ `coarse_weight * L_coarse`).
    pub total: f64,
}

/// A training batch: labeled images with masks and/or unlabeled images, all `[B, C, H, W]` on the
/// model's (autodiff) device, sides multiples of 32.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Labeled images `[B, 3, H, W]` and masks `[B, 1, H, W]` (values in [0, 1]).
    pub labeled: Option<(Tensor<4>, Tensor<4>)>,
    /// Unlabeled images `[B, 3, H, W]`.
    pub unlabeled: Option<Tensor<4>>,
    /// Oracle ablation only: the unlabeled images' true masks `[B, 1, H, W]`, which then erase
    /// the lesion instead of the stage-1 prediction (no loss reads them).
    pub oracle_masks: Option<Tensor<4>>,
}

impl Batch {
    /// A batch of labeled and/or unlabeled images (no oracle).
    pub fn new(labeled: Option<(Tensor<4>, Tensor<4>)>, unlabeled: Option<Tensor<4>>) -> Self {
        Self {
            labeled,
            unlabeled,
            oracle_masks: None,
        }
    }
}

/// The weights of the losses in the total, `seg * L_seg + inp * L_inp + coarse * L_coarse`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    /// Weight of the segmentation loss (2 in SPEC.md).
    pub seg: f64,
    /// Weight of the inpainting loss, lambda_inp (1 in SPEC.md).
    pub inp: f64,
    /// Weight of a loss on the stage-1 (coarse) mask of the labeled images (0 in SPEC.md,
    /// whose stage 1 has no loss; this project's variant, `--coarse-weight`).
    #[serde(default)]
    pub coarse: f64,
}

impl LossWeights {
    /// SPEC.md's weights: `2 L_seg + 1 L_inp`, no stage-1 loss.
    pub const SPEC: LossWeights = LossWeights {
        seg: SEG_WEIGHT,
        inp: INP_WEIGHT,
        coarse: 0.0,
    };

    /// The weighted total of the terms present.
    pub fn total(&self, seg: Option<Tensor<1>>, inp: Option<Tensor<1>>) -> Tensor<1> {
        match (seg, inp) {
            (Some(s), Some(i)) => s * self.seg + i * self.inp,
            (Some(s), None) => s * self.seg,
            (None, Some(i)) => i * self.inp,
            (None, None) => panic!("a batch with neither labeled nor unlabeled images"),
        }
    }
}

/// The loss terms of one iteration as tensors (before backward), each absent without its batch.
#[derive(Debug, Clone, Default)]
pub struct Losses {
    /// `L_seg` of the labeled batch.
    pub seg: Option<Tensor<1>>,
    /// `L_inp` of the unlabeled batch.
    pub inp: Option<Tensor<1>>,
    /// BCE + Dice of the labeled batch's stage-1 logits (only when asked for).
    pub coarse: Option<Tensor<1>>,
}

/// The two loss terms of SPEC.md: `L_seg` of the labeled batch and `L_inp` of the unlabeled
/// batch, each absent without its batch. See [`losses_with`].
pub fn losses(model: &Scl, batch: &Batch) -> (Option<Tensor<1>>, Option<Tensor<1>>) {
    let l = losses_with(model, batch, false);
    (l.seg, l.inp)
}

/// The loss terms of one iteration, with the stage-1 loss of the labeled batch when `coarse`
/// (two-stage networks only).
///
/// With equally sized labeled and unlabeled batches the two forward passes of SPEC.md run as
/// one pass over both batches with batch-norm statistics kept per batch (the same computation,
/// and about 40% faster on the CPU backend, see [`crate::model::norm`]); the inpainting decoder
/// runs on the unlabeled half only. Otherwise the passes run one after the other.
pub fn losses_with(model: &Scl, batch: &Batch, coarse: bool) -> Losses {
    let coarse = coarse && model.config.two_stage;
    match (&batch.labeled, &batch.unlabeled) {
        (Some((xl, y)), Some(xu)) if xl.dims()[0] == xu.dims()[0] && model.config.two_stage => {
            let n = xl.dims()[0];
            let x = Tensor::cat(vec![xl.clone(), xu.clone()], 0);
            let (mut stage1, coarse_loss) = if coarse {
                let (c, logits) = model.coarse_tracked(x.clone(), 2);
                let lab = logits.slice(s![0..n, .., .., ..]);
                (c, Some(segmentation_loss(&[lab], y.clone())))
            } else {
                (model.coarse(x.clone(), 2), None)
            };
            if let Some(m) = &batch.oracle_masks {
                let lab = stage1.mask.slice(s![0..n, .., .., ..]);
                let mask = Tensor::cat(vec![lab, m.clone()], 0);
                stage1.masked = erase(x, &mask);
                stage1.mask = mask;
            }
            let fused = model.fuse(&stage1.features, stage1.masked, 2);
            let seg = model.seg.forward(&fused.g, true, 2);
            let g_u = fused.g.map(|t| t.slice(s![n..2 * n, .., .., ..]));
            let inp = model
                .inp
                .as_ref()
                .expect("two-stage network")
                .forward(&g_u, true, 1);
            let half = |lo: usize| -> Vec<Tensor<4>> {
                seg.iter()
                    .map(|t| t.clone().slice(s![lo..lo + n, .., .., ..]))
                    .collect()
            };
            Losses {
                seg: Some(segmentation_loss(&half(0), y.clone())),
                inp: Some(inpainting_loss(&inp, &half(n), xu.clone())),
                coarse: coarse_loss,
            }
        }
        _ => {
            let (seg, coarse) = match &batch.labeled {
                // One pass gives both: stage 1 with its gradient, then the fine stage on it.
                Some((x, y)) if coarse => {
                    let (stage1, logits) = model.coarse_tracked(x.clone(), 1);
                    let fused = model.fuse(&stage1.features, stage1.masked, 1);
                    let seg = model.seg.forward(&fused.g, true, 1);
                    (
                        Some(segmentation_loss(&seg, y.clone())),
                        Some(segmentation_loss(&[logits], y.clone())),
                    )
                }
                _ => (labeled_loss(model, batch), None),
            };
            Losses {
                seg,
                inp: unlabeled_loss(model, batch),
                coarse,
            }
        }
    }
}

/// The same losses computed with two separate forward passes, exactly as SPEC.md words it
/// (for tests and comparison; no oracle).
pub fn losses_two_passes(model: &Scl, batch: &Batch) -> (Option<Tensor<1>>, Option<Tensor<1>>) {
    (labeled_loss(model, batch), unlabeled_loss(model, batch))
}

/// `L_seg` of the labeled batch on its own pass.
fn labeled_loss(model: &Scl, batch: &Batch) -> Option<Tensor<1>> {
    batch.labeled.as_ref().map(|(x, y)| {
        let out = model.forward_aligned(x.clone(), FineParts::SEGMENT_DEEP);
        segmentation_loss(&out.seg, y.clone())
    })
}

/// `L_inp` of the unlabeled batch on its own pass (two-stage networks only).
fn unlabeled_loss(model: &Scl, batch: &Batch) -> Option<Tensor<1>> {
    batch
        .unlabeled
        .as_ref()
        .filter(|_| model.config.two_stage)
        .map(|x| {
            let out = model.forward_aligned(x.clone(), FineParts::ALL);
            inpainting_loss(&out.inp, &out.seg, x.clone())
        })
}

/// Runs one iteration with SPEC.md's loss weights: forward, loss, backward and an SGD step at
/// learning rate `lr`. Returns the updated model and the loss terms.
pub fn step(model: Scl, optim: &mut ModuleOptimizer, batch: &Batch, lr: f64) -> (Scl, LossTerms) {
    step_weighted(model, optim, batch, lr, LossWeights::SPEC)
}

/// [`step`] with other loss weights (the lambda_inp ablation).
pub fn step_weighted(
    model: Scl,
    optim: &mut ModuleOptimizer,
    batch: &Batch,
    lr: f64,
    weights: LossWeights,
) -> (Scl, LossTerms) {
    let Losses { seg, inp, coarse } = losses_with(&model, batch, weights.coarse > 0.0);
    let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
    let mut terms = LossTerms {
        seg: seg.as_ref().map(scalar).unwrap_or(0.0),
        inp: inp.as_ref().map(scalar).unwrap_or(0.0),
        coarse: coarse.as_ref().map(scalar).unwrap_or(0.0),
        total: 0.0,
    };
    let mut total = weights.total(seg, inp);
    if let Some(c) = coarse {
        total = total + c * weights.coarse;
    }
    terms.total = scalar(&total);
    let grads = GradientsParams::from_grads(total.backward(), &model);
    let model = optim.step(lr, model, grads);
    (model, terms)
}
