//! Small building blocks shared by the encoder, the decoders and the fusion modules.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::norm::BatchNorm;

/// He-normal initialisation with fan-out, as torchvision's ResNets use for every convolution.
pub(crate) fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: core::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// A `k x k` convolution with "same" padding for odd `k`.
pub(crate) fn conv(
    in_ch: usize,
    out_ch: usize,
    k: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([in_ch, out_ch], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .with_initializer(kaiming_fan_out())
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
        relu(self.bn.forward(self.conv.forward(x), groups))
    }
}

/// Bilinear x2 upsampling with half-pixel centres (`align_corners = false`, PyTorch's default
/// for `F.interpolate`/`nn.Upsample`; SPEC.md does not fix it).
pub fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    resize_bilinear(x, 2 * h, 2 * w)
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
