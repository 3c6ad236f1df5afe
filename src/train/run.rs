//! A native training run on a folder dataset (SPEC.md "Training"): the labeled/unlabeled
//! partition, the schedule (poly learning rate per iteration), the method's step, validation
//! and diagnostics every few epochs, best-checkpoint keeping, crash-safe checkpoints and resume.
//!
//! Files of a run folder: `options.json`, `partition.json`, `validation.json` (the stems),
//! `log.csv` (learning curves and diagnostics), `state.json`, `last.bpk` + `last-optim.bpk`
//! (+ `last-teacher.bpk` for Mean Teacher), `best.bpk` (+ `best-teacher.bpk`). Every file is
//! written to a temporary name and renamed, so a crash leaves the previous version whole.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::diagnostics::encoder_grad_norms;
use super::iteration::{self, Batch, LossTerms, LossWeights};
use super::loader::{HostBatch, Images, LoaderSpec, load_pairs, spawn_loader};
use super::log::{self, EpochRecord, RunState, Validation, hms, io};
use super::mean_teacher::{MeanTeacher, MeanTeacherOptions};
use super::method::Method;
use super::validate::{ValSet, evaluate};
use crate::Error;
use crate::augment::Augment;
use crate::config::ModelConfig;
use crate::data::{Dataset, Partition};
use crate::metrics::{Scores, Summary};
use crate::model::Scl;
use crate::weights::{self, Precision};

/// Everything a training run is made of (written to `options.json` in the run folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Dataset folder (`images/`, `masks/`, optional `split.json`).
    pub data: PathBuf,
    /// Training split name.
    pub train_split: String,
    /// Validation split name.
    pub val_split: String,
    /// Validation fraction when the dataset has no `split.json`.
    pub val_fraction: f64,
    /// Fraction of the training split used with labels.
    pub label_ratio: f64,
    /// Method.
    pub method: Method,
    /// Network: a preset's configuration, which the method adjusts (`Method::network`; the
    /// run folder's `options.json` records the adjusted one, the network actually trained).
    pub config: ModelConfig,
    /// ImageNet weights for the encoder (torchvision names, `.safetensors` or `.pth`).
    pub pretrained: Option<PathBuf>,
    /// Seed of the labeled selection, the split, initialisation, sampling and augmentation.
    pub seed: u64,
    /// Epochs (an epoch is `iters_per_epoch` iterations).
    pub epochs: usize,
    /// Iterations per epoch (default: one pass over the unlabeled set, else the labeled set).
    pub iters_per_epoch: Option<usize>,
    /// Labeled (and unlabeled) images per iteration.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Working size: images are resized to this square first.
    pub size: u32,
    /// Training crop.
    pub crop: u32,
    /// Validate every this many epochs (and after the last).
    pub val_every: usize,
    /// Weight of the inpainting loss, lambda_inp (SPEC.md: 1).
    pub inp_weight: f64,
    /// Weight of a BCE + Dice loss on the labeled images' stage-1 (coarse) mask, two-stage
    /// methods only (SPEC.md: none, 0; this project's variant).
    #[serde(default)]
    pub coarse_weight: f64,
    /// Mean Teacher's settings.
    pub mean_teacher: MeanTeacherOptions,
    /// Unlabeled images (with their hidden masks) scored at each validation for the
    /// diagnostics of the two-stage methods; 0 turns the diagnostics off.
    pub diagnostic_images: usize,
}

/// Set by Ctrl-C; the trainer saves and exits at the end of the current iteration.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The data of a run, decoded and resized once.
struct RunData {
    images: Arc<Images>,
    val: ValSet,
    /// A fixed subset of the unlabeled images with their hidden masks (diagnostics only).
    unlabeled_probe: Option<ValSet>,
    iters_per_epoch: usize,
}

/// Scans the dataset, draws and writes the partition, decodes every image.
fn prepare(options: &TrainOptions, out: &Path) -> Result<RunData, Error> {
    let write_json = |name: &str, json: String| -> Result<(), Error> {
        let p = out.join(name);
        weights::write_atomic(&p, json.as_bytes()).map_err(|e| io(&p, e))
    };
    let pretty = |v: &dyn erased::Json| v.json();
    let method = options.method;
    let dataset = Dataset::scan(&options.data)?;
    let train_stems = dataset.split(&options.train_split, options.val_fraction, options.seed)?;
    let val_stems = dataset.split(&options.val_split, options.val_fraction, options.seed)?;
    let partition = Partition::select(&train_stems, options.label_ratio, options.seed);
    write_json("partition.json", pretty(&partition))?;
    // The validation stems too: for a dataset without split.json they come from the seeded split.
    write_json("validation.json", pretty(&val_stems))?;
    // What the method trains (e.g. single-stage for supervised), recorded and used below.
    let trained = TrainOptions {
        config: method.network(&options.config),
        ..options.clone()
    };
    write_json("options.json", pretty(&trained))?;
    let (labeled_pairs, missing) = dataset.select(&partition.labeled);
    let (unlabeled_pairs, missing_u) = dataset.select(&partition.unlabeled);
    for m in missing.iter().chain(&missing_u) {
        eprintln!("skipped: {m}: listed in the split but not found in images/");
    }
    let t0 = Instant::now();
    let labeled: Vec<_> = load_pairs(&labeled_pairs, options.size, true)
        .into_iter()
        .map(|(_, i, m)| (i, m.expect("mask")))
        .collect();
    if labeled.is_empty() {
        return Err(Error::Config("no usable labeled image".into()));
    }
    let unlabeled: Vec<_> = if method.uses_unlabeled() {
        load_pairs(&unlabeled_pairs, options.size, method.reads_hidden_masks())
            .into_iter()
            .map(|(_, i, m)| (i, m))
            .collect()
    } else {
        Vec::new()
    };
    let (val_pairs, _) = dataset.select(&val_stems);
    let val = ValSet::load(&val_pairs, options.size);
    let probe_n = options.diagnostic_images.min(unlabeled_pairs.len());
    let unlabeled_probe = (trained.config.two_stage && probe_n > 0)
        .then(|| ValSet::load(&unlabeled_pairs[..probe_n], options.size));
    eprintln!(
        "data: {} labeled, {} unlabeled, {} validation images ({} split), loaded in {:.1} s",
        labeled.len(),
        unlabeled.len(),
        val.images.len(),
        options.val_split,
        t0.elapsed().as_secs_f64()
    );
    let iters_per_epoch = options.iters_per_epoch.unwrap_or_else(|| {
        let n = if partition.unlabeled.is_empty() {
            partition.labeled.len()
        } else {
            partition.unlabeled.len()
        };
        n.div_ceil(options.batch)
    });
    Ok(RunData {
        images: Arc::new(Images { labeled, unlabeled }),
        val,
        unlabeled_probe,
        iters_per_epoch,
    })
}

/// How the run's method takes a step.
enum Stepper {
    /// SCL, its ablations, supervised and two-stage: [`iteration::step_weighted`].
    Plain(LossWeights),
    /// Mean Teacher and its teacher.
    MeanTeacher(Box<MeanTeacher>),
}

impl Stepper {
    fn step(
        &mut self,
        model: Scl,
        optim: &mut ModuleOptimizer,
        batch: &Batch,
        lr: f64,
        progress: f64,
    ) -> (Scl, LossTerms, f64) {
        match self {
            Stepper::Plain(w) => {
                let (m, t) = iteration::step_weighted(model, optim, batch, lr, *w);
                (m, t, 0.0)
            }
            Stepper::MeanTeacher(mt) => mt.step(model, optim, batch, lr, progress),
        }
    }

    fn teacher(&self) -> Option<&MeanTeacher> {
        match self {
            Stepper::MeanTeacher(mt) => Some(mt),
            Stepper::Plain(_) => None,
        }
    }
}

/// The model, optimiser, state and method of a run (new or resumed).
struct Session {
    model: Scl,
    optim: ModuleOptimizer,
    state: RunState,
    stepper: Stepper,
}

impl Session {
    fn start(
        options: &TrainOptions,
        config: &ModelConfig,
        out: &Path,
        device: &Device,
        resume: bool,
    ) -> Result<Self, Error> {
        let ad = device.clone().autodiff();
        ad.seed(options.seed);
        let mut state = RunState::default();
        let mut model = Scl::new(config, &ad)?;
        let mut optim = iteration::sgd();
        let resuming = resume && out.join("state.json").is_file();
        if resuming {
            let p = out.join("state.json");
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            state = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
            model = weights::load_file(&out.join("last.bpk"), &ad)?;
            optim = optim
                .load(out.join("last-optim.bpk"))
                .map_err(|e| Error::Config(format!("optimizer state: {e:?}")))?;
            eprintln!("resuming at iteration {}", state.iteration);
        } else if let Some(path) = &options.pretrained {
            let (m, report) = crate::pretrained::import_file(model, path)?;
            eprintln!(
                "encoder: {} ImageNet tensors from {} ({} ignored)",
                report.loaded,
                path.display(),
                report.ignored.len()
            );
            model = m;
        }
        // Dropout masks on the CPU come from a per-thread generator (model::dropout).
        crate::model::dropout::seed(
            options
                .seed
                .wrapping_add(state.iteration as u64 * 0x0100_0193),
        );
        let stepper = match options.method {
            Method::MeanTeacher => Stepper::MeanTeacher(Box::new(MeanTeacher::new(
                &model,
                options.mean_teacher,
                out,
                resuming,
                options.seed,
                state.iteration,
                device,
            )?)),
            _ => Stepper::Plain(LossWeights {
                inp: options.inp_weight,
                coarse: options.coarse_weight,
                ..LossWeights::SPEC
            }),
        };
        Ok(Self {
            model,
            optim,
            state,
            stepper,
        })
    }

    /// Writes `last.bpk`, the optimiser, the teacher and `state.json` (each atomically;
    /// `state.json` last, so a crash between two files resumes from the previous state with
    /// newer weights at worst, never from a torn file).
    fn save(&self, out: &Path, seconds: f64) -> Result<(), Error> {
        let mut state = self.state.clone();
        state.seconds = seconds;
        weights::save_file(&self.model.valid(), &out.join("last.bpk"), Precision::F32)?;
        if let Some(mt) = self.stepper.teacher() {
            mt.save(out)?;
        }
        let optim_path = out.join("last-optim.bpk");
        let tmp = out.join("last-optim.tmp.bpk");
        let _ = std::fs::remove_file(&tmp);
        self.optim
            .save(&tmp)
            .map_err(|e| Error::Config(format!("saving the optimizer state: {e:?}")))?;
        std::fs::rename(&tmp, &optim_path).map_err(|e| io(&optim_path, e))?;
        let p = out.join("state.json");
        let json = serde_json::to_string_pretty(&state).expect("state");
        weights::write_atomic(&p, json.as_bytes()).map_err(|e| io(&p, e))
    }
}

/// Trains a model as `options` say, writing everything into `out`. With `resume`, continues the
/// run saved in `out`.
pub fn run(options: &TrainOptions, out: &Path, device: &Device, resume: bool) -> Result<(), Error> {
    let method = options.method;
    let config = method.network(&options.config);
    config.validate()?;
    check_options(options)?;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let data = prepare(options, out)?;
    let ipe = data.iters_per_epoch;
    let total = ipe * options.epochs;
    let mut s = Session::start(options, &config, out, device, resume)?;
    announce(options, &config, &s.model, ipe);
    let spec = LoaderSpec {
        batch: options.batch,
        aug: Augment::spec(options.crop),
        seed: options.seed,
        unlabeled: method.uses_unlabeled(),
    };
    let rx = spawn_loader(data.images.clone(), spec, s.state.iteration..total);
    let ad = s.model.devices()[0].clone();
    let crop = options.crop as usize;
    let progress = Progress::new(s.state.iteration, s.state.seconds);
    let mut sums = EpochSums::default();
    let csv_path = out.join("log.csv");
    log::start_csv(&csv_path, resume, &s.state.epochs)?;

    while s.state.iteration < total {
        if STOP.load(Ordering::SeqCst) {
            s.save(out, progress.run_seconds())?;
            eprintln!(
                "\ninterrupted: saved the run at iteration {}; continue with --resume",
                s.state.iteration
            );
            return Ok(());
        }
        let hb = rx
            .recv()
            .map_err(|_| Error::Config("data loader stopped".into()))?;
        let batch = to_batch(hb, crop, &ad);
        let lr = iteration::poly_lr(options.lr, s.state.iteration, total);
        let frac = s.state.iteration as f64 / total as f64;
        let (next, terms, cons) = s.stepper.step(s.model, &mut s.optim, &batch, lr, frac);
        s.model = next;
        if !terms.total.is_finite() {
            return Err(Error::Config(format!(
                "the loss became {} at iteration {}: lower --lr",
                terms.total, s.state.iteration
            )));
        }
        s.state.iteration += 1;
        sums.add(&terms, cons);
        progress.report(options, method, &s.state, total, ipe, &terms, cons, lr);

        if s.state.iteration % ipe == 0 || s.state.iteration == total {
            let epoch = s.state.iteration.div_ceil(ipe);
            let mut record = sums.take(epoch, s.state.iteration, lr, progress.run_seconds());
            if epoch % options.val_every.max(1) == 0 || s.state.iteration == total {
                record.validation = Some(validate(&mut s, &data, &batch, out, epoch, device)?);
            }
            log::append_csv(&csv_path, &record.csv_row())?;
            s.state.epochs.push(record);
            s.save(out, progress.run_seconds())?;
        }
    }
    eprintln!(
        "done: best val Dice {:.2} at epoch {} ({}), weights in {}",
        s.state.best_dice * 100.0,
        s.state.best_epoch,
        hms(progress.run_seconds()),
        out.join("best.bpk").display()
    );
    Ok(())
}

/// The run's first line: the method, the network, its size and the schedule.
fn announce(options: &TrainOptions, config: &ModelConfig, model: &Scl, ipe: usize) {
    let method = options.method;
    let unlabeled = if method.uses_unlabeled() {
        options.batch
    } else {
        0
    };
    let stage1 = match options.coarse_weight {
        w if w > 0.0 => format!(", stage-1 loss weight {w}"),
        _ => String::new(),
    };
    eprintln!(
        "training {} ({}), {} parameters, {} epochs x {ipe} iterations, batch {} + {unlabeled}, lr {}, crop {}{stage1}",
        method.name(),
        config.describe(),
        crate::model::trainable_params(model),
        options.epochs,
        options.batch,
        options.lr,
        options.crop
    );
}

/// The loss terms summed over the iterations of the epoch under way.
#[derive(Default)]
struct EpochSums {
    loss: LossTerms,
    consistency: f64,
    iterations: usize,
}

impl EpochSums {
    fn add(&mut self, terms: &LossTerms, consistency: f64) {
        self.loss.seg += terms.seg;
        self.loss.inp += terms.inp;
        self.loss.coarse += terms.coarse;
        self.loss.total += terms.total;
        self.consistency += consistency;
        self.iterations += 1;
    }

    /// The epoch's record (means over its iterations, not yet validated); starts the next sum.
    fn take(&mut self, epoch: usize, iteration: usize, lr: f64, seconds: f64) -> EpochRecord {
        let sums = std::mem::take(self);
        let n = sums.iterations.max(1) as f64;
        EpochRecord {
            epoch,
            iteration,
            lr,
            loss: LossTerms {
                seg: sums.loss.seg / n,
                inp: sums.loss.inp / n,
                coarse: sums.loss.coarse / n,
                total: sums.loss.total / n,
            },
            consistency: sums.consistency / n,
            validation: None,
            seconds,
        }
    }
}

fn check_options(options: &TrainOptions) -> Result<(), Error> {
    if options.batch == 0 || options.epochs == 0 {
        return Err(Error::Config(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    if options.crop > options.size || !options.crop.is_multiple_of(32) {
        return Err(Error::Config(format!(
            "--crop must be a multiple of 32 no larger than --size ({} > {}?)",
            options.crop, options.size
        )));
    }
    if !(options.inp_weight >= 0.0 && options.inp_weight.is_finite()) {
        return Err(Error::Config(format!(
            "--inp-weight must be a finite number >= 0, got {}",
            options.inp_weight
        )));
    }
    if !(options.coarse_weight >= 0.0 && options.coarse_weight.is_finite()) {
        return Err(Error::Config(format!(
            "--coarse-weight must be a finite number >= 0, got {}",
            options.coarse_weight
        )));
    }
    if options.coarse_weight > 0.0 && !options.method.network(&options.config).two_stage {
        return Err(Error::Config(format!(
            "--coarse-weight needs a two-stage method; {} trains a single-stage network",
            options.method.name()
        )));
    }
    Ok(())
}

/// Host batch to tensors on the autodiff device.
fn to_batch(hb: HostBatch, crop: usize, ad: &Device) -> Batch {
    let to_tensor = |v: Vec<f32>, b: usize, c: usize| {
        Tensor::<4>::from_data(TensorData::new(v, [b, c, crop, crop]), ad)
    };
    let (unlabeled, oracle_masks) = match hb.unlabeled {
        Some((x, m, b)) => (Some(to_tensor(x, b, 3)), m.map(|m| to_tensor(m, b, 1))),
        None => (None, None),
    };
    Batch {
        labeled: hb
            .labeled
            .map(|(x, y, b)| (to_tensor(x, b, 3), to_tensor(y, b, 1))),
        unlabeled,
        oracle_masks,
    }
}

/// Validation at an epoch's end: the model (and a Mean Teacher's teacher) on the validation
/// set, the diagnostics, and `best.bpk` (`best-teacher.bpk`) when the Dice improved. The first
/// validation always writes `best.bpk`, so a finished run always has one.
fn validate(
    s: &mut Session,
    data: &RunData,
    last_batch: &Batch,
    out: &Path,
    epoch: usize,
    device: &Device,
) -> Result<Validation, Error> {
    let t = Instant::now();
    let student = s.model.valid();
    let ev = evaluate(&student, &data.val, device)?;
    let summary = Summary::of(&ev.fine);
    let mean_dice = |v: &[Scores]| v.iter().map(|s| s.dice).sum::<f64>() / v.len().max(1) as f64;
    let mut v = Validation {
        coarse_dice: mean_dice(&ev.coarse),
        val: summary.clone(),
        teacher: None,
        unlabeled_coarse_dice: None,
        unlabeled_fine_dice: None,
        grad_seg: None,
        grad_inp: None,
    };
    if let Some(mt) = s.stepper.teacher() {
        let tv = Summary::of(&evaluate(&mt.teacher, &data.val, device)?.fine);
        if tv.dice.mean > s.state.best_teacher_dice || s.state.best_epoch == 0 {
            s.state.best_teacher_dice = tv.dice.mean;
            weights::save_file(&mt.teacher, &out.join("best-teacher.bpk"), Precision::F32)?;
        }
        v.teacher = Some(tv);
    }
    if let Some(probe) = &data.unlabeled_probe {
        let pe = evaluate(&student, probe, device)?;
        v.unlabeled_coarse_dice = Some(mean_dice(&pe.coarse));
        v.unlabeled_fine_dice = Some(mean_dice(&pe.fine));
        if last_batch.unlabeled.is_some() && last_batch.labeled.is_some() {
            // On a copy: the two extra training-mode passes must not touch the run's
            // batch-norm statistics.
            let bytes = weights::to_bytes(&student, Precision::F32)?;
            let copy = weights::from_bytes(&bytes, "copy", &s.model.devices()[0])?;
            (v.grad_seg, v.grad_inp) = encoder_grad_norms(&copy, last_batch);
        }
    }
    eprintln!("{}", describe(epoch, &v, t.elapsed().as_secs_f64()));
    if s.state.best_epoch == 0 || summary.dice.mean > s.state.best_dice {
        s.state.best_dice = summary.dice.mean;
        s.state.best_epoch = epoch;
        weights::save_file(&student, &out.join("best.bpk"), Precision::F32)?;
    }
    Ok(v)
}

fn describe(epoch: usize, v: &Validation, seconds: f64) -> String {
    let mut line = format!(
        "epoch {epoch}: val Dice {:.2} (coarse {:.2}) IoU {:.2}",
        v.val.dice.mean * 100.0,
        v.coarse_dice * 100.0,
        v.val.iou.mean * 100.0,
    );
    if let Some(t) = &v.teacher {
        line += &format!(", teacher Dice {:.2}", t.dice.mean * 100.0);
    }
    if let (Some(c), Some(f)) = (v.unlabeled_coarse_dice, v.unlabeled_fine_dice) {
        line += &format!(
            "; unlabeled Dice coarse {:.2} fine {:.2}",
            c * 100.0,
            f * 100.0
        );
    }
    if let (Some(gs), Some(gi)) = (v.grad_seg, v.grad_inp) {
        line += &format!("; |grad| at encoder seg {gs:.3e} inp {gi:.3e}");
    }
    line + &format!(" ({} images, {seconds:.0} s)", v.val.count)
}

/// Progress lines and the run's clock (training seconds across resumes).
struct Progress {
    run_start: Instant,
    session_start: Instant,
    session_first: usize,
    tty: bool,
}

impl Progress {
    fn new(iteration: usize, seconds: f64) -> Self {
        Self {
            run_start: Instant::now() - std::time::Duration::from_secs_f64(seconds),
            session_start: Instant::now(),
            session_first: iteration,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn run_seconds(&self) -> f64 {
        self.run_start.elapsed().as_secs_f64()
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        options: &TrainOptions,
        method: Method,
        state: &RunState,
        total: usize,
        ipe: usize,
        terms: &LossTerms,
        cons: f64,
        lr: f64,
    ) {
        let done = state.iteration - self.session_first;
        let per_it = self.session_start.elapsed().as_secs_f64() / done.max(1) as f64;
        let line = format!(
            "epoch {}/{} it {}/{total} | L {:.4} seg {:.4} inp {:.4}{} | lr {:.2e} | {:.2} s/it | ETA {}",
            state.iteration.div_ceil(ipe),
            options.epochs,
            state.iteration,
            terms.total,
            terms.seg,
            terms.inp,
            if method == Method::MeanTeacher {
                format!(" cons {cons:.5}")
            } else if options.coarse_weight > 0.0 {
                format!(" stage-1 {:.4}", terms.coarse)
            } else {
                String::new()
            },
            lr,
            per_it,
            hms(per_it * (total - state.iteration) as f64)
        );
        if self.tty {
            eprint!("\r{line}   ");
        } else if state.iteration.is_multiple_of(20) || state.iteration == total {
            eprintln!("{line}");
        }
    }
}

/// JSON serialisation of the run files without generic closures.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string_pretty(self).expect("serialisable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_sums_are_means_over_the_epoch_and_restart() {
        let mut sums = EpochSums::default();
        let terms = |seg, inp, coarse, total| LossTerms {
            seg,
            inp,
            coarse,
            total,
        };
        sums.add(&terms(2.0, 1.0, 0.5, 5.0), 1.0);
        sums.add(&terms(4.0, 3.0, 1.5, 11.0), 3.0);
        let r = sums.take(1, 2, 0.5, 9.0);
        assert_eq!(r.loss, terms(3.0, 2.0, 1.0, 8.0));
        assert_eq!((r.consistency, r.epoch, r.iteration), (2.0, 1, 2));
        assert!(r.validation.is_none());
        sums.add(&terms(1.0, 0.0, 0.0, 2.0), 0.0);
        assert_eq!(sums.take(2, 3, 0.4, 10.0).loss, terms(1.0, 0.0, 0.0, 2.0));
    }
}
