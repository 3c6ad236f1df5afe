//! Training (SPEC.md "Losses" and "Training").
//!
//! - `iteration`: one SCL iteration (losses, backward, SGD step), shared by the native trainer,
//!   the benchmark and the page's fine-tuning (compiled for wasm32 too).
//! - Native only: `method` (which network and data each method uses), `mean_teacher` (the
//!   baseline's teacher and step), `loader` (decoding, deterministic per-iteration sampling and
//!   augmentation), `validate` (per-image scores of the fine and coarse masks), `diagnostics`
//!   (the two losses' pull on the encoder), `log` (state, per-epoch records, CSV) and `run`
//!   (the loop, checkpoints, resume).
//!
//! burn-train's `Learner` is not used: it checkpoints and resumes at epoch granularity with a
//! loader that is not told the iteration (a resumed run here replays exactly the batches it
//! would have seen, mid-epoch too), it has no hook after the optimiser step for Mean Teacher's
//! EMA, and its Dice metric pools pixels over the batch where SPEC.md averages per image; the
//! loop here is about as long as the glue those would need.

mod iteration;
pub use iteration::*;

#[cfg(not(target_family = "wasm"))]
pub mod diagnostics;
#[cfg(not(target_family = "wasm"))]
pub mod loader;
#[cfg(not(target_family = "wasm"))]
pub mod log;
#[cfg(not(target_family = "wasm"))]
pub mod mean_teacher;
#[cfg(not(target_family = "wasm"))]
pub mod method;
#[cfg(not(target_family = "wasm"))]
pub mod run;
#[cfg(not(target_family = "wasm"))]
pub mod validate;

#[cfg(not(target_family = "wasm"))]
pub use log::{EpochRecord, RunState};
#[cfg(not(target_family = "wasm"))]
pub use mean_teacher::MeanTeacherOptions;
#[cfg(not(target_family = "wasm"))]
pub use method::Method;
#[cfg(not(target_family = "wasm"))]
pub use run::{STOP, TrainOptions, run};
#[cfg(not(target_family = "wasm"))]
pub use validate::{Evaluation, ValSet, evaluate};
