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

use std::cell::RefCell;
use std::collections::HashMap;

use burn::module::{Flag, Param, ParamId, RunningState};
use burn::prelude::*;

use super::fused_norm::{self, Act};
use super::network::untracked_on;

thread_local! {
    static CUMULATIVE: RefCell<Option<HashMap<ParamId, usize>>> = const { RefCell::new(None) };
    static BATCH_STATISTICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every batch norm on this thread normalising with batch statistics and
/// updating its running statistics, on any device: AdaBN's pass on an inference (non-autodiff)
/// network. (A forward on an autodiff device without a backward leaves Burn's autodiff graph
/// registry holding every step of it: measured 2.4 MiB per pass, never freed.)
pub fn with_batch_statistics<R>(f: impl FnOnce() -> R) -> R {
    struct Back(bool);
    impl Drop for Back {
        fn drop(&mut self) {
            BATCH_STATISTICS.with(|b| b.set(self.0));
        }
    }
    let _back = Back(BATCH_STATISTICS.with(|b| b.replace(true)));
    f()
}

/// Cumulative-average mode of the running statistics (AdaBN, `crate::adapt::adabn`): while
/// [`CumulativeStats::run`] runs, the `k`-th update (from 0) that a batch-norm layer receives
/// uses momentum `1 / (k + 1)` instead of the layer's own, so after `n` updates its running
/// statistics are the plain mean of the `n` batch statistics (PyTorch's `momentum=None`),
/// whatever they were before. Updates are counted per layer, across calls: a layer that runs
/// twice per pass (the encoder, on the image and the erased image) counts both.
#[derive(Debug, Default)]
pub struct CumulativeStats {
    counts: HashMap<ParamId, usize>,
}

impl CumulativeStats {
    /// Runs `f` (forward passes on this thread) in cumulative mode.
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Back<'a>(&'a mut HashMap<ParamId, usize>);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Some(c) = CUMULATIVE.with(|m| m.borrow_mut().take()) {
                    *self.0 = c;
                }
            }
        }
        let counts = std::mem::take(&mut self.counts);
        CUMULATIVE.with(|m| *m.borrow_mut() = Some(counts));
        let _back = Back(&mut self.counts);
        f()
    }

    /// Updates received so far, over all layers.
    pub fn updates(&self) -> usize {
        self.counts.values().sum()
    }
}

/// The momentum of the next running-statistics update of the layer whose scale is `id`.
fn momentum_for(id: ParamId, own: f64) -> f64 {
    CUMULATIVE.with(|m| match m.borrow_mut().as_mut() {
        Some(counts) => {
            let k = counts.entry(id).or_insert(0);
            *k += 1;
            1.0 / *k as f64
        }
        None => own,
    })
}

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
        self.forward_act(x, groups, Act::Identity)
    }

    /// [`BatchNorm::forward`] followed by `act`: one fused op on the Flex CPU backend
    /// ([`super::fused_norm`]), the composed ops elsewhere.
    pub fn forward_act(&self, x: Tensor<4>, groups: usize, act: Act) -> Tensor<4> {
        if fused_norm::supported(&x) {
            self.forward_fused(x, groups, act)
        } else {
            act.apply(self.forward_composed(x, groups))
        }
    }

    fn batch_statistics(&self, x: &Tensor<4>) -> bool {
        (x.device().is_autodiff() && self.training.is_enabled())
            || BATCH_STATISTICS.with(|b| b.get())
    }

    fn forward_fused(&self, x: Tensor<4>, groups: usize, act: Act) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        if !self.batch_statistics(&x) {
            let (mean, var) = self.running_on(&x.device());
            let stats = Tensor::stack::<2>(vec![mean, var], 0).reshape([1, 2, c]);
            return fused_norm::bn_act(x, stats, gamma, beta, self.epsilon, act, false);
        }
        let groups = group_count(b, groups);
        let stats = fused_norm::stats(x.clone(), groups);
        let y = fused_norm::bn_act(x, stats.clone(), gamma, beta, self.epsilon, act, true);
        let stats = stats.inner();
        let means = stats.clone().slice(s![.., 0..1, ..]).reshape([groups, c]);
        let vars = stats.slice(s![.., 1..2, ..]).reshape([groups, c]);
        self.update_running(means, vars, (b / groups * h * w) as f64, &y.device());
        y
    }

    /// The batch norm from Burn's tensor ops (backends without the fused op; public so that
    /// tests can check both paths).
    pub fn forward_composed(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let gamma = self.gamma.val().reshape([1, c, 1, 1]);
        let beta = self.beta.val().reshape([1, c, 1, 1]);
        if !self.batch_statistics(&x) {
            let (mean, var) = self.running_on(&x.device());
            let (mean, var) = (mean.reshape([1, c, 1, 1]), var.reshape([1, c, 1, 1]));
            let scale = gamma * (var + self.epsilon).sqrt().recip();
            let shift = beta - mean * scale.clone();
            return x * scale + shift;
        }
        let groups = group_count(b, groups);
        let per = b / groups;
        let n = (per * h * w) as f64;
        let xg = x.reshape([groups, per, c, h * w]);
        // Statistics per group and channel: [G, 1, C, 1], as sums scaled on the small tensor (a
        // `mean_dim`'s backward writes the full-size gradient three times, a `sum_dim`'s twice).
        let mean = xg.clone().sum_dim(3).sum_dim(1) / n;
        let held = mean.clone().detach();
        let centered = xg - held.clone();
        let var = centered.clone().square().sum_dim(3).sum_dim(1) / n;
        // y = (x - mean) * gamma / sqrt(var + eps) + beta, arranged so that the full-size
        // tensors meet only the small per-channel `scale` and `shift`: `centered` holds the
        // mean off the tape, and `held - mean` (exactly zero) carries the mean's gradient
        // (-scale per element) on the small tensor instead of through a full-size subtraction.
        // The variance's own dependence on the mean has zero gradient (the centred values sum to
        // zero), so the gradient is PyTorch's; the values are the same up to rounding.
        let scale = (var.clone() + self.epsilon).sqrt().recip() * gamma.reshape([1, 1, c, 1]);
        let shift = beta.reshape([1, 1, c, 1]) + (held - mean.clone()) * scale.clone();
        let y = (centered * scale + shift).reshape([b, c, h, w]);

        let means = mean.inner().reshape([groups, c]);
        let vars = var.inner().reshape([groups, c]);
        self.update_running(means, vars, n, &y.device());
        y
    }

    /// The running mean and variance on `device` (evaluation mode).
    fn running_on(&self, device: &Device) -> (Tensor<1>, Tensor<1>) {
        (
            self.running_mean.value().to_device(device),
            self.running_var.value().to_device(device),
        )
    }

    /// The running statistics' update from each group's mean and biased variance (`[G, C]`,
    /// off the autodiff tape) over `n` values: one PyTorch update per group, in order, with the
    /// unbiased variance.
    fn update_running(&self, means: Tensor<2>, vars: Tensor<2>, n: f64, device: &Device) {
        let [groups, c] = means.dims();
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let vars = vars * unbias;
        let inner = means.device();
        let mut rm = self.running_mean.value_sync().inner().to_device(&inner);
        let mut rv = self.running_var.value_sync().inner().to_device(&inner);
        for g in 0..groups {
            let m = momentum_for(self.gamma.id, self.momentum);
            let gm = means.clone().slice(s![g..g + 1, ..]).reshape([c]);
            let gv = vars.clone().slice(s![g..g + 1, ..]).reshape([c]);
            rm = rm * (1.0 - m) + gm * m;
            rv = rv * (1.0 - m) + gv * m;
        }
        self.running_mean.update(untracked_on(rm, device));
        self.running_var.update(untracked_on(rv, device));
    }
}

/// The sub-batches batch norm uses for `b` images asked to split into `groups`: `groups` when
/// it divides the batch, else one.
fn group_count(b: usize, groups: usize) -> usize {
    if groups > 0 && b.is_multiple_of(groups) {
        groups
    } else {
        1
    }
}
