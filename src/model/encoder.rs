//! The shared encoder of SPEC.md: one of the backbones below, giving the five feature maps
//! e1..e5 (H/2 .. H/32) that the fusion modules and both decoders read. A new backbone is a new
//! file (its module, `new` and `forward`) plus one arm in each match below.

use burn::prelude::*;

use super::mobilenet::MobileNetV2;
use super::resnet::ResNet;
use crate::config::{EncoderKind, ModelConfig};

/// The five encoder feature maps, finest first: e1 (H/2) .. e5 (H/32).
pub type Features = [Tensor<4>; 5];

/// The encoder (its weights are stored under `encoder.<Variant>.`).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Encoder {
    /// torchvision's ResNet-18/34 (SPEC.md's network).
    ResNet(ResNet),
    /// MobileNetV2 with ImageNet input normalisation (SPEC.md's light encoder).
    MobileNetV2(MobileNetV2),
}

impl Encoder {
    /// Builds the encoder of `config` with fresh weights.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        match config.encoder {
            EncoderKind::ResNet18 | EncoderKind::ResNet34 => {
                Encoder::ResNet(ResNet::new(config.encoder, config.width, device))
            }
            EncoderKind::MobileNetV2 => {
                Encoder::MobileNetV2(MobileNetV2::new(config.encoder_channels()[4], device))
            }
        }
    }

    /// Runs the encoder on `x` (`[B, 3, H, W]`, RGB in [0, 1], H and W multiples of 32);
    /// `groups` independent sub-batches for batch norm (see [`super::norm::BatchNorm`]).
    pub fn forward(&self, x: Tensor<4>, groups: usize) -> Features {
        match self {
            Encoder::ResNet(m) => m.forward(x, groups),
            Encoder::MobileNetV2(m) => m.forward(x, groups),
        }
    }

    /// The ResNet, if the encoder is one.
    pub fn as_resnet(&self) -> Option<&ResNet> {
        match self {
            Encoder::ResNet(m) => Some(m),
            _ => None,
        }
    }

    /// The MobileNetV2, if the encoder is one.
    pub fn as_mobilenet(&self) -> Option<&MobileNetV2> {
        match self {
            Encoder::MobileNetV2(m) => Some(m),
            _ => None,
        }
    }
}
