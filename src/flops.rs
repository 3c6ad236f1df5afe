//! Analytic multiply-accumulate (MAC) counts of the network's convolutions.
//!
//! Only convolutions are counted (batch norm, activations, pooling and interpolation are a few
//! percent at most), as is usual for the figures papers quote.

use crate::config::{EncoderKind, Fusion, ModelConfig};
use serde::Serialize;

fn conv(h: usize, w: usize, cin: usize, cout: usize, k: usize) -> u64 {
    (h * w * cin * cout * k * k) as u64
}

/// One ResNet encoder pass (stem, layer1..layer4 with their projections).
fn resnet(config: &ModelConfig, h: usize, w: usize) -> u64 {
    let [c1, c2, c3, c4, c5] = config.encoder_channels();
    let at = |k: u32| (h >> k, w >> k);
    let (h1, w1) = at(1);
    let mut encoder = conv(h1, w1, 3, c1, 7);
    let widths = [c2, c3, c4, c5];
    let mut in_ch = c1;
    for (stage, (&n, &out)) in config.encoder.blocks().iter().zip(&widths).enumerate() {
        let (hs, ws) = at(stage as u32 + 2);
        for b in 0..n {
            let cin = if b == 0 { in_ch } else { out };
            encoder += conv(hs, ws, cin, out, 3) + conv(hs, ws, out, out, 3);
            if b == 0 && (stage > 0 || cin != out) {
                encoder += conv(hs, ws, cin, out, 1);
            }
        }
        in_ch = out;
    }
    encoder
}

/// One MobileNetV2 pass (`features.0..17`, depthwise convolutions counted per channel) and the
/// optional e5 adapter to `e5` channels.
fn mobilenet_v2(e5: usize, h: usize, w: usize) -> u64 {
    const SETTINGS: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let (mut hs, mut ws) = (h / 2, w / 2);
    let mut macs = conv(hs, ws, 3, 32, 3);
    let mut cin = 32;
    for (t, c, n, s) in SETTINGS {
        for i in 0..n {
            let hidden = cin * t;
            if t != 1 {
                macs += conv(hs, ws, cin, hidden, 1);
            }
            if i == 0 && s == 2 {
                hs /= 2;
                ws /= 2;
            }
            macs += (hs * ws * hidden * 9) as u64 + conv(hs, ws, hidden, c, 1);
            cin = c;
        }
    }
    if e5 != 320 {
        macs += conv(hs, ws, 320, e5, 1);
    }
    macs
}

/// MACs of the network's parts for one image of `h x w` (multiples of 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Macs {
    /// One encoder pass.
    pub encoder: u64,
    /// The five fusion modules.
    pub fusion: u64,
    /// A decoder's blocks and full-size head (one pass, no side heads).
    pub decoder: u64,
    /// A decoder's four side heads.
    pub sides: u64,
}

impl Macs {
    /// Counts the MACs of `config` at `h x w`.
    pub fn of(config: &ModelConfig, h: usize, w: usize) -> Self {
        let [c1, c2, c3, c4, c5] = config.encoder_channels();
        let at = |k: u32| (h >> k, w >> k);
        let encoder = match config.encoder {
            EncoderKind::ResNet18 | EncoderKind::ResNet34 => resnet(config, h, w),
            EncoderKind::MobileNetV2 => mobilenet_v2(c5, h, w),
        };
        // Fusion, level i at h / 2^(i+1).
        let chans = [c1, c2, c3, c4, c5];
        let fusion = chans
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let (hs, ws) = at(i as u32 + 1);
                match config.fusion {
                    Fusion::Gff => 3 * conv(hs, ws, 2 * c, c, 3),
                    Fusion::Concat | Fusion::ConcatResidual => conv(hs, ws, 2 * c, c, 1),
                    Fusion::Add => 0,
                }
            })
            .sum();
        // Decoder blocks D5..D1 run at the resolution of their input (levels 5..1).
        let outs = config.decoder_channels();
        let ins = [c5, outs[0] + c4, outs[1] + c3, outs[2] + c2, outs[3] + c1];
        let mut decoder = 0;
        for (j, (&i, &o)) in ins.iter().zip(&outs).enumerate() {
            let (hs, ws) = at(5 - j as u32);
            decoder += conv(hs, ws, i, i / 4, 3) + conv(hs, ws, i / 4, o, 3);
        }
        // Full-size head (counted with one output channel; the inpainting head's 3 channels add
        // h*w*c1 MACs, under 0.1%).
        let d1 = outs[4];
        decoder += conv(h, w, d1, d1 / 2, 3) + conv(h, w, d1 / 2, 1, 1);
        // Side heads on d5 (level 4), d4 (3), d3 (2), d2 (1).
        let sides = outs[..4]
            .iter()
            .enumerate()
            .map(|(j, &c)| {
                let (hs, ws) = at(4 - j as u32);
                conv(hs, ws, c, c / 4, 3) + conv(hs, ws, c / 4, 1, 1)
            })
            .sum();
        Macs {
            encoder,
            fusion,
            decoder,
            sides,
        }
    }

    /// The full two-stage pass: two encoder passes, the coarse decoder (no sides), fusion, and
    /// both fine decoders with their side heads.
    pub fn two_stage(&self) -> u64 {
        2 * self.encoder + self.decoder + self.fusion + 2 * (self.decoder + self.sides)
    }

    /// The mask-only inference path (no inpainting decoder, no side heads).
    pub fn mask_only(&self) -> u64 {
        2 * self.encoder + 2 * self.decoder + self.fusion
    }

    /// The forward pass for a labeled training image (no inpainting decoder).
    pub fn labeled_forward(&self) -> u64 {
        2 * self.encoder + self.decoder + self.fusion + self.decoder + self.sides
    }

    /// One training iteration with `labeled` + `unlabeled` images, counting the backward pass as
    /// twice the forward (the usual estimate) for everything but the gradient-free coarse decoder.
    pub fn train_iteration(&self, labeled: usize, unlabeled: usize) -> u64 {
        let per = |fwd: u64| 3 * (fwd - self.decoder) + self.decoder;
        labeled as u64 * per(self.labeled_forward()) + unlabeled as u64 * per(self.two_stage())
    }
}
