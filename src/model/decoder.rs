//! The segmentation and inpainting decoders (same blocks, different heads).

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::dropout::Dropout;
use super::layers::{ConvBnRelu, conv, upsample2};
use crate::config::ModelConfig;

/// Decoder block DB(in, out): Conv3x3(in -> in/4)+BN+ReLU, Conv3x3(in/4 -> out)+BN+ReLU, then
/// x2 bilinear upsampling.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// Reduction to in/4 channels.
    pub reduce: ConvBnRelu,
    /// Projection to the output channels.
    pub expand: ConvBnRelu,
}

impl DecoderBlock {
    fn new(in_ch: usize, out_ch: usize, device: &Device) -> Self {
        Self {
            reduce: ConvBnRelu::new(in_ch, in_ch / 4, 3, device),
            expand: ConvBnRelu::new(in_ch / 4, out_ch, 3, device),
        }
    }

    fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        upsample2(self.expand.forward(self.reduce.forward(x, groups), groups))
    }
}

/// An output head: Conv3x3(C -> mid)+BN+ReLU, optional Dropout, Conv1x1(mid -> out).
/// Returns logits (segmentation) or raw values (inpainting); no activation.
#[derive(Module, Debug)]
pub struct Head {
    /// The 3x3 Conv-BN-ReLU.
    pub hidden: ConvBnRelu,
    /// Dropout (segmentation heads only).
    pub dropout: Option<Dropout>,
    /// The 1x1 output convolution (with bias).
    pub out: Conv2d,
}

impl Head {
    fn new(in_ch: usize, mid: usize, out_ch: usize, dropout: Option<f64>, device: &Device) -> Self {
        Self {
            hidden: ConvBnRelu::new(in_ch, mid, 3, device),
            dropout: dropout.map(Dropout::new),
            out: conv(mid, out_ch, 1, 1, true, device),
        }
    }

    fn forward(&self, x: Tensor<4>, groups: usize) -> Tensor<4> {
        let h = self.hidden.forward(x, groups);
        let h = match &self.dropout {
            Some(d) => d.forward(h),
            None => h,
        };
        self.out.forward(h)
    }
}

/// A decoder: blocks D5..D1 with the fused features as skips, a final head at full size and
/// deep-supervision side heads on d5, d4, d3 and d2.
#[derive(Module, Debug)]
pub struct Decoder {
    /// D5, D4, D3, D2, D1.
    pub blocks: Vec<DecoderBlock>,
    /// The full-size head.
    pub head: Head,
    /// Side heads on d5 (H/16), d4 (H/8), d3 (H/4), d2 (H/2), in that order.
    pub sides: Vec<Head>,
}

/// Decoder outputs, finest first: index 0 is the full-size output, 1..=4 the side outputs at
/// H/2, H/4, H/8 and H/16 (empty when side heads were not asked for).
pub type DecoderOutputs = Vec<Tensor<4>>;

impl Decoder {
    /// Builds a decoder with `out_ch` output channels (1 for segmentation, 3 for inpainting);
    /// `dropout` is used in the heads when given (segmentation).
    pub fn new(config: &ModelConfig, out_ch: usize, dropout: Option<f64>, device: &Device) -> Self {
        let [c1, c2, c3, c4, c5] = config.encoder_channels();
        // Output widths of D5..D1 and their inputs ([previous decoder output, skip]).
        let outs = config.decoder_channels();
        let ins = [c5, outs[0] + c4, outs[1] + c3, outs[2] + c2, outs[3] + c1];
        let blocks = ins
            .iter()
            .zip(outs)
            .map(|(&i, o)| DecoderBlock::new(i, o, device))
            .collect();
        let last = outs[4];
        let head = Head::new(last, last / 2, out_ch, dropout, device);
        let sides = outs[..4]
            .iter()
            .map(|&c| Head::new(c, c / 4, out_ch, dropout, device))
            .collect();
        Self {
            blocks,
            head,
            sides,
        }
    }

    /// Decodes the five feature maps `g` (finest first). With `sides` false only the full-size
    /// output is computed. `groups`: independent sub-batches for batch norm.
    pub fn forward(&self, g: &[Tensor<4>; 5], sides: bool, groups: usize) -> DecoderOutputs {
        let mut d = self.blocks[0].forward(g[4].clone(), groups);
        let mut side_out = Vec::with_capacity(4);
        if sides {
            side_out.push(self.sides[0].forward(d.clone(), groups));
        }
        for (k, block) in self.blocks.iter().enumerate().skip(1) {
            d = block.forward(Tensor::cat(vec![d, g[4 - k].clone()], 1), groups);
            if sides && k < 4 {
                side_out.push(self.sides[k].forward(d.clone(), groups));
            }
        }
        let mut outs = Vec::with_capacity(5);
        outs.push(self.head.forward(d, groups));
        // side_out is coarsest first (H/16 .. H/2); outputs are finest first.
        outs.extend(side_out.into_iter().rev());
        outs
    }
}
