//! MobileNetV2 (width 1.0) as the shared encoder: SPEC.md "ImageNet-initialised light encoder".
//!
//! torchvision's `features.0..17` (the 1x1-to-1280 `features.18` is not used), tapped after
//! `features.1` (16 channels, H/2), `.3` (24, H/4), `.6` (32, H/8), `.13` (96, H/16) and `.17`
//! (320, H/32) for e1..e5. Optionally a 1x1 Conv-BN-ReLU adapter reduces e5's 320 channels
//! (GFF5 and D5 scale with the square of e5's channels; see `ModelConfig::e5_channels`).
//!
//! Input normalisation: the encoder subtracts ImageNet's mean (0.485, 0.456, 0.406) and divides
//! by its std (0.229, 0.224, 0.225) itself, so callers pass RGB in [0, 1] as for the ResNet
//! encoder, and the erased pixels of the masked image are 0 *before* normalisation, as in the
//! paper. SPEC.md's "no normalisation" is the authors' random/ResNet setting; an encoder whose
//! weights were learnt on normalised ImageNet images needs the same statistics to start from
//! what it learnt. The ResNet encoder is unchanged (no normalisation).
//!
//! Fresh weights follow torchvision's MobileNetV2 initialisation (He-normal fan-out convs, BN 1/0);
//! `crate::pretrained::import_mobilenet_v2` loads the ImageNet weights.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::encoder::Features;
use super::fused_norm::Act;
use super::layers::{ConvBnRelu, bn, kaiming_fan_out};
use super::norm::BatchNorm;

/// Channels of the five taps e1..e5 (before the optional e5 adapter).
pub const TAP_CHANNELS: [usize; 5] = [16, 24, 32, 96, 320];

/// Index (in torchvision's `features`) of the last block of each tap.
pub const TAPS: [usize; 5] = [1, 3, 6, 13, 17];

/// torchvision's inverted-residual settings: expansion t, output channels c, repeats n, stride s
/// of the first repeat.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// ImageNet statistics (RGB) the pretrained weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A convolution (no bias) and its batch norm; the activation (ReLU6 or none) is the caller's.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch normalisation.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        let p = k / 2;
        let conv = Conv2dConfig::new([in_ch, out_ch], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_groups(groups)
            .with_bias(false)
            .with_initializer(kaiming_fan_out())
            .init(device);
        Self {
            conv,
            bn: bn(out_ch, device),
        }
    }

    fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x), groups)
    }

    fn forward_relu6(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        self.bn
            .forward_act(self.conv.forward(x), groups, Act::Relu6)
    }
}

/// `min(max(x, 0), 6)`, written as `relu(x) - relu(x - 6)`: the same function and gradient
/// (1 on (0, 6), 0 elsewhere), from two native ReLUs. Burn's `clamp` lowers to `mask_fill`
/// in both passes, which on the Flex CPU backend took 28% of a MobileNetV2 training iteration
/// (`scripts/perf_kinds.py`).
pub fn relu6(x: Tensor<4>) -> Tensor<4> {
    relu(x.clone()) - relu(x - 6.0)
}

/// torchvision's `InvertedResidual`: 1x1 expansion (absent when t = 1) + ReLU6, 3x3 depthwise
/// (carries the stride) + ReLU6, 1x1 linear projection; a residual when the shape is kept.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1x1 expansion to `t * in` channels (`conv.0`/`conv.1` in torchvision's flat layout).
    pub expand: Option<ConvBn>,
    /// 3x3 depthwise convolution.
    pub depthwise: ConvBn,
    /// 1x1 projection, no activation.
    pub project: ConvBn,
    /// Whether the input is added to the output (stride 1 and same channels).
    #[module(skip)]
    pub residual: bool,
}

impl InvertedResidual {
    fn new(in_ch: usize, out_ch: usize, stride: usize, t: usize, device: &Device) -> Self {
        let hidden = in_ch * t;
        Self {
            expand: (t != 1).then(|| ConvBn::new(in_ch, hidden, 1, 1, 1, device)),
            depthwise: ConvBn::new(hidden, hidden, 3, stride, hidden, device),
            project: ConvBn::new(hidden, out_ch, 1, 1, 1, device),
            residual: stride == 1 && in_ch == out_ch,
        }
    }

    fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => e.forward_relu6(x.clone(), groups),
            None => x.clone(),
        };
        let h = self.depthwise.forward_relu6(h, groups);
        let y = self.project.forward(h, groups);
        if self.residual { y + x } else { y }
    }
}

/// The MobileNetV2 encoder.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// `features.0`: 3x3 stride-2 Conv-BN-ReLU6, 3 -> 32.
    pub stem: ConvBn,
    /// `features.1..=17`.
    pub blocks: Vec<InvertedResidual>,
    /// Optional 1x1 Conv-BN-ReLU on e5 (320 -> `e5_channels`); not ImageNet-initialised.
    pub adapter: Option<ConvBnRelu>,
}

impl MobileNetV2 {
    /// A fresh encoder; `e5_channels` other than 320 adds the adapter.
    pub fn new(e5_channels: usize, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut cin = 32;
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                blocks.push(InvertedResidual::new(
                    cin,
                    c,
                    if i == 0 { s } else { 1 },
                    t,
                    device,
                ));
                cin = c;
            }
        }
        Self {
            stem: ConvBn::new(3, 32, 3, 2, 1, device),
            blocks,
            adapter: (e5_channels != TAP_CHANNELS[4])
                .then(|| ConvBnRelu::new(TAP_CHANNELS[4], e5_channels, 1, device)),
        }
    }

    /// e1..e5 of `x` (`[B, 3, H, W]`, RGB in [0, 1], sides multiples of 32).
    pub fn forward(&self, x: Tensor<4>, groups: usize) -> Features {
        let mut h = self.stem.forward_relu6(imagenet_normalise(x), groups);
        let mut taps = Vec::with_capacity(5);
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(h, groups);
            if TAPS.contains(&(i + 1)) {
                taps.push(h.clone());
            }
        }
        if let Some(a) = &self.adapter {
            let e5 = taps.pop().expect("five taps");
            taps.push(a.forward(e5, groups));
        }
        taps.try_into().expect("five taps")
    }
}

/// `(x - mean) / std` per channel with ImageNet's statistics: the encoder's input as
/// torchvision's weights expect it (`x`: `[B, 3, H, W]`, RGB in [0, 1]).
pub fn imagenet_normalise(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let stat = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device).reshape([1, 3, 1, 1]);
    (x - stat(IMAGENET_MEAN)) / stat(IMAGENET_STD)
}
