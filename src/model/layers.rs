//! Small building blocks shared by the encoder, the decoders and the fusion modules.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::fused_norm::Act;
use super::norm::BatchNorm;

/// He-normal initialisation with fan-out, as torchvision's ResNets use for every convolution
/// of the encoder (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`).
pub(crate) fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: core::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// PyTorch's default `nn.Conv2d` initialisation: `kaiming_uniform_(a = sqrt(5))` for the weight,
/// i.e. `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, and the same bound for the bias. The decoders,
/// heads and fusion modules use it (the authors' and the PyTorch reference's `nn.Conv2d`s are
/// not re-initialised). Burn's `KaimingUniform` bound is `sqrt(3) * gain / sqrt(fan_in)`, so
/// gain `1/sqrt(3)` gives PyTorch's bound; Burn initialises the bias with the same
/// initializer and the same fan-in, which is PyTorch's bias rule too.
pub(crate) fn pytorch_default() -> Initializer {
    Initializer::KaimingUniform {
        gain: 1.0 / 3f64.sqrt(),
        fan_out_only: false,
    }
}

/// A `k x k` convolution with "same" padding for odd `k` and PyTorch's default initialisation.
pub(crate) fn conv(
    in_ch: usize,
    out_ch: usize,
    k: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    conv_init(in_ch, out_ch, k, stride, bias, pytorch_default(), device)
}

/// A bias-free encoder convolution ("same" padding for odd `k`) initialised as torchvision's
/// ResNets do ([`kaiming_fan_out`]).
pub(crate) fn resnet_conv(
    in_ch: usize,
    out_ch: usize,
    k: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    conv_init(in_ch, out_ch, k, stride, false, kaiming_fan_out(), device)
}

fn conv_init(
    in_ch: usize,
    out_ch: usize,
    k: usize,
    stride: usize,
    bias: bool,
    init: Initializer,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([in_ch, out_ch], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .with_initializer(init)
        .init(device)
}

/// Batch normalisation with PyTorch's defaults (eps 1e-5, momentum 0.1).
pub(crate) fn bn(ch: usize, device: &Device) -> BatchNorm {
    BatchNorm::new(ch, device)
}

/// Conv (no bias) + BatchNorm + ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch normalisation.
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    /// A `k x k`, stride-1 Conv-BN-ReLU.
    pub fn new(in_ch: usize, out_ch: usize, k: usize, device: &Device) -> Self {
        Self {
            conv: conv(in_ch, out_ch, k, 1, false, device),
            bn: bn(out_ch, device),
        }
    }

    /// Applies the block (`groups`: independent sub-batches for batch norm).
    pub fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        self.bn.forward_act(self.conv.forward(x), groups, Act::Relu)
    }
}

/// Bilinear x2 upsampling with half-pixel centres (`align_corners = false`, PyTorch's default
/// for `F.interpolate`/`nn.Upsample`; SPEC.md does not fix it).
///
/// On the CPU (Flex) this is Burn's `interpolate`, one kernel forward and one backward. On the
/// GPU backends it is [`upsample2_elementwise`], the same function built from elementwise
/// operations, because the WebGPU/CubeCL backends have no bilinear-interpolate backward (which
/// in-browser fine-tuning needs); on Flex that formulation's slices, concatenations and stack
/// cost several copies of every decoder feature map.
pub fn upsample2(x: Tensor<4>) -> Tensor<4> {
    if is_cpu(&x.device()) {
        let [_, _, h, w] = x.dims();
        resize_bilinear(x, 2 * h, 2 * w)
    } else {
        upsample2_elementwise(x)
    }
}

/// Whether `device` is Burn's Flex CPU backend (with or without autodiff).
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// [`upsample2`] from elementwise tensor operations: for a factor of exactly 2 each output
/// pixel is `0.75 * nearest + 0.25 * next-nearest` input pixel (edges replicated), separably
/// along W then H. Differentiable on every backend.
pub fn upsample2_elementwise(x: Tensor<4>) -> Tensor<4> {
    upsample2_axis(upsample2_axis(x, 3), 2)
}

fn upsample2_axis(x: Tensor<4>, axis: usize) -> Tensor<4> {
    let dims = x.dims();
    let n = dims[axis];
    let (prev, next) = if n == 1 {
        (x.clone(), x.clone())
    } else {
        let first = x.clone().narrow(axis, 0, 1);
        let last = x.clone().narrow(axis, n - 1, 1);
        (
            Tensor::cat(vec![first, x.clone().narrow(axis, 0, n - 1)], axis),
            Tensor::cat(vec![x.clone().narrow(axis, 1, n - 1), last], axis),
        )
    };
    let even = x.clone() * 0.75 + prev * 0.25;
    let odd = x * 0.75 + next * 0.25;
    let mut out = dims;
    out[axis] = 2 * n;
    Tensor::stack::<5>(vec![even, odd], axis + 1).reshape(out)
}

/// Bilinear resize with half-pixel centres.
pub fn resize_bilinear(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    )
}
