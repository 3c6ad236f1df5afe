//! AdaBN (Li et al., 2016): the batch-norm running statistics re-estimated on the new site's
//! images, with no gradient. Each batch runs the network in training mode (batch statistics)
//! in the cumulative-average mode of [`CumulativeStats`], so that afterwards every running
//! statistic is the plain mean of the batch statistics its layer saw on the new images
//! (PyTorch's `momentum=None`), whatever it was before. Both encoder passes of the two-stage
//! network (image and erased image) contribute, as in training.

use burn::prelude::*;

use crate::model::norm::CumulativeStats;
use crate::model::{FineParts, Scl};

/// Runs one batch (`x` on `model`'s autodiff device, whole images at the working size).
///
/// The pass runs on a `no_grad` clone: no tensor is tracked, so no autodiff graph is recorded.
/// (A forward of the trainable model without a backward leaves its graph in Burn's autodiff
/// server: 77 batches of 4 at 160 px grew to 11.8 GB.) The clone shares the running statistics
/// with `model` (`RunningState` is shared between clones), so the updates land in `model`.
pub fn batch(model: &Scl, x: Tensor<4>, stats: &mut CumulativeStats) {
    let untracked = model.clone().no_grad();
    stats.run(|| {
        let out = untracked.forward_aligned(x.detach(), FineParts::MASK_ONLY);
        drop(out);
    });
}
