//! The Mean Teacher baseline of the paper's table (Tarvainen and Valpola, 2017) on the
//! supervised (single-stage) network: an exponential-moving-average teacher, Gaussian noise on
//! the teacher's input, and a consistency loss between the student's and the teacher's
//! probabilities on the unlabeled batch, weighted with a sigmoid ramp-up.

use std::path::Path;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::iteration::{Batch, LossTerms, LossWeights};
use crate::Error;
use crate::loss::segmentation_loss;
use crate::model::{FineParts, Scl};
use crate::rng::Rng;
use crate::weights::{self, Precision};

/// Mean Teacher's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanTeacherOptions {
    /// EMA decay of the teacher.
    pub ema: f64,
    /// Largest consistency weight (after the ramp-up).
    pub consistency: f64,
    /// Ramp-up length as a fraction of all iterations.
    pub rampup: f64,
    /// Standard deviation of the teacher's input noise (clipped to +-2 std).
    pub teacher_noise: f64,
}

/// The teacher and what it needs between iterations.
pub struct MeanTeacher {
    /// The EMA teacher (an inference copy on the plain device).
    pub teacher: Scl,
    options: MeanTeacherOptions,
    rng: Rng,
}

/// File name of the teacher's weights in a run folder.
pub const TEACHER_FILE: &str = "last-teacher.bpk";

impl MeanTeacher {
    /// A teacher starting as a copy of `student`, or the one saved in `out` when resuming.
    pub fn new(
        student: &Scl,
        options: MeanTeacherOptions,
        out: &Path,
        resume: bool,
        seed: u64,
        iteration: usize,
        device: &Device,
    ) -> Result<Self, Error> {
        let path = out.join(TEACHER_FILE);
        let teacher = if resume && path.is_file() {
            weights::load_file(&path, device)?.valid()
        } else {
            deep_copy(&student.valid(), device)?
        };
        Ok(Self {
            teacher,
            options,
            rng: Rng::stream(seed, 0x7EAC_0000 + iteration as u64),
        })
    }

    /// Saves the teacher into the run folder.
    pub fn save(&self, out: &Path) -> Result<(), Error> {
        Ok(weights::save_file(
            &self.teacher,
            &out.join(TEACHER_FILE),
            Precision::F32,
        )?)
    }

    /// The consistency weight at `progress` (iterations done / all iterations).
    pub fn weight(&self, progress: f64) -> f64 {
        self.options.consistency * sigmoid_rampup(progress / self.options.rampup.max(1e-9))
    }

    /// One iteration: `2 L_seg` on the labeled batch plus the ramped consistency weight times the
    /// mean squared difference between the student's and the teacher's probabilities on the
    /// unlabeled batch; then the SGD step and the teacher's EMA update. Returns the student,
    /// the loss terms and the (unweighted) consistency loss.
    pub fn step(
        &mut self,
        student: Scl,
        optim: &mut ModuleOptimizer,
        batch: &Batch,
        lr: f64,
        progress: f64,
    ) -> (Scl, LossTerms, f64) {
        let (xl, y) = batch.labeled.as_ref().expect("labeled batch");
        let n = xl.dims()[0];
        let (seg_loss, cons) = match &batch.unlabeled {
            Some(xu) if xu.dims()[0] == n => {
                let x = Tensor::cat(vec![xl.clone(), xu.clone()], 0);
                let out = student.forward_grouped(x, FineParts::SEGMENT_DEEP, 2);
                let lab: Vec<Tensor<4>> = out
                    .seg
                    .iter()
                    .map(|t| t.clone().slice(s![0..n, .., .., ..]))
                    .collect();
                let p_student = sigmoid(out.seg[0].clone().slice(s![n..2 * n, .., .., ..]));
                let p_teacher = self.teacher_probs(xu);
                let cons = (p_student - p_teacher).square().mean();
                (segmentation_loss(&lab, y.clone()), Some(cons))
            }
            _ => {
                let out = student.forward_aligned(xl.clone(), FineParts::SEGMENT_DEEP);
                (segmentation_loss(&out.seg, y.clone()), None)
            }
        };
        let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
        let seg_v = scalar(&seg_loss);
        let cons_v = cons.as_ref().map(scalar).unwrap_or(0.0);
        let weights = LossWeights {
            inp: self.weight(progress),
            ..LossWeights::SPEC
        };
        let total = weights.total(Some(seg_loss), cons);
        let total_v = scalar(&total);
        let grads = GradientsParams::from_grads(total.backward(), &student);
        let student = optim.step(lr, student, grads);
        let teacher = self.teacher.clone();
        self.teacher = ema_update(teacher, &student, self.options.ema);
        let terms = LossTerms {
            seg: seg_v,
            total: total_v,
            ..LossTerms::default()
        };
        (student, terms, cons_v)
    }

    /// The teacher's fine probabilities on `xu` plus clipped Gaussian noise, on `xu`'s device.
    fn teacher_probs(&mut self, xu: &Tensor<4>) -> Tensor<4> {
        let std = self.options.teacher_noise;
        let [b, c, h, w] = xu.dims();
        let noise: Vec<f32> = (0..b * c * h * w)
            .map(|_| (self.rng.normal() * std).clamp(-2.0 * std, 2.0 * std) as f32)
            .collect();
        let plain = self.teacher.devices()[0].clone();
        let xt = xu.clone().inner().to_device(&plain)
            + Tensor::<4>::from_data(TensorData::new(noise, [b, c, h, w]), &plain);
        let (_, p) = self.teacher.predict_mask(xt).expect("teacher input");
        Tensor::<4>::from_data(p.into_data(), &xu.device())
    }
}

/// A deep copy of a module through its serialised weights (clones of a Burn module share
/// their batch-norm statistics).
fn deep_copy(model: &Scl, device: &Device) -> Result<Scl, Error> {
    let bytes = weights::to_bytes(model, Precision::F32)?;
    Ok(weights::from_bytes(&bytes, "copy", device)?)
}

/// Mean Teacher's EMA update: every float of `teacher` (parameters and batch-norm statistics)
/// becomes `decay * teacher + (1 - decay) * student`.
pub fn ema_update(teacher: Scl, student: &Scl, decay: f64) -> Scl {
    struct Collect(Vec<TensorData>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().into_data());
        }
    }
    struct Apply {
        values: std::vec::IntoIter<TensorData>,
        decay: f64,
    }
    impl ModuleMapper for Apply {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let s = self.values.next().expect("same structure");
            let decay = self.decay;
            p.map(|t| {
                let s = Tensor::<D>::from_data(s, &t.device());
                t * decay + s * (1.0 - decay)
            })
        }
    }
    let mut c = Collect(Vec::new());
    student.valid().visit(&mut c);
    teacher.map(&mut Apply {
        values: c.0.into_iter(),
        decay,
    })
}

/// Sigmoid ramp-up `exp(-5 (1 - t)^2)` for `t` in [0, 1].
pub fn sigmoid_rampup(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    (-5.0 * (1.0 - t).powi(2)).exp()
}
