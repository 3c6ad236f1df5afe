//! The collapse guard of adaptation: the predicted lesion area of each step's batch is
//! followed (an exponential average); when it runs away from where it started (to a quarter of
//! it, or most of the background gone), or the loss stops being a number, the run stops and
//! the weights go back to the last snapshot whose own prediction was still healthy.

use burn::module::Module;

use crate::model::Scl;

/// Steps whose foreground fraction sets the reference.
const WARMUP: usize = 3;
/// Weight of the newest value in the running average.
const ALPHA: f64 = 0.2;
/// A snapshot of the weights is taken every this many steps.
const SNAPSHOT_EVERY: usize = 10;

/// What the guard says after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Stopped: why, in words a user can act on.
    Collapsed {
        /// The message.
        message: String,
    },
}

/// The guard's state.
#[derive(Default)]
pub struct Guard {
    first: Vec<f64>,
    reference: Option<f64>,
    average: Option<f64>,
    /// A copy taken before step `.0`, not yet known to be healthy.
    candidate: Option<(usize, Scl)>,
    /// The last copy whose prediction was measured healthy, and its step.
    snapshot: Option<(usize, Scl)>,
    stopped: Option<String>,
}

impl Guard {
    /// Called before step `step` updates `model`: keeps a copy every few steps.
    pub fn before_step(&mut self, step: usize, model: &Scl) {
        if step == 0 {
            self.snapshot = Some((0, model.valid()));
        } else if step.is_multiple_of(SNAPSHOT_EVERY) {
            self.candidate = Some((step, model.valid()));
        }
    }

    /// The step's loss and foreground fraction (both measured before its update).
    pub fn record(&mut self, steps_done: usize, loss: f64, foreground: f64) -> Verdict {
        let step = steps_done.saturating_sub(1);
        if !loss.is_finite() || !foreground.is_finite() {
            return self.stop(step, format!("the loss became {loss}"));
        }
        let avg = match self.average {
            Some(a) => (1.0 - ALPHA) * a + ALPHA * foreground,
            None => foreground,
        };
        self.average = Some(avg);
        if self.reference.is_none() {
            self.first.push(foreground);
            if self.first.len() == WARMUP {
                self.reference = Some(self.first.iter().sum::<f64>() / WARMUP as f64);
            }
        }
        if let Some(r) = self.reference
            && is_collapse(r, avg)
        {
            return self.stop(
                step,
                format!(
                    "the predicted lesion area drifted from {:.1}% to {:.1}% of the image",
                    100.0 * r,
                    100.0 * avg
                ),
            );
        }
        if self.candidate.as_ref().is_some_and(|c| c.0 == step) {
            self.snapshot = self.candidate.take();
        }
        Verdict::Continue
    }

    fn stop(&mut self, step: usize, why: String) -> Verdict {
        let back = match &self.snapshot {
            Some((0, _)) | None => "the weights were reverted to the original ones".to_string(),
            Some((s, _)) => format!("the weights were reverted to those before step {}", s + 1),
        };
        let message = format!(
            "adaptation stopped at step {}: {why} (collapse); {back}",
            step + 1
        );
        self.stopped = Some(message.clone());
        Verdict::Collapsed { message }
    }

    /// The last healthy copy of the weights.
    pub fn snapshot(&self) -> Option<&Scl> {
        self.snapshot.as_ref().map(|s| &s.1)
    }

    /// Why the run stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

/// Whether a running foreground fraction `avg` has collapsed from the reference `r`: below a
/// quarter of it (when it was not already negligible), or with three quarters of the
/// background gone.
pub fn is_collapse(r: f64, avg: f64) -> bool {
    (r > 0.002 && avg < r / 4.0) || avg > r + 0.75 * (1.0 - r)
}
