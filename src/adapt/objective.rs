//! The adaptation objectives (SPEC.md "Adapting to a new site"): what is minimised on the new
//! site's unlabeled images, and which parameters it moves. A new objective is a variant of
//! [`Loss`] with its loss here.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use crate::Error;
use crate::loss::inpainting_loss;
use crate::model::SclOutput;
use crate::model::network::{threshold, untracked_on};

/// A gradient objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// The method's own signal: SPEC.md's masked L1 inpainting loss on the erased lesion
    /// (it reaches the encoder, the fusion modules and the inpainting decoder; the segmentation
    /// decoder only through the shared features).
    Inpainting,
    /// TENT (Wang et al., ICLR 2021): the mean entropy of the fine lesion probability, with
    /// batch-norm statistics of the new images; only batch-norm scales and shifts move.
    Tent,
    /// Self-training on confident stage-1 pixels: BCE of the fine mask against the coarse mask
    /// where the coarse probability is above `1 - PSEUDO_MARGIN` or below `PSEUDO_MARGIN`.
    Pseudo,
    /// [`Loss::Pseudo`] plus [`Loss::Inpainting`].
    PseudoInpainting,
}

/// Pixels whose stage-1 probability is within this of 0 or 1 become pseudo-labels.
pub const PSEUDO_MARGIN: f64 = 0.1;

/// Which parameters a gradient objective updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// Every parameter.
    All,
    /// Everything but the encoder (frozen, with its batch-norm statistics).
    NoEncoder,
    /// Only the batch-norm scales and shifts (TENT's choice).
    BatchNorm,
}

impl Scope {
    /// Parses `all`, `no-encoder` (`decoders`), `bn`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "all" => Ok(Scope::All),
            "no-encoder" | "decoders" => Ok(Scope::NoEncoder),
            "bn" | "batch-norm" => Ok(Scope::BatchNorm),
            other => Err(Error::Config(format!(
                "unknown scope '{other}' (all | no-encoder | bn)"
            ))),
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::NoEncoder => "no-encoder",
            Scope::BatchNorm => "bn",
        }
    }
}

impl Loss {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Inpainting => "inpainting",
            Loss::Tent => "tent",
            Loss::Pseudo => "pseudo",
            Loss::PseudoInpainting => "pseudo+inpainting",
        }
    }

    /// One sentence for the page and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Loss::Inpainting => {
                "the method's own signal: learn to repaint the erased lesion region of your images"
            }
            Loss::Tent => {
                "make the predicted masks more confident, moving only the normalisation layers"
            }
            Loss::Pseudo => {
                "teach the fine mask to agree with the confident pixels of the coarse mask"
            }
            Loss::PseudoInpainting => "both the confident coarse pixels and the repainting",
        }
    }

    /// The parameters it updates unless told otherwise.
    pub fn default_scope(self) -> Scope {
        match self {
            Loss::Inpainting => Scope::NoEncoder,
            Loss::Tent => Scope::BatchNorm,
            Loss::Pseudo | Loss::PseudoInpainting => Scope::All,
        }
    }

    /// Whether the loss needs the inpainting decoder.
    pub fn inpaints(self) -> bool {
        matches!(self, Loss::Inpainting | Loss::PseudoInpainting)
    }

    /// The loss on one forward pass of the batch `x` (`out` computed with side outputs and,
    /// when [`Loss::inpaints`], the inpainting decoder).
    pub fn loss(self, out: &SclOutput, x: Tensor<4>) -> Tensor<1> {
        match self {
            Loss::Inpainting => inpainting_loss(&out.inp, &out.seg, x),
            Loss::Tent => entropy(out.seg[0].clone()),
            Loss::Pseudo => pseudo_label(out.seg[0].clone(), out.coarse.clone()),
            Loss::PseudoInpainting => {
                pseudo_label(out.seg[0].clone(), out.coarse.clone())
                    + inpainting_loss(&out.inp, &out.seg, x)
            }
        }
    }
}

/// Mean binary entropy of `sigmoid(z)`, from the logits: with `p = sigmoid(z)`,
/// `H = p softplus(-z) + (1 - p) softplus(z)`.
pub fn entropy(z: Tensor<4>) -> Tensor<1> {
    let softplus = |t: Tensor<4>| t.clone().clamp_min(0.0) + (t.abs().neg().exp() + 1.0).log();
    let p = sigmoid(z.clone());
    let h = p.clone() * softplus(z.clone().neg()) + (p.neg() + 1.0) * softplus(z);
    h.mean()
}

/// BCE of the logits `z` against the binarised `coarse` probability over its confident pixels
/// (a pixel-count mean; 0 when no pixel is confident).
pub fn pseudo_label(z: Tensor<4>, coarse: Tensor<4>) -> Tensor<1> {
    // Targets, weights and their count carry no gradient: computed off the autodiff tape.
    let coarse = coarse.inner();
    let target = threshold(&coarse);
    let confident = coarse
        .clone()
        .greater_elem(1.0 - PSEUDO_MARGIN)
        .bool_or(coarse.lower_elem(PSEUDO_MARGIN));
    let weight = target.zeros_like().mask_fill(confident, 1.0);
    let count = weight.clone().sum().clamp_min(1.0);
    let device = z.device();
    let (target, weight) = (untracked_on(target, &device), untracked_on(weight, &device));
    let bce =
        z.clone().clamp_min(0.0) - z.clone() * target + (z.clone().abs().neg().exp() + 1.0).log();
    (bce * weight).sum() / untracked_on(count, &device)
}
