//! Per-image segmentation metrics from the confusion matrix, and their summary over a set.
//!
//! Convention for empty denominators: a ratio `0 / 0` scores **1**. Each such case means
//! "there was nothing to find and nothing was found wrongly": an empty prediction on an empty
//! ground truth has Dice = IoU = Recall = Precision = 1 (as the authors count it), an image
//! that is lesion everywhere has Specificity 1 when the prediction covers all of it, and so on.
//! Accuracy's denominator is the pixel count, never 0 for a non-empty image.

use serde::{Deserialize, Serialize};

/// `num / den`, and 1 for `0 / 0` (the module's convention above).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// Pixel counts of a binary prediction against a binary ground truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Lesion predicted, lesion true.
    pub tp: u64,
    /// Lesion predicted, background true.
    pub fp: u64,
    /// Background predicted, background true.
    pub tn: u64,
    /// Background predicted, lesion true.
    pub fn_: u64,
}

/// Threshold applied to predictions and ground truths alike.
pub const THRESHOLD: f32 = 0.5;

impl Confusion {
    /// Counts a probability map against a ground-truth map of the same length, both thresholded
    /// at 0.5 (`>= 0.5` is lesion).
    ///
    /// # Panics
    /// If the two slices differ in length.
    pub fn from_maps(pred: &[f32], truth: &[f32]) -> Self {
        assert_eq!(pred.len(), truth.len(), "prediction and truth sizes differ");
        let mut c = Confusion::default();
        for (&p, &t) in pred.iter().zip(truth) {
            match (p >= THRESHOLD, t >= THRESHOLD) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// The metrics of this confusion matrix.
    pub fn scores(&self) -> Scores {
        let Confusion { tp, fp, tn, fn_ } = *self;
        Scores {
            dice: ratio(2 * tp, 2 * tp + fp + fn_),
            iou: ratio(tp, tp + fp + fn_),
            accuracy: ratio(tp + tn, tp + fp + tn + fn_),
            recall: ratio(tp, tp + fn_),
            specificity: ratio(tn, tn + fp),
            precision: ratio(tp, tp + fp),
        }
    }
}

/// The metrics of one image, as fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// `2TP / (2TP + FP + FN)`.
    pub dice: f64,
    /// `TP / (TP + FP + FN)`.
    pub iou: f64,
    /// `(TP + TN) / all`.
    pub accuracy: f64,
    /// `TP / (TP + FN)` (sensitivity).
    pub recall: f64,
    /// `TN / (TN + FP)`.
    pub specificity: f64,
    /// `TP / (TP + FP)`.
    pub precision: f64,
}

impl Scores {
    /// The metric names, in the order of [`Scores::values`].
    pub const NAMES: [&'static str; 6] = ["Dice", "IoU", "Acc", "Rec", "Spe", "Pre"];

    /// The values in the order of [`Scores::NAMES`].
    pub fn values(&self) -> [f64; 6] {
        [
            self.dice,
            self.iou,
            self.accuracy,
            self.recall,
            self.specificity,
            self.precision,
        ]
    }
}

/// Mean and (population) standard deviation of one metric over a set of images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (divides by n).
    pub std: f64,
}

impl MeanStd {
    /// Mean and population standard deviation of `values` (0 and 0 for an empty slice).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return MeanStd {
                mean: 0.0,
                std: 0.0,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Metrics summarised over a set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of images.
    pub count: usize,
    /// Dice.
    pub dice: MeanStd,
    /// IoU.
    pub iou: MeanStd,
    /// Accuracy.
    pub accuracy: MeanStd,
    /// Recall.
    pub recall: MeanStd,
    /// Specificity.
    pub specificity: MeanStd,
    /// Precision.
    pub precision: MeanStd,
}

impl Summary {
    /// Summarises per-image scores (each metric averaged over images, as SPEC.md asks).
    pub fn of(scores: &[Scores]) -> Self {
        let col = |f: fn(&Scores) -> f64| MeanStd::of(&scores.iter().map(f).collect::<Vec<_>>());
        Summary {
            count: scores.len(),
            dice: col(|s| s.dice),
            iou: col(|s| s.iou),
            accuracy: col(|s| s.accuracy),
            recall: col(|s| s.recall),
            specificity: col(|s| s.specificity),
            precision: col(|s| s.precision),
        }
    }

    /// The summaries in the order of [`Scores::NAMES`].
    pub fn values(&self) -> [MeanStd; 6] {
        [
            self.dice,
            self.iou,
            self.accuracy,
            self.recall,
            self.specificity,
            self.precision,
        ]
    }
}

/// What the second stage changed in the first stage's mask, counted against the truth (SPEC.md,
/// "The two stages": the fine mask corrects the coarse one; the page's self-correction map
/// draws the same kinds of pixel, at the image's own size where `scl eval` counts at the working
/// size). All maps are thresholded at 0.5, like [`Confusion::from_maps`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// Pixels in the image.
    pub pixels: u64,
    /// Added to the coarse mask where the truth is lesion: a fix.
    pub added_lesion: u64,
    /// Added where the truth is background: a new error.
    pub added_background: u64,
    /// Removed from the coarse mask where the truth is background: a fix.
    pub removed_background: u64,
    /// Removed where the truth is lesion: a new error.
    pub removed_lesion: u64,
}

impl Correction {
    /// Counts the changes from `coarse` to `fine` against `truth` (three maps of one length).
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn from_maps(coarse: &[f32], fine: &[f32], truth: &[f32]) -> Self {
        assert_eq!(coarse.len(), fine.len(), "coarse and fine sizes differ");
        assert_eq!(fine.len(), truth.len(), "prediction and truth sizes differ");
        let mut c = Correction {
            pixels: truth.len() as u64,
            ..Correction::default()
        };
        for ((&a, &b), &t) in coarse.iter().zip(fine).zip(truth) {
            match (a >= THRESHOLD, b >= THRESHOLD, t >= THRESHOLD) {
                (false, true, true) => c.added_lesion += 1,
                (false, true, false) => c.added_background += 1,
                (true, false, false) => c.removed_background += 1,
                (true, false, true) => c.removed_lesion += 1,
                _ => {}
            }
        }
        c
    }

    /// Pixels stage 2 added to the coarse mask.
    pub fn added(&self) -> u64 {
        self.added_lesion + self.added_background
    }

    /// Pixels stage 2 removed from the coarse mask.
    pub fn removed(&self) -> u64 {
        self.removed_background + self.removed_lesion
    }
}

/// [`Correction`]s summarised over a set of images: how much stage 2 adds and removes, and how
/// often it is right to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectionSummary {
    /// Number of images.
    pub count: usize,
    /// Images where stage 2 changed at least one pixel.
    pub changed: usize,
    /// Share of the image added to the coarse mask (mean and std over images).
    pub added: MeanStd,
    /// Share of the image removed from the coarse mask (mean and std over images).
    pub removed: MeanStd,
    /// Of all added pixels (pooled over the set), the share that is lesion (1 when none added).
    pub added_right: f64,
    /// Of all removed pixels (pooled), the share that is background (1 when none removed).
    pub removed_right: f64,
}

impl CorrectionSummary {
    /// Summarises per-image corrections.
    pub fn of(corrections: &[Correction]) -> Self {
        let share = |f: fn(&Correction) -> u64| {
            let v: Vec<f64> = corrections
                .iter()
                .map(|c| f(c) as f64 / c.pixels.max(1) as f64)
                .collect();
            MeanStd::of(&v)
        };
        let sum = |f: fn(&Correction) -> u64| corrections.iter().map(f).sum::<u64>();
        CorrectionSummary {
            count: corrections.len(),
            changed: corrections
                .iter()
                .filter(|c| c.added() + c.removed() > 0)
                .count(),
            added: share(Correction::added),
            removed: share(Correction::removed),
            added_right: ratio(sum(|c| c.added_lesion), sum(Correction::added)),
            removed_right: ratio(sum(|c| c.removed_background), sum(Correction::removed)),
        }
    }
}
