//! The training methods of the paper's experiment (SPEC.md, the paper's table and Fig. 4) and
//! this project's ablations: which network each trains and which data it reads. A new method
//! is a variant here plus its step (see `run.rs`'s `Stepper`).

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::{Fusion, ModelConfig};
/// The training methods of the paper's experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// SCL with gated feature fusion (labeled + unlabeled).
    Scl,
    /// SCL with additive fusion (ablation).
    SclAdd,
    /// SCL with concatenation fusion (ablation).
    SclConcat,
    /// SCL with residual concatenation fusion, `s + Conv1x1([s, p])` (this project's ablation).
    SclConcatRes,
    /// Diagnostic ablation: SCL whose unlabeled images are erased with their *true* masks
    /// instead of the stage-1 prediction (an upper bound on what better erasing could give).
    SclOracle,
    /// Encoder + segmentation decoder on labeled images (the paper's baseline).
    Supervised,
    /// The full two-stage network on labeled images only (the paper's Fig. 4 middle curve).
    TwoStage,
    /// Mean Teacher on the supervised network (EMA teacher, noisy teacher input, consistency on
    /// probabilities with a sigmoid ramp-up).
    MeanTeacher,
}

impl Method {
    /// All methods, as the CLI lists them.
    pub const ALL: [Method; 8] = [
        Method::Scl,
        Method::SclAdd,
        Method::SclConcat,
        Method::SclConcatRes,
        Method::SclOracle,
        Method::Supervised,
        Method::TwoStage,
        Method::MeanTeacher,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Scl => "scl",
            Method::SclAdd => "scl-add",
            Method::SclConcat => "scl-concat",
            Method::SclConcatRes => "scl-concat-res",
            Method::SclOracle => "scl-oracle",
            Method::Supervised => "supervised",
            Method::TwoStage => "two-stage",
            Method::MeanTeacher => "mean-teacher",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        crate::config::by_name(Method::ALL, Method::name, name, "method")
    }

    /// The network configuration the method trains, from a preset's.
    pub fn network(self, base: &ModelConfig) -> ModelConfig {
        let mut c = base.clone();
        match self.fusion() {
            Some(fusion) => {
                c.two_stage = true;
                c.fusion = fusion;
            }
            None => c.two_stage = false,
        }
        c
    }

    /// The fusion of the two-stage network the method trains; `None` for the single-stage
    /// methods.
    fn fusion(self) -> Option<Fusion> {
        match self {
            Method::Scl | Method::SclOracle | Method::TwoStage => Some(Fusion::Gff),
            Method::SclAdd => Some(Fusion::Add),
            Method::SclConcat => Some(Fusion::Concat),
            Method::SclConcatRes => Some(Fusion::ConcatResidual),
            Method::Supervised | Method::MeanTeacher => None,
        }
    }

    /// Whether the method reads unlabeled images.
    pub fn uses_unlabeled(self) -> bool {
        matches!(
            self,
            Method::Scl
                | Method::SclAdd
                | Method::SclConcat
                | Method::SclConcatRes
                | Method::SclOracle
                | Method::MeanTeacher
        )
    }

    /// Whether the unlabeled images' masks are loaded (the oracle erases with them).
    pub fn reads_hidden_masks(self) -> bool {
        self == Method::SclOracle
    }
}
