//! Network configuration and its presets.

use burn::prelude::*;

/// The shared encoder's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EncoderKind {
    /// ResNet-18: 2, 2, 2, 2 basic blocks.
    ResNet18,
    /// ResNet-34: 3, 4, 6, 3 basic blocks (the paper's encoder).
    ResNet34,
    /// MobileNetV2 (width 1.0), the ImageNet-initialised light encoder (SPEC.md extension;
    /// `width` does not apply to it).
    MobileNetV2,
}

impl EncoderKind {
    /// All kinds, as the CLI lists them.
    pub const ALL: [EncoderKind; 3] = [
        EncoderKind::ResNet18,
        EncoderKind::ResNet34,
        EncoderKind::MobileNetV2,
    ];

    /// Number of basic blocks in layer1..layer4 of a ResNet (empty for other encoders).
    pub fn blocks(self) -> [usize; 4] {
        match self {
            EncoderKind::ResNet18 => [2, 2, 2, 2],
            EncoderKind::ResNet34 => [3, 4, 6, 3],
            EncoderKind::MobileNetV2 => [0; 4],
        }
    }

    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::ResNet18 => "resnet18",
            EncoderKind::ResNet34 => "resnet34",
            EncoderKind::MobileNetV2 => "mobilenetv2",
        }
    }

    /// Parses a CLI name (`resnet18`/`r18`, `resnet34`/`r34`, `mobilenetv2`/`mnv2`).
    pub fn parse(name: &str) -> Result<Self, crate::Error> {
        match name.to_ascii_lowercase().as_str() {
            "resnet18" | "r18" => Ok(EncoderKind::ResNet18),
            "resnet34" | "r34" => Ok(EncoderKind::ResNet34),
            "mobilenetv2" | "mnv2" | "mbv2" => Ok(EncoderKind::MobileNetV2),
            other => Err(crate::Error::Config(format!(
                "unknown encoder '{other}' (one of: {})",
                EncoderKind::ALL.map(|k| k.name()).join(", ")
            ))),
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
    /// Ablation (this project's): `s + Conv1x1(2C -> C)([s, p])`, the convolution starting at
    /// zero, so that the fused features start as the image's own and stay in the encoder's
    /// space (the shared segmentation decoder reads raw encoder features in stage 1).
    ConcatResidual,
}

impl Fusion {
    /// Every fusion, as the CLI lists them.
    pub const ALL: [Fusion; 4] = [
        Fusion::Gff,
        Fusion::Add,
        Fusion::Concat,
        Fusion::ConcatResidual,
    ];

    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Gff => "gff",
            Fusion::Add => "add",
            Fusion::Concat => "concat",
            Fusion::ConcatResidual => "concat-res",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self, crate::Error> {
        by_name(Fusion::ALL, Fusion::name, name, "fusion")
    }
}

/// The entry of `all` whose `name` is `input`, or an error naming the `what` and the choices.
pub(crate) fn by_name<T: Copy, const N: usize>(
    all: [T; N],
    name: fn(T) -> &'static str,
    input: &str,
    what: &str,
) -> Result<T, crate::Error> {
    all.into_iter().find(|&t| name(t) == input).ok_or_else(|| {
        crate::Error::Config(format!(
            "unknown {what} '{input}' (one of: {})",
            all.map(name).join(", ")
        ))
    })
}

/// Configuration of the SCL network.
///
/// Channel widths follow SPEC.md with the base width `w` in place of 64: the encoder levels
/// e1..e5 have `w, w, 2w, 4w, 8w` channels, the decoder blocks D5..D1 output `8w, 4w, 2w, w, w`,
/// and the final heads reduce `w -> w/2 -> 1` (segmentation) or `w -> w/2 -> 3` (inpainting).
/// `w` must be a positive multiple of 8 so that every `C/4` reduction is whole.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Encoder architecture.
    #[config(default = "EncoderKind::ResNet34")]
    pub encoder: EncoderKind,
    /// Base width `w` of a ResNet encoder (64 in the paper).
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
    /// Channels of e5 after a 1x1 Conv-BN-ReLU adapter on the encoder's last tap; `None`: no
    /// adapter (MobileNetV2 only; GFF5 and D5 grow with the square of e5's channels).
    pub e5_channels: Option<usize>,
    /// Output channels of the decoder blocks D5..D1; `None`: SPEC.md's rule, the encoder's
    /// e5..e1 channels.
    pub decoder_channels: Option<[usize; 5]>,
}

/// Names of the built-in presets, in the order the CLI lists them.
pub const PRESETS: [&str; 6] = ["paper", "r34-w32", "r18-w16", "r18-w8", "mnv2", "mnv2-lite"];

impl ModelConfig {
    /// A named preset:
    /// - `paper`: ResNet-34, width 64, GFF (49.04 M parameters).
    /// - `r34-w32`: ResNet-34, width 32 (12.3 M).
    /// - `r18-w16`: ResNet-18, width 16 (2.44 M).
    /// - `r18-w8`: ResNet-18, width 8 (0.61 M), for quick in-browser experiments.
    /// - `mnv2`: MobileNetV2 (ImageNet) taps, e5 reduced to 128 channels, decoders
    ///   96/32/24/16/16 as `../shared/bench/train_ref.py --arch mbv2`.
    /// - `mnv2-lite`: the same encoder, e5 reduced to 64 channels, decoders 64/24/16/16/16.
    pub fn preset(name: &str) -> Result<Self, crate::Error> {
        let cfg = match name {
            "paper" => ModelConfig::new(),
            "r34-w32" => ModelConfig::new().with_width(32),
            "r18-w16" => ModelConfig::new()
                .with_encoder(EncoderKind::ResNet18)
                .with_width(16),
            "r18-w8" => ModelConfig::new()
                .with_encoder(EncoderKind::ResNet18)
                .with_width(8),
            "mnv2" => ModelConfig::new()
                .with_encoder(EncoderKind::MobileNetV2)
                .with_e5_channels(Some(128))
                .with_decoder_channels(Some([96, 32, 24, 16, 16])),
            "mnv2-lite" => ModelConfig::new()
                .with_encoder(EncoderKind::MobileNetV2)
                .with_e5_channels(Some(64))
                .with_decoder_channels(Some([64, 24, 16, 16, 16])),
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
        let bad = |m: String| Err(crate::Error::Config(m));
        if self.encoder != EncoderKind::MobileNetV2
            && (self.width == 0 || !self.width.is_multiple_of(8))
        {
            return bad(format!(
                "width must be a positive multiple of 8, got {}",
                self.width
            ));
        }
        if self.width > 512 {
            return bad(format!(
                "width {} is larger than this tool supports (512)",
                self.width
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if let Some(c) = self.e5_channels
            && (self.encoder != EncoderKind::MobileNetV2 || c == 0 || c > 1024)
        {
            return bad(format!(
                "an e5 adapter ({c} channels) needs the mobilenetv2 encoder and 1..=1024 channels"
            ));
        }
        if let Some(d) = self.decoder_channels
            && d.iter().any(|&c| c < 8 || !c.is_multiple_of(4) || c > 2048)
        {
            return bad(format!(
                "decoder channels must be multiples of 4 in 8..=2048, got {d:?}"
            ));
        }
        let [c1, c2, c3, c4, c5] = self.encoder_channels();
        let d = self.decoder_channels();
        let ins = [c5, d[0] + c4, d[1] + c3, d[2] + c2, d[3] + c1];
        if let Some(i) = ins.iter().position(|c| !c.is_multiple_of(4)) {
            return bad(format!(
                "decoder block D{} would read {} channels, not a multiple of 4",
                5 - i,
                ins[i]
            ));
        }
        Ok(())
    }

    /// Channels of the encoder levels e1..e5 as the fusion modules and decoders see them.
    pub fn encoder_channels(&self) -> [usize; 5] {
        let w = self.width;
        match self.encoder {
            EncoderKind::ResNet18 | EncoderKind::ResNet34 => [w, w, 2 * w, 4 * w, 8 * w],
            EncoderKind::MobileNetV2 => {
                let mut c = crate::model::mobilenet::TAP_CHANNELS;
                if let Some(e5) = self.e5_channels {
                    c[4] = e5;
                }
                c
            }
        }
    }

    /// Output channels of the decoder blocks D5..D1.
    pub fn decoder_channels(&self) -> [usize; 5] {
        self.decoder_channels.unwrap_or_else(|| {
            let [c1, c2, c3, c4, c5] = self.encoder_channels();
            [c5, c4, c3, c2, c1]
        })
    }

    /// Whether the encoder normalises its input with ImageNet statistics (see
    /// [`crate::model::mobilenet`]).
    pub fn imagenet_normalised(&self) -> bool {
        self.encoder == EncoderKind::MobileNetV2
    }

    /// A short human-readable description, e.g. `resnet34 w64 gff`.
    pub fn describe(&self) -> String {
        let kind = if self.two_stage {
            self.fusion.name()
        } else {
            "single-stage"
        };
        match self.encoder {
            EncoderKind::MobileNetV2 => {
                let e5 = self.encoder_channels()[4];
                let d = self.decoder_channels();
                format!(
                    "mobilenetv2 e5:{e5} dec:{} {kind}",
                    d.map(|c| c.to_string()).join("/")
                )
            }
            e => format!("{} w{} {kind}", e.name(), self.width),
        }
    }
}
