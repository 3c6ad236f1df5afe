//! Diagnostics that explain what the unlabeled branch does (logged per validation, see
//! `log.rs`): how strongly each loss pulls on the shared encoder. With the Dice of the stage-1
//! masks on the unlabeled images (the regions stage 2 erases; `validate.rs`) and the inpainting
//! loss itself, they say whether `L_inp` can teach the encoder anything.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::iteration::{Batch, losses};
use crate::model::Scl;

/// L2 norms of the gradients of `L_seg` and of `L_inp` (unweighted) with respect to the
/// encoder's parameters, on one batch, from two separate forward and backward passes (no
/// optimiser step). `None` for a term the batch or network does not have.
pub fn encoder_grad_norms(model: &Scl, batch: &Batch) -> (Option<f64>, Option<f64>) {
    let norm = |loss: Tensor<1>| -> f64 {
        let grads = GradientsParams::from_grads(loss.backward(), &model.encoder);
        let mut v = SumSquares { grads, sum: 0.0 };
        model.encoder.visit(&mut v);
        v.sum.sqrt()
    };
    let (seg, _) = losses(model, batch);
    let seg = seg.map(norm);
    let (_, inp) = losses(model, batch);
    let inp = inp.map(norm);
    (seg, inp)
}

struct SumSquares {
    grads: GradientsParams,
    sum: f64,
}

impl ModuleVisitor for SumSquares {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.square().sum().into_scalar::<f32>() as f64;
        }
    }
}
