//! Network configuration and its presets.

use burn::prelude::*;

/// Depth of the ResNet encoder (torchvision's BasicBlock ResNets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EncoderDepth {
    /// ResNet-18: 2, 2, 2, 2 basic blocks.
    ResNet18,
    /// ResNet-34: 3, 4, 6, 3 basic blocks (the paper's encoder).
    ResNet34,
}

impl EncoderDepth {
    /// Number of basic blocks in layer1..layer4.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            EncoderDepth::ResNet18 => [2, 2, 2, 2],
            EncoderDepth::ResNet34 => [3, 4, 6, 3],
        }
    }

    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            EncoderDepth::ResNet18 => "resnet18",
            EncoderDepth::ResNet34 => "resnet34",
        }
    }
}

/// How the features of the original image (`s`) and of the masked image (`p`) are fused at
/// each of the five levels before both decoders read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fusion {
    /// Gated feature fusion (SPEC.md, the paper's method).
    Gff,
    /// Ablation: `s + p`.
    Add,
    /// Ablation: `Conv1x1(2C -> C)([s, p])`.
    Concat,
}

impl Fusion {
    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Gff => "gff",
            Fusion::Add => "add",
            Fusion::Concat => "concat",
        }
    }
}

/// Configuration of the SCL network.
///
/// Channel widths follow SPEC.md with the base width `w` in place of 64: the encoder levels
/// e1..e5 have `w, w, 2w, 4w, 8w` channels, the decoder blocks D5..D1 output `8w, 4w, 2w, w, w`,
/// and the final heads reduce `w -> w/2 -> 1` (segmentation) or `w -> w/2 -> 3` (inpainting).
/// `w` must be a positive multiple of 8 so that every `C/4` reduction is whole.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Encoder depth.
    #[config(default = "EncoderDepth::ResNet34")]
    pub depth: EncoderDepth,
    /// Base width `w` (64 in the paper).
    #[config(default = 64)]
    pub width: usize,
    /// Fusion of the two encoder passes.
    #[config(default = "Fusion::Gff")]
    pub fusion: Fusion,
    /// Dropout probability of the segmentation heads (0.1 in the paper).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// The SCL network (true) or the paper's supervised baseline, a single-stage
    /// encoder + segmentation decoder with the same blocks and side heads (false).
    #[config(default = true)]
    pub two_stage: bool,
}

/// Names of the built-in presets, in the order the CLI lists them.
pub const PRESETS: [&str; 4] = ["paper", "r34-w32", "r18-w16", "r18-w8"];

impl ModelConfig {
    /// A named preset:
    /// - `paper`: ResNet-34, width 64, GFF (49.04 M parameters).
    /// - `r34-w32`: ResNet-34, width 32 (12.3 M).
    /// - `r18-w16`: ResNet-18, width 16 (2.44 M).
    /// - `r18-w8`: ResNet-18, width 8 (0.61 M), for quick in-browser experiments.
    pub fn preset(name: &str) -> Result<Self, crate::Error> {
        let cfg = match name {
            "paper" => ModelConfig::new(),
            "r34-w32" => ModelConfig::new().with_width(32),
            "r18-w16" => ModelConfig::new()
                .with_depth(EncoderDepth::ResNet18)
                .with_width(16),
            "r18-w8" => ModelConfig::new()
                .with_depth(EncoderDepth::ResNet18)
                .with_width(8),
            other => {
                return Err(crate::Error::Config(format!(
                    "unknown preset '{other}'; known presets: {}",
                    PRESETS.join(", ")
                )));
            }
        };
        Ok(cfg)
    }

    /// Checks that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.width == 0 || !self.width.is_multiple_of(8) {
            return Err(crate::Error::Config(format!(
                "width must be a positive multiple of 8, got {}",
                self.width
            )));
        }
        if self.width > 512 {
            return Err(crate::Error::Config(format!(
                "width {} is larger than this tool supports (512)",
                self.width
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(crate::Error::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// Channels of the encoder levels e1..e5.
    pub fn encoder_channels(&self) -> [usize; 5] {
        let w = self.width;
        [w, w, 2 * w, 4 * w, 8 * w]
    }

    /// A short human-readable description, e.g. `resnet34 w64 gff`.
    pub fn describe(&self) -> String {
        let kind = if self.two_stage {
            self.fusion.name()
        } else {
            "single-stage"
        };
        format!("{} w{} {kind}", self.depth.name(), self.width)
    }
}
