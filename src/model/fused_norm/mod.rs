//! Batch normalisation and its activation as one backend op on the Flex CPU backend (issue 8;
//! the layers of SPEC.md "The network" are Conv-BN-ReLU, MobileNetV2's Conv-BN-ReLU6 and
//! Conv-BN).
//!
//! Written with Burn's tensor ops, a training batch norm plus ReLU6 is ~10 full-size passes
//! forward and ~15 backward (centring, squaring, scaling, shifting, two ReLUs and each one's
//! gradient), which made Flex's serial-then-parallel elementwise passes ~35% of a MobileNetV2
//! training iteration. Here the statistics read each plane once from memory (two loops over it,
//! the second in cache), the normalised and clamped output is one more pass, and the backward
//! is the closed form (PyTorch's `batch_norm_backward`): the two per-channel sums read each plane
//! once (again two loops in cache) and one pass writes the input gradient.
//!
//! It is a Burn backend extension (`#[backend_extension]`) implemented for `Flex` (the kernels,
//! `flex.rs`) and for `Autodiff<B>` (the backward step, `autodiff.rs`). Other backends (WebGPU)
//! keep the composed ops of `norm.rs`: [`supported`] says whether a tensor can take this path.
//! `SCL_FUSED_NORM=0` turns it off, for side-by-side timing in one binary.

mod autodiff;
mod flex;
mod kernels;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::relu;

/// The activation folded into the op: the output is clamped to `[lo, hi]` and the gradient
/// passes where `lo < y < hi` (PyTorch's `relu`/`hardtanh` backward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// No activation.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Act {
    /// The clamp bounds `(lo, hi)`.
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Act::Identity => (f32::NEG_INFINITY, f32::INFINITY),
            Act::Relu => (0.0, f32::INFINITY),
            Act::Relu6 => (0.0, 6.0),
        }
    }

    /// The activation from Burn's tensor ops (the path of backends without the fused op).
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Act::Identity => x,
            Act::Relu => relu(x),
            Act::Relu6 => super::mobilenet::relu6(x),
        }
    }
}

/// The op, dispatched to Flex or to autodiff over Flex.
#[backend_extension(Flex, Autodiff)]
pub trait FusedNorm: Backend {
    /// Per-group, per-channel mean and biased variance of `x` (`[B, C, H, W]`) split into
    /// `groups` equal sub-batches: `[groups, 2, C]` (means, then variances). No gradient.
    fn bn_stats(x: FloatTensor<Self>, groups: usize) -> FloatTensor<Self>;

    /// `clamp((x - mean) / sqrt(var + eps) * gamma + beta, lo, hi)` with `stats` `[G, 2, C]`
    /// from [`FusedNorm::bn_stats`] (sub-batch `g` uses row `g`) or the running statistics
    /// (`G = 1`). `batch`: the statistics are `x`'s own, so the input gradient includes their
    /// dependence on `x`; otherwise they are constants.
    #[allow(clippy::too_many_arguments)]
    fn bn_act(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        lo: f32,
        hi: f32,
        batch: bool,
    ) -> FloatTensor<Self>;
}

/// The backward kernel, called by the autodiff step on the inner backend (not dispatched).
pub trait FusedNormBackward: Backend {
    /// Gradients `[dx, dgamma, dbeta]` of [`FusedNorm::bn_act`] given its input `x`, its output
    /// `y` and the output gradient `grad`.
    #[allow(clippy::too_many_arguments)]
    fn bn_act_backward(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
        lo: f32,
        hi: f32,
        batch: bool,
    ) -> [FloatTensor<Self>; 3];
}

/// Whether `x` can take the fused path: a non-empty f32 tensor on the Flex device (autodiff or
/// not), and `SCL_FUSED_NORM` is not `0`.
pub fn supported(x: &Tensor<4>) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var("SCL_FUSED_NORM").map_or(true, |v| v != "0"));
    on && x.dtype() == DType::F32
        && x.shape().num_elements() > 0
        && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// [`FusedNorm::bn_stats`] on tensors: `[groups, 2, C]`.
pub fn stats(x: Tensor<4>, groups: usize) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as FusedNorm>::bn_stats(x.into_dispatch(), groups))
}

/// [`FusedNorm::bn_act`] on tensors.
pub fn bn_act(
    x: Tensor<4>,
    stats: Tensor<3>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
    act: Act,
    batch: bool,
) -> Tensor<4> {
    let (lo, hi) = act.bounds();
    Tensor::from_dispatch(<Dispatch as FusedNorm>::bn_act(
        x.into_dispatch(),
        stats.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        eps,
        lo,
        hi,
        batch,
    ))
}
