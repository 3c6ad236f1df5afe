//! Fusion of the original-image features `s` and the masked-image features `p` at one level:
//! GFF (SPEC.md, "The network"), the paper's addition and concatenation ablations, and this
//! project's residual concatenation (not in SPEC.md; see [`Fusion::ConcatResidual`]).

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use super::layers::conv;
use crate::config::Fusion;

/// Gated feature fusion, GFF(s, p), C channels each (SPEC.md):
/// - reset gate `r = sigmoid(Conv3x3(2C -> C)([s, p]))`
/// - select gate `z = sigmoid(Conv3x3(2C -> C)([s, p]))`
/// - fused `o = ReLU(Conv3x3(2C -> C)([s, r * p]))`
/// - `out = (1 - z) * s + z * o`
///
/// The three convolutions carry a bias (they are not followed by a normalisation).
#[derive(Module, Debug)]
pub struct Gff {
    /// Reset-gate convolution.
    pub reset: Conv2d,
    /// Select-gate convolution.
    pub select: Conv2d,
    /// Fusion convolution.
    pub fuse: Conv2d,
}

impl Gff {
    /// A GFF module for `c` channels.
    pub fn new(c: usize, device: &Device) -> Self {
        Self {
            reset: conv(2 * c, c, 3, 1, true, device),
            select: conv(2 * c, c, 3, 1, true, device),
            fuse: conv(2 * c, c, 3, 1, true, device),
        }
    }

    /// Fuses `s` and `p`; returns the fused map and the select gate `z`.
    pub fn forward(&self, s: Tensor<4>, p: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let sp = Tensor::cat(vec![s.clone(), p.clone()], 1);
        let r = sigmoid(self.reset.forward(sp.clone()));
        let z = sigmoid(self.select.forward(sp));
        let o = relu(self.fuse.forward(Tensor::cat(vec![s.clone(), r * p], 1)));
        // (1 - z) * s + z * o, written as s + z * (o - s).
        let out = s.clone() + z.clone() * (o - s);
        (out, z)
    }
}

/// One level's fusion module; which field is set depends on [`Fusion`].
#[derive(Module, Debug)]
pub struct FusionBlock {
    /// Set for [`Fusion::Gff`].
    pub gff: Option<Gff>,
    /// Set for [`Fusion::Concat`] and [`Fusion::ConcatResidual`]: Conv1x1(2C -> C) with bias.
    pub concat: Option<Conv2d>,
    /// Whether the concatenation's output is added to `s` ([`Fusion::ConcatResidual`]). Not
    /// in the record: the network's configuration says which fusion it has.
    #[module(skip)]
    pub residual: bool,
}

impl FusionBlock {
    /// A fusion module of kind `kind` for `c` channels.
    pub fn new(kind: Fusion, c: usize, device: &Device) -> Self {
        let (gff, concat) = match kind {
            Fusion::Gff => (Some(Gff::new(c, device)), None),
            Fusion::Add => (None, None),
            Fusion::Concat => (None, Some(conv(2 * c, c, 1, 1, true, device))),
            Fusion::ConcatResidual => {
                // Zero weights and bias: the block starts as the identity on `s`.
                let mut conv = conv(2 * c, c, 1, 1, true, device);
                conv.weight = Param::from_tensor(Tensor::zeros([c, 2 * c, 1, 1], device));
                conv.bias = Some(Param::from_tensor(Tensor::zeros([c], device)));
                (None, Some(conv))
            }
        };
        Self {
            gff,
            concat,
            residual: kind == Fusion::ConcatResidual,
        }
    }

    /// The kind of fusion this block performs.
    pub fn kind(&self) -> Fusion {
        match (&self.gff, &self.concat, self.residual) {
            (Some(_), _, _) => Fusion::Gff,
            (None, Some(_), false) => Fusion::Concat,
            (None, Some(_), true) => Fusion::ConcatResidual,
            (None, None, _) => Fusion::Add,
        }
    }

    /// Fuses `s` and `p`; the second value is the select gate for GFF, `None` otherwise.
    pub fn forward(&self, s: Tensor<4>, p: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        if let Some(gff) = &self.gff {
            let (out, z) = gff.forward(s, p);
            (out, Some(z))
        } else if let Some(conv) = &self.concat {
            let fused = conv.forward(Tensor::cat(vec![s.clone(), p], 1));
            (if self.residual { s + fused } else { fused }, None)
        } else {
            (s + p, None)
        }
    }
}
