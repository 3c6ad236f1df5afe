//! One SCL training iteration (shared by the CLI trainer, the benchmark and the page's
//! fine-tuning): forward passes for a labeled and an unlabeled batch, the losses, one backward
//! pass and an SGD step.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::loss::{inpainting_loss, segmentation_loss, total_loss};
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
    /// `2 L_seg + L_inp`.
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
}

/// The loss graph of one iteration (before backward) and its three terms as tensors.
pub fn losses(model: &Scl, batch: &Batch) -> (Tensor<1>, Option<Tensor<1>>, Option<Tensor<1>>) {
    let seg = batch.labeled.as_ref().map(|(x, y)| {
        let out = model.forward_aligned(x.clone(), FineParts::SEGMENT_DEEP);
        segmentation_loss(&out.seg, y.clone())
    });
    let inp = batch.unlabeled.as_ref().map(|x| {
        let out = model.forward_aligned(x.clone(), FineParts::ALL);
        inpainting_loss(&out.inp, &out.seg, x.clone())
    });
    let device = batch
        .labeled
        .as_ref()
        .map(|(x, _)| x.device())
        .or_else(|| batch.unlabeled.as_ref().map(|x| x.device()))
        .expect("a batch with labeled or unlabeled images");
    let zero = || Tensor::<1>::zeros([1], &device);
    let total = total_loss(
        seg.clone().unwrap_or_else(zero),
        inp.clone().unwrap_or_else(zero),
    );
    (total, seg, inp)
}

/// Runs one iteration: forward, loss, backward and an SGD step at learning rate `lr`.
/// Returns the updated model and the loss terms.
pub fn step(model: Scl, optim: &mut ModuleOptimizer, batch: &Batch, lr: f64) -> (Scl, LossTerms) {
    let (total, seg, inp) = losses(&model, batch);
    let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
    let terms = LossTerms {
        seg: seg.as_ref().map(scalar).unwrap_or(0.0),
        inp: inp.as_ref().map(scalar).unwrap_or(0.0),
        total: scalar(&total),
    };
    let grads = GradientsParams::from_grads(total.backward(), &model);
    let model = optim.step(lr, model, grads);
    (model, terms)
}
