//! The ResNet encoder of SPEC.md "The network" (torchvision's ResNet-18/34 without avgpool and
//! fc): e1 from the stem, e2..e5 from layer1..layer4. Input RGB in [0, 1], no normalisation.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

use super::encoder::Features;
use super::fused_norm::Act;
use super::layers::{bn, resnet_conv};
use super::norm::BatchNorm;
use crate::config::EncoderKind;

/// The 1x1 projection of a residual branch whose shape changes (torchvision's `downsample`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1x1 strided convolution, no bias.
    pub conv: Conv2d,
    /// Its batch normalisation.
    pub bn: BatchNorm,
}

/// torchvision's `BasicBlock`: two 3x3 Conv-BN, a residual connection, ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution (carries the stride).
    pub conv1: Conv2d,
    /// First batch normalisation.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Second batch normalisation.
    pub bn2: BatchNorm,
    /// Projection of the identity branch when the stride or width changes.
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: resnet_conv(in_ch, out_ch, 1, stride, device),
            bn: bn(out_ch, device),
        });
        Self {
            conv1: resnet_conv(in_ch, out_ch, 3, stride, device),
            bn1: bn(out_ch, device),
            conv2: resnet_conv(out_ch, out_ch, 3, 1, device),
            bn2: bn(out_ch, device),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone()), groups),
            None => x.clone(),
        };
        let y = self
            .bn1
            .forward_act(self.conv1.forward(x), groups, Act::Relu);
        let y = self.bn2.forward(self.conv2.forward(y), groups);
        relu(y + identity)
    }
}

/// ResNet encoder giving the five feature maps e1..e5 of SPEC.md.
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7x7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// Stem batch normalisation.
    pub bn1: BatchNorm,
    /// Stage 1 (width w, H/4).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (2w, H/8).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (4w, H/16).
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (8w, H/32).
    pub layer4: Vec<BasicBlock>,
}

impl ResNet {
    /// A ResNet-18/34 of base width `w` with fresh (He-normal) weights.
    pub fn new(depth: EncoderKind, w: usize, device: &Device) -> Self {
        let [c1, c3, c4, c5] = [w, 2 * w, 4 * w, 8 * w];
        let blocks = depth.blocks();
        let stage = |in_ch: usize, out_ch: usize, n: usize, stride: usize| -> Vec<BasicBlock> {
            (0..n)
                .map(|i| {
                    if i == 0 {
                        BasicBlock::new(in_ch, out_ch, stride, device)
                    } else {
                        BasicBlock::new(out_ch, out_ch, 1, device)
                    }
                })
                .collect()
        };
        Self {
            conv1: resnet_conv(3, c1, 7, 2, device),
            bn1: bn(c1, device),
            layer1: stage(c1, c1, blocks[0], 1),
            layer2: stage(c1, c3, blocks[1], 2),
            layer3: stage(c3, c4, blocks[2], 2),
            layer4: stage(c4, c5, blocks[3], 2),
        }
    }

    /// Runs the encoder on `x` (`[B, 3, H, W]`, RGB in [0, 1], H and W multiples of 32);
    /// `groups` independent sub-batches for batch norm (see [`BatchNorm`]).
    pub fn forward(&self, x: Tensor<4>, groups: usize) -> Features {
        let run = |blocks: &[BasicBlock], x: Tensor<4>| {
            blocks.iter().fold(x, |x, b| b.forward(x, groups))
        };
        let e1 = self
            .bn1
            .forward_act(self.conv1.forward(x), groups, Act::Relu);
        let pooled = max_pool2d(
            e1.clone(),
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        let e2 = run(&self.layer1, pooled);
        let e3 = run(&self.layer2, e2.clone());
        let e4 = run(&self.layer3, e3.clone());
        let e5 = run(&self.layer4, e4.clone());
        [e1, e2, e3, e4, e5]
    }
}
