//! Lesion-size prior matching (SPEC.md "Adapting to a new site"): the new site's images are
//! assumed to hold, on average, as much lesion as the training images did, and the
//! segmentation output's bias is shifted by the one offset that makes the adapted network's
//! mean predicted lesion fraction on them equal that prior. No gradient, no labels of the new
//! site: only the training set's mean lesion fraction ([`SOURCE_PRIOR`]).
//!
//! It is the class-ratio prior of source-relaxed domain adaptation (Bateson et al., MICCAI
//! 2020: entropy plus a KL divergence between a class-ratio prior and the predicted ratio)
//! reduced to its gradient-free core: a single logit offset, found exactly from a histogram of
//! the fine logits. Its target is the failure seen on a new camera: from the shipped Kvasir-SEG
//! weights, CVC-ClinicDB frames are over-segmented (recall 0.80-0.87, precision 0.34-0.39;
//! predicted lesion fraction ~0.22 against a true 0.09 and Kvasir's 0.16).
//!
//! The offset goes into the bias of the segmentation decoder's full-size output convolution,
//! which the coarse and the fine stage share, so it also shrinks (or grows) the erased region
//! and the fine mask moves more than the offset alone says (measured on CVC-ClinicDB: the
//! first shift, -2.2, overshot and a second round moved back by +1.0). So matching runs in
//! rounds, each measuring the lesion fraction over all images ([`Rounds`]): the first shift
//! comes from the logit histogram, later ones from the secant through the last two
//! (offset, log-odds of the fraction) points, until the fraction is within [`TOLERANCE`] of
//! the prior or [`MAX_ROUNDS`] rounds have run.

use burn::prelude::*;

use crate::model::{FineParts, Scl};

/// Mean lesion fraction of the training images' masks: Kvasir-SEG `train` (600 masks,
/// resized to 160 x 160 and thresholded at 128: 0.1600; median 0.119), the data the shipped
/// weights were trained on.
pub const SOURCE_PRIOR: f64 = 0.16;

/// At most this many measuring rounds (the last one only measures).
pub const MAX_ROUNDS: usize = 5;

/// Matching stops when the measured lesion fraction is this close to the prior.
pub const TOLERANCE: f64 = 0.005;

/// Histogram bins: logits in `[-RANGE, RANGE)` in steps of `2 * RANGE / BINS`.
const BINS: usize = 8000;
const RANGE: f32 = 40.0;

/// A histogram of fine logits over the new images.
#[derive(Debug, Clone)]
pub struct LogitHistogram {
    counts: Vec<u64>,
}

impl Default for LogitHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BINS],
        }
    }
}

impl LogitHistogram {
    /// Adds logits (non-finite values are skipped).
    pub fn add(&mut self, logits: &[f32]) {
        let scale = BINS as f32 / (2.0 * RANGE);
        for &z in logits.iter().filter(|z| z.is_finite()) {
            let bin = ((z + RANGE) * scale).floor().clamp(0.0, (BINS - 1) as f32) as usize;
            self.counts[bin] += 1;
        }
    }

    /// Logits added so far.
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fraction of the logits that are non-negative (to the histogram's bin width), or
    /// `None` when it is empty.
    pub fn foreground(&self) -> Option<f64> {
        let total = self.len();
        let zero = BINS / 2;
        (total > 0).then(|| self.counts[zero..].iter().sum::<u64>() as f64 / total as f64)
    }

    /// The offset `b` such that a fraction `prior` of the logits satisfies `z + b >= 0`
    /// (the `1 - prior` quantile, negated; to the histogram's bin width, 0.01), or `None`
    /// when the histogram is empty.
    pub fn offset(&self, prior: f64) -> Option<f32> {
        let total = self.len();
        if total == 0 {
            return None;
        }
        let want = (prior.clamp(0.0, 1.0) * total as f64).round() as u64;
        let width = 2.0 * RANGE / BINS as f32;
        // Walk down from the top bin until `want` logits lie at or above the bin's lower edge.
        let mut above = 0u64;
        for (bin, &c) in self.counts.iter().enumerate().rev() {
            if above + c >= want {
                // Interpolate within the bin, assuming its logits are spread evenly.
                let frac = if c == 0 {
                    0.0
                } else {
                    (want - above) as f32 / c as f32
                };
                let threshold = -RANGE + width * (bin as f32 + 1.0 - frac);
                return Some(-threshold);
            }
            above += c;
        }
        Some(RANGE)
    }
}

/// One measuring round's outcome.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Round {
    /// The total output-bias offset the round measured at.
    pub offset: f32,
    /// The predicted lesion fraction over all images at that offset.
    pub foreground: f64,
}

/// The rounds of one prior matching: where to shift next.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rounds {
    /// Every round so far.
    pub rounds: Vec<Round>,
    /// The total offset applied now (the next round measures at it).
    current: f32,
}

impl Rounds {
    /// Records a round's histogram (taken at the current total offset) and returns the next
    /// total offset, or `None` when matching is done (within [`TOLERANCE`] of `prior`, or
    /// [`MAX_ROUNDS`] reached, or nothing measured).
    pub fn next(&mut self, h: &LogitHistogram, prior: f64) -> Option<f32> {
        let offset = self.current;
        let foreground = h.foreground()?;
        self.rounds.push(Round { offset, foreground });
        if (foreground - prior).abs() <= TOLERANCE || self.rounds.len() >= MAX_ROUNDS {
            return None;
        }
        let logit = |f: f64| {
            let f = f.clamp(1e-4, 1.0 - 1e-4);
            (f / (1.0 - f)).ln()
        };
        let n = self.rounds.len();
        let secant = (n >= 2).then(|| {
            let (a, b) = (self.rounds[n - 2], self.rounds[n - 1]);
            let slope = (logit(b.foreground) - logit(a.foreground)) / (b.offset - a.offset) as f64;
            (slope.is_finite() && slope > 1e-3)
                .then(|| b.offset as f64 - (logit(b.foreground) - logit(prior)) / slope)
        });
        let next = match secant.flatten() {
            Some(next) => next as f32,
            None => offset + h.offset(prior)?,
        };
        self.current = next;
        Some(next)
    }

    /// The total offset applied.
    pub fn offset(&self) -> f32 {
        self.current
    }
}

/// The fine (stage-2) logits of a batch `x` (`[B, 3, S, S]`, whole images at the working size)
/// on the inference network `model`, flattened.
pub fn fine_logits(model: &Scl, x: Tensor<4>) -> Tensor<1> {
    let out = model.forward_aligned(x, FineParts::MASK_ONLY);
    out.seg[0].clone().flatten::<1>(0, 3)
}

/// `model` with `offset` added to the bias of the segmentation decoder's full-size output
/// convolution (every segmentation logit of both stages moves by `offset`).
pub fn shift_output_bias(mut model: Scl, offset: f32) -> Scl {
    let out = &mut model.seg.head.out;
    out.bias = out.bias.take().map(|b| b.map(|t| t.add_scalar(offset)));
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_the_quantile() {
        // Logits 0.005, 0.015, ..., 9.995 (1000 values, one per bin): 25% lie at or above
        // 7.5, so the offset that leaves 25% non-negative is -7.5.
        let mut h = LogitHistogram::default();
        let z: Vec<f32> = (0..1000).map(|i| i as f32 * 0.01 + 0.005).collect();
        h.add(&z);
        let b = h.offset(0.25).unwrap();
        assert!((b + 7.5).abs() < 0.011, "{b}");
        // 100% -> everything non-negative: the offset lifts the smallest logit to >= 0.
        assert!(h.offset(1.0).unwrap() >= -0.011);
        assert!(LogitHistogram::default().offset(0.5).is_none());
    }

    #[test]
    fn rounds_follow_the_secant_and_stop_at_the_prior() {
        // A model whose lesion fraction responds to the offset b as sigmoid(1 + 2 b) (twice
        // as steeply as a pure logit shift): the secant finds b with sigmoid(1 + 2 b) = 0.16,
        // b = (ln(0.16 / 0.84) - 1) / 2 = -1.329, which the histogram step alone misses.
        let hist_at = |b: f32| {
            let f = 1.0 / (1.0 + (-(1.0 + 2.0 * b)).exp());
            let mut h = LogitHistogram::default();
            let pos = (f * 10_000.0).round() as usize;
            let z: Vec<f32> = (0..10_000)
                .map(|i| if i < pos { 1.0 } else { -1.0 - i as f32 * 1e-4 })
                .collect();
            h.add(&z);
            h
        };
        let mut r = Rounds::default();
        let mut b = 0.0;
        while let Some(next) = r.next(&hist_at(b), 0.16) {
            b = next;
        }
        let want = ((0.16f64 / 0.84).ln() - 1.0) / 2.0;
        assert!(
            (b as f64 - want).abs() < 0.02,
            "{b} vs {want}: {:?}",
            r.rounds
        );
        assert!((r.rounds.last().unwrap().foreground - 0.16).abs() <= TOLERANCE);
        assert!(r.rounds.len() <= MAX_ROUNDS);
    }

    #[test]
    fn non_finite_and_out_of_range_logits() {
        let mut h = LogitHistogram::default();
        h.add(&[f32::NAN, f32::INFINITY, -100.0, 100.0]);
        assert_eq!(h.len(), 2);
        // Half of {-100 (clamped to -40), 100 (clamped to 40)} at or above -b.
        let b = h.offset(0.5).unwrap();
        assert!(b > -40.0 && b <= 40.0, "{b}");
    }
}
