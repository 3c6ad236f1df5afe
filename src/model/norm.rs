//! Batch normalisation with per-group batch statistics.
//!
//! SPEC.md trains on 4 labeled and 4 unlabeled images in *two* forward passes, so each batch-norm
//! layer normalises each half with its own statistics and updates its running statistics twice.
//! Running both halves as one batch of 8 with the statistics computed per group of 4 is the
//! same computation (convolutions, activations and dropout act per sample), and it is much
//! faster on the CPU backend: Burn's weight-gradient convolution for a batch of 4 falls on a
//! slow path, one of 8 does not. `groups` is that number of independent sub-batches; 1 is a
//! plain batch norm. The one difference: a layer that runs twice per pass (the encoder, on the
//! image and on the masked image) receives the same four running-statistics updates per
//! iteration, in the order labeled-image, unlabeled-image, labeled-masked, unlabeled-masked
//! instead of labeled-image, labeled-masked, unlabeled-image, unlabeled-masked.
//!
//! Parameter names (`gamma`, `beta`, `running_mean`, `running_var`) and semantics (eps 1e-5,
//! momentum 0.1, unbiased variance in the running estimate) follow PyTorch's `BatchNorm2d`.

use burn::module::{Flag, Param, RunningState};
use burn::prelude::*;

/// Batch normalisation over `[B, C, H, W]` with per-group statistics in training.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale.
    pub gamma: Param<Tensor<1>>,
    /// Shift.
    pub beta: Param<Tensor<1>>,
    /// Running mean (eval mode).
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance (eval mode).
    pub running_var: RunningState<Tensor<1>>,
    /// Momentum of the running statistics.
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f64,
    /// Whether the layer trains (batch statistics) on an autodiff device; cleared by
    /// `valid()` and `freeze()`.
    pub training: Param<Flag>,
}

impl BatchNorm {
    /// A batch norm over `c` channels (gamma 1, beta 0, running mean 0, running var 1).
    pub fn new(c: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([c], device)),
            beta: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            momentum: 0.1,
            epsilon: 1e-5,
            training: Param::from_bool(true),
        }
    }

    /// Normalises `x`. On an autodiff device (training) the statistics come from each of the
    /// `groups` equal sub-batches and the running statistics are updated once per group, in
    /// order; otherwise the running statistics are used.
    pub fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let gamma = self.gamma.val().reshape([1, c, 1, 1]);
        let beta = self.beta.val().reshape([1, c, 1, 1]);
        if !(x.device().is_autodiff() && self.training.is_enabled()) {
            let device = x.device();
            let mean = self
                .running_mean
                .value()
                .to_device(&device)
                .reshape([1, c, 1, 1]);
            let var = self
                .running_var
                .value()
                .to_device(&device)
                .reshape([1, c, 1, 1]);
            let scale = gamma * (var + self.epsilon).sqrt().recip();
            let shift = beta - mean * scale.clone();
            return x * scale + shift;
        }
        let groups = if groups > 0 && b % groups == 0 {
            groups
        } else {
            1
        };
        let per = b / groups;
        let n = (per * h * w) as f64;
        let xg = x.reshape([groups, per, c, h * w]);
        // Statistics per group and channel: [G, 1, C, 1].
        let mean = xg.clone().mean_dim(3).mean_dim(1);
        let centered = xg - mean.clone();
        let var = centered.clone().square().mean_dim(3).mean_dim(1);
        let y = centered * (var.clone() + self.epsilon).sqrt().recip();
        let y = y.reshape([b, c, h, w]) * gamma + beta;

        // Running statistics: one PyTorch update per group, with the unbiased variance.
        let m = self.momentum;
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let means = mean.detach().reshape([groups, c]);
        let vars = var.detach().reshape([groups, c]) * unbias;
        let device = y.device();
        let mut rm = self.running_mean.value_sync().to_device(&device);
        let mut rv = self.running_var.value_sync().to_device(&device);
        for g in 0..groups {
            let gm = means.clone().slice(s![g..g + 1, ..]).reshape([c]);
            let gv = vars.clone().slice(s![g..g + 1, ..]).reshape([c]);
            rm = rm * (1.0 - m) + gm * m;
            rv = rv * (1.0 - m) + gv * m;
        }
        self.running_mean.update(rm.detach());
        self.running_var.update(rv.detach());
        y
    }
}
