//! AdaBN (Li et al., 2016): the batch-norm running statistics re-estimated on the new site's
//! images, with no gradient. Each batch runs the inference network with its batch norms on
//! batch statistics (dropout off, as at inference) in the cumulative-average mode of
//! [`CumulativeStats`], so that afterwards every running
//! statistic is the plain mean of the batch statistics its layer saw on the new images
//! (PyTorch's `momentum=None`), whatever it was before. Both encoder passes of the two-stage
//! network (image and erased image) contribute, as in training.

use burn::prelude::*;

use crate::model::norm::{CumulativeStats, with_batch_statistics};
use crate::model::{FineParts, Scl};

/// Runs one batch (`x` on `model`'s device, whole images at the working size) through the
/// inference network `model` with batch statistics ([`with_batch_statistics`]); the running
/// statistics it updates are `model`'s own (`RunningState` is shared between clones).
///
/// The pass runs on the plain (non-autodiff) device: a forward on an autodiff device that no
/// backward follows stays registered in Burn's autodiff graph registry for good (measured: a
/// `no_grad` clone on the autodiff device kept 2.4 MiB per pass; 77 batches of 4 at 160 px of
/// the tracked network grew to 11.8 GB).
pub fn batch(model: &Scl, x: Tensor<4>, stats: &mut CumulativeStats) {
    stats.run(|| {
        with_batch_statistics(|| drop(model.forward_aligned(x, FineParts::MASK_ONLY)));
    });
}
