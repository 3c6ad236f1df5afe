//! A run's records: the state saved with every checkpoint (`state.json`), one record per epoch,
//! and the CSV log (`log.csv`) with the learning curves and diagnostics.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::iteration::LossTerms;
use crate::Error;
use crate::metrics::Summary;

/// Run state saved with every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Iterations done.
    pub iteration: usize,
    /// Best validation Dice so far (fraction).
    pub best_dice: f64,
    /// Epoch of the best checkpoint.
    pub best_epoch: usize,
    /// Best validation Dice of the Mean Teacher's teacher (0 for other methods).
    #[serde(default)]
    pub best_teacher_dice: f64,
    /// Training seconds so far (across resumes).
    pub seconds: f64,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
}

/// What a validation measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// Fine-mask scores on the validation set.
    pub val: Summary,
    /// Mean Dice of the stage-1 (coarse) mask on the validation set.
    pub coarse_dice: f64,
    /// Mean Teacher: the teacher's scores.
    pub teacher: Option<Summary>,
    /// Two-stage methods: mean Dice of the stage-1 masks on a fixed subset of the unlabeled
    /// images against their hidden masks (how well stage 2's erased regions match lesions).
    pub unlabeled_coarse_dice: Option<f64>,
    /// The same subset's fine-mask Dice.
    pub unlabeled_fine_dice: Option<f64>,
    /// Gradient norm of `L_seg` at the encoder (one batch).
    pub grad_seg: Option<f64>,
    /// Gradient norm of `L_inp` at the encoder (one batch).
    pub grad_inp: Option<f64>,
}

/// One epoch's log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Iterations done at its end.
    pub iteration: usize,
    /// Learning rate at its last iteration.
    pub lr: f64,
    /// Mean loss terms over the epoch.
    pub loss: LossTerms,
    /// Mean consistency loss (Mean Teacher).
    pub consistency: f64,
    /// Validation, when validated.
    pub validation: Option<Validation>,
    /// Training seconds at its end.
    pub seconds: f64,
}

/// The CSV log's header.
pub const CSV_HEADER: &str = "epoch,iteration,lr,loss,seg,inp,seg_coarse,consistency,val_dice,val_iou,val_acc,val_rec,val_spe,val_pre,val_coarse_dice,teacher_dice,unl_coarse_dice,unl_fine_dice,grad_seg,grad_inp,seconds\n";

impl EpochRecord {
    /// The record as a CSV row (empty cells where nothing was measured).
    pub fn csv_row(&self) -> String {
        let v = self.validation.as_ref();
        let f = |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_default();
        let g = |x: Option<f64>| x.map(|x| format!("{x:.4e}")).unwrap_or_default();
        let s = |get: fn(&Summary) -> f64| f(v.map(|v| get(&v.val)));
        format!(
            "{},{},{:.6e},{:.5},{:.5},{:.5},{:.5},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{:.1}\n",
            self.epoch,
            self.iteration,
            self.lr,
            self.loss.total,
            self.loss.seg,
            self.loss.inp,
            self.loss.coarse,
            self.consistency,
            s(|s| s.dice.mean),
            s(|s| s.iou.mean),
            s(|s| s.accuracy.mean),
            s(|s| s.recall.mean),
            s(|s| s.specificity.mean),
            s(|s| s.precision.mean),
            f(v.map(|v| v.coarse_dice)),
            f(v.and_then(|v| v.teacher.as_ref().map(|t| t.dice.mean))),
            f(v.and_then(|v| v.unlabeled_coarse_dice)),
            f(v.and_then(|v| v.unlabeled_fine_dice)),
            g(v.and_then(|v| v.grad_seg)),
            g(v.and_then(|v| v.grad_inp)),
            self.seconds
        )
    }
}

/// Starts `log.csv`: the header, then (when resuming) the rows of the epochs the saved state
/// holds. Rewriting them drops rows logged after the last checkpoint (which training repeats)
/// and keeps the file in this build's columns when an older build started the run.
pub fn start_csv(path: &Path, resume: bool, epochs: &[EpochRecord]) -> Result<(), Error> {
    let mut text = CSV_HEADER.to_string();
    if resume {
        text.extend(epochs.iter().map(EpochRecord::csv_row));
    }
    crate::weights::write_atomic(path, text.as_bytes()).map_err(|e| io(path, e))
}

/// Appends one row to `log.csv`.
pub fn append_csv(path: &Path, row: &str) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(row.as_bytes()))
        .map_err(|e| io(path, e))
}

/// An I/O error naming its path.
pub fn io(p: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: p.display().to_string(),
        source: e,
    }
}

/// `1h02m03s`.
pub fn hms(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}
