//! The SCL network: shared encoder, five fusion modules, segmentation and inpainting decoders,
//! and the two-stage forward pass of SPEC.md.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::ops::PadMode;

use super::decoder::{Decoder, DecoderOutputs};
use super::encoder::{Encoder, Features};
use super::fusion::FusionBlock;
use crate::Error;
use crate::config::ModelConfig;

/// The network's inputs must have sides that are multiples of this (the encoder's stride).
pub const STRIDE: usize = 32;

/// Largest accepted input side in pixels. Larger images must be resized first (the CLI and the
/// page resize to the model's working size anyway); this bound keeps a bad call from trying to
/// allocate tens of gigabytes.
pub const MAX_SIDE: usize = 4096;

/// The SCL network.
#[derive(Module, Debug)]
pub struct Scl {
    /// The shared ResNet encoder (used for the image and for the masked image).
    pub encoder: Encoder,
    /// One fusion module per level, e1..e5 (none for a single-stage network).
    pub fusion: Vec<FusionBlock>,
    /// Segmentation decoder (1 output channel, logits).
    pub seg: Decoder,
    /// Inpainting decoder (3 output channels, no activation); none for a single-stage network.
    pub inp: Option<Decoder>,
    /// The configuration the network was built from.
    #[module(skip)]
    pub config: ModelConfig,
}

/// Everything the two-stage pass produces. Every full-size tensor has the input's size; side
/// outputs and gate maps are at the network's internal resolutions (see [`Scl::forward`]).
#[derive(Debug, Clone)]
pub struct SclOutput {
    /// Stage-1 (coarse) lesion probability, `[B, 1, H, W]`.
    pub coarse: Tensor<4>,
    /// Binary stage-1 mask `coarse >= 0.5`, `[B, 1, H, W]` (values 0 and 1, no gradient).
    pub mask: Tensor<4>,
    /// The image with the coarse lesion erased, `x * (1 - mask)`, `[B, 3, H, W]`.
    pub masked: Tensor<4>,
    /// Per level e1..e5, the channel mean of the GFF select gate `z`, `[B, 1, h_i, w_i]`
    /// (empty for the fusions without a gate: `add`, `concat`, `concat-res`).
    pub gates: Vec<Tensor<4>>,
    /// Segmentation logits, finest first: full size, then H/2, H/4, H/8, H/16.
    pub seg: DecoderOutputs,
    /// Inpainting outputs, finest first like `seg` (3 channels, RGB in about [0, 1]).
    pub inp: DecoderOutputs,
    /// `inpainted * (fine >= 0.5) + x * (fine < 0.5)`, `[B, 3, H, W]`.
    pub composite: Tensor<4>,
}

impl SclOutput {
    /// The fine (stage-2) lesion probability at full size: the network's prediction.
    pub fn fine(&self) -> Tensor<4> {
        sigmoid(self.seg[0].clone())
    }
}

/// What the fine stage should compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineParts {
    /// Side outputs of the decoders (needed by the losses, not by inference).
    pub sides: bool,
    /// Run the segmentation decoder.
    pub segment: bool,
    /// Run the inpainting decoder.
    pub inpaint: bool,
}

impl FineParts {
    /// Everything (the page and the unlabeled loss).
    pub const ALL: FineParts = FineParts {
        sides: true,
        segment: true,
        inpaint: true,
    };
    /// The segmentation outputs with side heads (the labeled loss).
    pub const SEGMENT_DEEP: FineParts = FineParts {
        sides: true,
        segment: true,
        inpaint: false,
    };
    /// Only the full-size fine mask (inference).
    pub const MASK_ONLY: FineParts = FineParts {
        sides: false,
        segment: true,
        inpaint: false,
    };
}

/// Result of stage 1 (coarse segmentation and masking).
#[derive(Debug, Clone)]
pub struct Coarse {
    /// The encoder features of the image (reused by stage 2).
    pub features: Features,
    /// Coarse probability.
    pub prob: Tensor<4>,
    /// Binary mask `prob >= 0.5` as 0/1 floats.
    pub mask: Tensor<4>,
    /// `x * (1 - mask)`.
    pub masked: Tensor<4>,
}

/// Result of the fusion step of stage 2.
#[derive(Debug, Clone)]
pub struct Fused {
    /// Fused features g1..g5.
    pub g: Features,
    /// Per-level select gate (full `[B, C, h, w]` tensors), GFF only.
    pub gates: Option<Features>,
}

impl Scl {
    /// Builds the network of `config` with fresh random weights.
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self, Error> {
        config.validate()?;
        let fusion = if config.two_stage {
            config
                .encoder_channels()
                .iter()
                .map(|&c| FusionBlock::new(config.fusion, c, device))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            encoder: Encoder::new(config, device),
            fusion,
            seg: Decoder::new(config, 1, Some(config.dropout), device),
            inp: config
                .two_stage
                .then(|| Decoder::new(config, 3, None, device)),
            config: config.clone(),
        })
    }

    /// Checks that `x` is a batch of RGB images the network can take.
    pub fn check_input(x: &Tensor<4>) -> Result<(), Error> {
        let [b, c, h, w] = x.dims();
        if c != 3 {
            return Err(Error::Input(format!(
                "expected 3 (RGB) channels, got {c} (shape [{b}, {c}, {h}, {w}])"
            )));
        }
        if b == 0 || h == 0 || w == 0 {
            return Err(Error::Input(format!(
                "empty input of shape [{b}, {c}, {h}, {w}]"
            )));
        }
        if h > MAX_SIDE || w > MAX_SIDE {
            return Err(Error::Input(format!(
                "input of {w}x{h} pixels is larger than {MAX_SIDE}x{MAX_SIDE}; resize it first"
            )));
        }
        Ok(())
    }

    /// Stage 1: encoder features, coarse probability and the masked image. `x` must have sides
    /// that are multiples of [`STRIDE`].
    ///
    /// The coarse decoder pass reads detached features: the mask is thresholded, so no gradient
    /// could flow through it anyway, and detaching keeps the autodiff graph (and memory) of a
    /// training step to what the losses use.
    pub fn coarse(&self, x: Tensor<4>, groups: usize) -> Coarse {
        let features = self.encoder.forward(x.clone(), groups);
        let detached = features.clone().map(|f| f.detach());
        let logits = self.seg.forward(&detached, false, groups).swap_remove(0);
        Self::erase_coarse(x, features, logits)
    }

    /// [`Scl::coarse`] that also returns the stage-1 logits with their gradient (the decoder
    /// reads the encoder's features as they are), for a loss on the stage-1 mask: this
    /// project's `--coarse-weight` variant; SPEC.md's method has no such loss.
    pub fn coarse_tracked(&self, x: Tensor<4>, groups: usize) -> (Coarse, Tensor<4>) {
        let features = self.encoder.forward(x.clone(), groups);
        let logits = self.seg.forward(&features, false, groups).swap_remove(0);
        (Self::erase_coarse(x, features, logits.clone()), logits)
    }

    /// The coarse probability (detached), its mask and the erased image from stage-1 logits.
    fn erase_coarse(x: Tensor<4>, features: Features, logits: Tensor<4>) -> Coarse {
        let prob = sigmoid(logits).detach();
        let mask = threshold(&prob);
        let masked = erase(x, &mask);
        Coarse {
            features,
            prob,
            mask,
            masked,
        }
    }

    /// Stage 2 fusion: encodes the masked image and fuses it with the stage-1 features.
    pub fn fuse(&self, features: &Features, masked: Tensor<4>, groups: usize) -> Fused {
        let inp_features = self.encoder.forward(masked, groups);
        let mut gates = Vec::new();
        let g: Vec<Tensor<4>> = self
            .fusion
            .iter()
            .zip(features.iter().cloned().zip(inp_features))
            .map(|(f, (s, p))| {
                let (out, z) = f.forward(s, p);
                if let Some(z) = z {
                    gates.push(z);
                }
                out
            })
            .collect();
        let g: Features = g.try_into().expect("five fusion levels");
        let gates = gates.try_into().ok();
        Fused { g, gates }
    }

    /// The two-stage pass on an aligned input (sides multiples of [`STRIDE`]).
    pub fn forward_aligned(&self, x: Tensor<4>, parts: FineParts) -> SclOutput {
        self.forward_grouped(x, parts, 1)
    }

    /// [`Scl::forward_aligned`] on a batch made of `groups` independent sub-batches (batch
    /// statistics are computed per sub-batch in training; see [`super::norm::BatchNorm`]).
    pub fn forward_grouped(&self, x: Tensor<4>, parts: FineParts, groups: usize) -> SclOutput {
        if !self.config.two_stage {
            return self.single_stage(x, parts, groups);
        }
        let Coarse {
            features,
            prob,
            mask,
            masked,
        } = self.coarse(x.clone(), groups);
        let Fused { g, gates } = self.fuse(&features, masked.clone(), groups);
        let seg = if parts.segment {
            self.seg.forward(&g, parts.sides, groups)
        } else {
            Vec::new()
        };
        let inp = match (&self.inp, parts.inpaint) {
            (Some(dec), true) => dec.forward(&g, parts.sides, groups),
            _ => Vec::new(),
        };
        let composite = match (seg.first(), inp.first()) {
            (Some(s), Some(i)) => composite(x, i.clone(), &sigmoid(s.clone())),
            _ => x,
        };
        let gates = gates
            .map(|z| z.into_iter().map(|z| z.mean_dim(1)).collect())
            .unwrap_or_default();
        SclOutput {
            coarse: prob,
            mask,
            masked,
            gates,
            seg,
            inp,
            composite,
        }
    }

    /// The supervised baseline's pass: the segmentation decoder on the image's features. The
    /// output's `coarse` and fine masks are the same prediction; nothing is erased or inpainted.
    fn single_stage(&self, x: Tensor<4>, parts: FineParts, groups: usize) -> SclOutput {
        let features = self.encoder.forward(x.clone(), groups);
        let seg = self.seg.forward(&features, parts.sides, groups);
        let prob = sigmoid(seg[0].clone()).detach();
        let mask = threshold(&prob);
        let masked = erase(x.clone(), &mask);
        SclOutput {
            coarse: prob,
            mask,
            masked,
            gates: Vec::new(),
            seg,
            inp: Vec::new(),
            composite: x,
        }
    }

    /// The full two-stage pass of SPEC.md on a batch `x` (`[B, 3, H, W]`, RGB in [0, 1]).
    ///
    /// Any size from 1x1 to [`MAX_SIDE`] works: when H or W is not a multiple of 32 the input is
    /// padded at the bottom and right by repeating its edge pixels, the network runs on the
    /// padded image, and every output is cropped back (the full-size ones to H x W, the
    /// level-`k` side outputs and gate maps to `ceil(H / 2^k) x ceil(W / 2^k)`). Padding only at
    /// the bottom/right keeps the crop exact at every level.
    pub fn forward(&self, x: Tensor<4>) -> Result<SclOutput, Error> {
        self.forward_parts(x, FineParts::ALL)
    }

    /// [`Scl::forward`] computing only `parts` of the fine stage.
    pub fn forward_parts(&self, x: Tensor<4>, parts: FineParts) -> Result<SclOutput, Error> {
        Self::check_input(&x)?;
        let [_, _, h, w] = x.dims();
        let (xp, padded) = pad_to_stride(x);
        let out = self.forward_aligned(xp, parts);
        if !padded {
            return Ok(out);
        }
        let crop_levels = |v: Vec<Tensor<4>>, first_level: u32| -> Vec<Tensor<4>> {
            v.into_iter()
                .enumerate()
                .map(|(i, t)| crop_level(t, h, w, first_level + i as u32))
                .collect()
        };
        Ok(SclOutput {
            coarse: crop_level(out.coarse, h, w, 0),
            mask: crop_level(out.mask, h, w, 0),
            masked: crop_level(out.masked, h, w, 0),
            gates: crop_levels(out.gates, 1),
            seg: crop_levels(out.seg, 0),
            inp: crop_levels(out.inp, 0),
            composite: crop_level(out.composite, h, w, 0),
        })
    }

    /// The mask-only path: coarse and fine probabilities, no inpainting and no side heads.
    pub fn predict_mask(&self, x: Tensor<4>) -> Result<(Tensor<4>, Tensor<4>), Error> {
        let out = self.forward_parts(x, FineParts::MASK_ONLY)?;
        let fine = out.fine();
        Ok((out.coarse, fine))
    }
}

/// The binary mask `p >= 0.5` as 0/1 floats (no gradient).
///
/// Written as `mask_fill` on zeros rather than `greater_equal_elem(0.5).float()`: on wgpu
/// (WebGPU, Vulkan) Burn 0.22's fusion compiled the comparison-and-cast into the same kernel as
/// the producer of `p` and corrupted `p` itself (coarse probabilities off by 0.5 against the CPU;
/// `scl compare-backends` shows it, the browser tests check it).
///
/// Computed off the autodiff tape ([`off_tape`]): no gradient flows through a threshold.
pub fn threshold(p: &Tensor<4>) -> Tensor<4> {
    off_tape(p.clone(), |p| {
        p.zeros_like().mask_fill(p.greater_equal_elem(0.5), 1.0)
    })
}

/// SPEC.md's erase ("The two stages", step 2): `x * (1 - mask)`, the pixels inside the binary `mask`
/// set to 0.
pub fn erase(x: Tensor<4>, mask: &Tensor<4>) -> Tensor<4> {
    x * (mask.clone().neg() + 1.0)
}

/// Runs `f`, a computation no gradient flows through, on `t`'s inner (non-autodiff) device and
/// returns its result as an untracked tensor on `t`'s device. Burn 0.22 registers even an
/// untracked op on an autodiff device in its graph registry, freed only by later backward
/// passes. Not what leaked (that was the AdaBN pass and a burn-autodiff bug, see
/// `vendor/burn-autodiff/PATCH.md`), but measured to matter: without it the live heap between
/// adaptation runs (`tests/memory.rs`, pseudo-labels) varies by ±200 KB instead of ±50 KB.
pub fn off_tape<const D: usize, const E: usize>(
    t: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> Tensor<E>,
) -> Tensor<E> {
    let like = t.device();
    untracked_on(f(t.inner()), &like)
}

/// `t` (computed on an inner device) as an untracked tensor on `device`, autodiff or not.
pub fn untracked_on<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    if device.is_autodiff() {
        t.autodiff()
    } else {
        t
    }
}

/// SPEC.md's composite: the inpainted image inside the fine mask (`fine >= 0.5`), `x` outside
/// (no gradient through the mask).
pub fn composite(x: Tensor<4>, inpainted: Tensor<4>, fine: &Tensor<4>) -> Tensor<4> {
    let m = threshold(fine);
    inpainted * m.clone() + erase(x, &m)
}

/// Pads `x` at the bottom/right (edge replication) to multiples of [`STRIDE`]; returns whether
/// it padded.
pub fn pad_to_stride(x: Tensor<4>) -> (Tensor<4>, bool) {
    let [_, _, h, w] = x.dims();
    let ph = h.div_ceil(STRIDE) * STRIDE - h;
    let pw = w.div_ceil(STRIDE) * STRIDE - w;
    if ph == 0 && pw == 0 {
        return (x, false);
    }
    (x.pad([(0, ph), (0, pw)], PadMode::Edge), true)
}

/// Crops a level-`k` map (resolution `/2^k`) of a padded input back to the original extent.
fn crop_level(t: Tensor<4>, h: usize, w: usize, k: u32) -> Tensor<4> {
    let f = 1usize << k;
    let (hk, wk) = (h.div_ceil(f), w.div_ceil(f));
    t.slice(s![.., .., 0..hk, 0..wk])
}
