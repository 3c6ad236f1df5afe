//! Native training and evaluation on folder datasets: the methods of the paper's experiment,
//! SPEC.md's schedule, a background data loader, per-epoch validation, best-checkpoint
//! keeping, resumable runs and logs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::augment::{Augment, augment};
use crate::config::{Fusion, ModelConfig};
use crate::data::{self, Dataset, Pair, Partition};
use crate::loss::{segmentation_loss, total_loss};
use crate::metrics::{Confusion, Scores, Summary};
use crate::model::{FineParts, Scl};
use crate::rng::Rng;
use crate::train::{self, Batch, LossTerms};
use crate::weights::{self, Precision};

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
    pub const ALL: [Method; 6] = [
        Method::Scl,
        Method::SclAdd,
        Method::SclConcat,
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
            Method::Supervised => "supervised",
            Method::TwoStage => "two-stage",
            Method::MeanTeacher => "mean-teacher",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown method '{name}' (one of: {})",
                    Method::ALL.map(|m| m.name()).join(", ")
                ))
            })
    }

    /// The network configuration the method trains, from a preset's.
    pub fn network(self, base: &ModelConfig) -> ModelConfig {
        let mut c = base.clone();
        match self {
            Method::Scl | Method::TwoStage => {
                c.two_stage = true;
                c.fusion = Fusion::Gff;
            }
            Method::SclAdd => {
                c.two_stage = true;
                c.fusion = Fusion::Add;
            }
            Method::SclConcat => {
                c.two_stage = true;
                c.fusion = Fusion::Concat;
            }
            Method::Supervised | Method::MeanTeacher => c.two_stage = false,
        }
        c
    }

    /// Whether the method reads unlabeled images.
    pub fn uses_unlabeled(self) -> bool {
        matches!(
            self,
            Method::Scl | Method::SclAdd | Method::SclConcat | Method::MeanTeacher
        )
    }
}

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
    /// Network (before the method's adjustments).
    pub config: ModelConfig,
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
    /// Mean Teacher: EMA decay.
    pub ema: f64,
    /// Mean Teacher: largest consistency weight.
    pub consistency: f64,
    /// Mean Teacher: ramp-up length as a fraction of all iterations.
    pub rampup: f64,
    /// Mean Teacher: standard deviation of the teacher's input noise.
    pub teacher_noise: f64,
}

/// Run state saved with every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Iterations done.
    pub iteration: usize,
    /// Best validation Dice so far (fraction).
    pub best_dice: f64,
    /// Epoch of the best checkpoint.
    pub best_epoch: usize,
    /// Training seconds so far (across resumes).
    pub seconds: f64,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
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
    /// Validation summary, when validated.
    pub val: Option<Summary>,
    /// Training seconds at its end.
    pub seconds: f64,
}

/// A decoded, resized training set.
struct Images {
    labeled: Vec<(RgbImage, GrayImage)>,
    unlabeled: Vec<RgbImage>,
}

/// Decodes pairs on all cores; bad pairs are reported and skipped.
fn load_pairs(
    pairs: &[Pair],
    size: u32,
    with_masks: bool,
) -> Vec<(String, RgbImage, Option<GrayImage>)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = pairs.len().div_ceil(threads).max(1);
    let mut out: Vec<Option<(String, RgbImage, Option<GrayImage>)>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            let r = if with_masks {
                                data::load_pair(p, size).map(|(i, m)| (i, Some(m)))
                            } else {
                                data::load_image(&p.image, size).map(|i| (i, None))
                            };
                            match r {
                                Ok((i, m)) => Some((p.stem.clone(), i, m)),
                                Err(e) => {
                                    eprintln!("skipped: {e}");
                                    None
                                }
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("loader thread"));
        }
    });
    out.into_iter().flatten().collect()
}

/// A host batch (planar floats).
struct HostBatch {
    labeled: Option<(Vec<f32>, Vec<f32>, usize)>,
    unlabeled: Option<(Vec<f32>, usize)>,
}

/// The position `p`-th draw from a list of `n` items reshuffled each pass (seeded).
fn draw(
    n: usize,
    p: usize,
    seed: u64,
    stream: u64,
    cache: &mut Option<(usize, Vec<usize>)>,
) -> usize {
    let pass = p / n;
    if cache.as_ref().map(|c| c.0) != Some(pass) {
        let mut perm: Vec<usize> = (0..n).collect();
        Rng::stream(seed, stream ^ (pass as u64).wrapping_mul(0x9E37)).shuffle(&mut perm);
        *cache = Some((pass, perm));
    }
    cache.as_ref().expect("cache").1[p % n]
}

/// Starts the loader thread: batches for iterations `start..end`, deterministic in the seed
/// and the iteration (so a resumed run sees the same batches).
fn spawn_loader(
    images: Arc<Images>,
    batch: usize,
    aug: Augment,
    seed: u64,
    use_labeled: bool,
    use_unlabeled: bool,
    iterations: std::ops::Range<usize>,
) -> Receiver<HostBatch> {
    let (tx, rx) = sync_channel(3);
    std::thread::spawn(move || {
        let (mut lc, mut uc) = (None, None);
        for it in iterations {
            let mut rng = Rng::stream(seed, 0xA000_0000 + it as u64);
            let labeled = (use_labeled && !images.labeled.is_empty()).then(|| {
                let (mut xs, mut ys) = (Vec::new(), Vec::new());
                for j in 0..batch {
                    let k = draw(images.labeled.len(), it * batch + j, seed, 1, &mut lc);
                    let (img, mask) = &images.labeled[k];
                    let s = augment(img, Some(mask), &aug, &mut rng);
                    xs.extend(s.image);
                    ys.extend(s.mask.expect("mask"));
                }
                (xs, ys, batch)
            });
            let unlabeled = (use_unlabeled && !images.unlabeled.is_empty()).then(|| {
                let mut xs = Vec::new();
                for j in 0..batch {
                    let k = draw(images.unlabeled.len(), it * batch + j, seed, 2, &mut uc);
                    xs.extend(augment(&images.unlabeled[k], None, &aug, &mut rng).image);
                }
                (xs, batch)
            });
            if tx.send(HostBatch { labeled, unlabeled }).is_err() {
                return;
            }
        }
    });
    rx
}

/// Validation data: images and masks at the working size.
pub struct ValSet {
    /// Stems.
    pub stems: Vec<String>,
    /// Planar images `[3, S, S]`.
    pub images: Vec<Vec<f32>>,
    /// Binary masks `[S, S]`.
    pub masks: Vec<Vec<f32>>,
    /// Working size.
    pub size: u32,
}

impl ValSet {
    /// Loads `pairs` at `size`, skipping (and reporting) bad ones.
    pub fn load(pairs: &[Pair], size: u32) -> Self {
        let loaded = load_pairs(pairs, size, true);
        let mut v = ValSet {
            stems: Vec::new(),
            images: Vec::new(),
            masks: Vec::new(),
            size,
        };
        for (stem, img, mask) in loaded {
            v.stems.push(stem);
            v.images.push(crate::imageio::rgb_to_chw(&img));
            v.masks.push(
                mask.expect("mask")
                    .pixels()
                    .map(|p| if p[0] >= 128 { 1.0 } else { 0.0 })
                    .collect(),
            );
        }
        v
    }
}

/// Per-image scores of `model` (inference copy) on a validation set: fine mask at the working
/// size, threshold 0.5, batches of 4.
pub fn evaluate(model: &Scl, val: &ValSet, device: &Device) -> Result<Vec<Scores>, Error> {
    let s = val.size as usize;
    let mut scores = Vec::with_capacity(val.images.len());
    for (imgs, masks) in val.images.chunks(4).zip(val.masks.chunks(4)) {
        let flat: Vec<f32> = imgs.iter().flatten().copied().collect();
        let x = Tensor::<4>::from_data(TensorData::new(flat, [imgs.len(), 3, s, s]), device);
        let (_, fine) = model.predict_mask(x)?;
        let probs: Vec<f32> = fine
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Config(format!("reading predictions: {e:?}")))?;
        for (p, m) in probs.chunks(s * s).zip(masks) {
            scores.push(Confusion::from_maps(p, m).scores());
        }
    }
    Ok(scores)
}

/// A deep copy of a module through its serialised weights (clones of a Burn module share
/// their batch-norm statistics).
fn deep_copy(model: &Scl, device: &Device) -> Result<Scl, Error> {
    let bytes = weights::to_bytes(model, Precision::F32)?;
    Ok(weights::from_bytes(&bytes, "copy", device)?)
}

/// Mean Teacher's EMA update: every float of `teacher` (parameters and batch-norm statistics)
/// becomes `decay * teacher + (1 - decay) * student`.
fn ema_update(teacher: Scl, student: &Scl, decay: f64) -> Scl {
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

/// Set by Ctrl-C; the trainer saves and exits at the end of the current iteration.
pub static STOP: AtomicBool = AtomicBool::new(false);

fn hms(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

/// Trains a model as `options` say, writing everything into `out`. With `resume`, continues the
/// run saved in `out`.
pub fn run(options: &TrainOptions, out: &Path, device: &Device, resume: bool) -> Result<(), Error> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let write_json = |name: &str, v: &dyn erased::Json| -> Result<(), Error> {
        let p = out.join(name);
        std::fs::write(&p, v.json()).map_err(|e| io(&p, e))
    };
    let method = options.method;
    let config = method.network(&options.config);
    config.validate()?;
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

    // Data and the labeled/unlabeled partition.
    let dataset = Dataset::scan(&options.data)?;
    let train_stems = dataset.split(&options.train_split, options.val_fraction, options.seed)?;
    let val_stems = dataset.split(&options.val_split, options.val_fraction, options.seed)?;
    let partition = Partition::select(&train_stems, options.label_ratio, options.seed);
    write_json("partition.json", &partition)?;
    // The validation stems too: for a dataset without split.json they come from the seeded split.
    write_json("validation.json", &val_stems)?;
    write_json("options.json", options)?;
    let (labeled_pairs, missing) = dataset.select(&partition.labeled);
    let (unlabeled_pairs, missing_u) = dataset.select(&partition.unlabeled);
    for m in missing.iter().chain(&missing_u) {
        eprintln!("skipped: {m}: listed in the split but not found in images/");
    }
    let t0 = Instant::now();
    let labeled: Vec<(RgbImage, GrayImage)> = load_pairs(&labeled_pairs, options.size, true)
        .into_iter()
        .map(|(_, i, m)| (i, m.expect("mask")))
        .collect();
    let unlabeled: Vec<RgbImage> = if method.uses_unlabeled() {
        load_pairs(&unlabeled_pairs, options.size, false)
            .into_iter()
            .map(|(_, i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    if labeled.is_empty() {
        return Err(Error::Config("no usable labeled image".into()));
    }
    let (val_pairs, _) = dataset.select(&val_stems);
    let val = ValSet::load(&val_pairs, options.size);
    eprintln!(
        "data: {} labeled, {} unlabeled, {} validation images ({} split), loaded in {:.1} s",
        labeled.len(),
        if method.uses_unlabeled() {
            unlabeled.len()
        } else {
            0
        },
        val.images.len(),
        options.val_split,
        t0.elapsed().as_secs_f64()
    );
    let ipe = options.iters_per_epoch.unwrap_or_else(|| {
        let n = if partition.unlabeled.is_empty() {
            partition.labeled.len()
        } else {
            partition.unlabeled.len()
        };
        n.div_ceil(options.batch)
    });
    let total = ipe * options.epochs;

    // Model, optimiser, state.
    let ad = device.clone().autodiff();
    ad.seed(options.seed);
    let mut state = RunState::default();
    let mut model = Scl::new(&config, &ad)?;
    let mut optim = train::sgd();
    let mut teacher = None;
    if resume && out.join("state.json").is_file() {
        let p = out.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        state = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
        model = weights::load_file(&out.join("last.bpk"), &ad)?;
        optim = optim
            .load(out.join("last-optim.bpk"))
            .map_err(|e| Error::Config(format!("optimizer state: {e:?}")))?;
        eprintln!("resuming at iteration {} of {total}", state.iteration);
    }
    if method == Method::MeanTeacher {
        let path = out.join("last-teacher.bpk");
        teacher = Some(if resume && path.is_file() {
            weights::load_file(&path, device)?.valid()
        } else {
            deep_copy(&model.valid(), device)?
        });
    }
    eprintln!(
        "training {} ({}), {} parameters, {} epochs x {ipe} iterations, batch {} + {}, lr {}, crop {}",
        method.name(),
        config.describe(),
        crate::model::trainable_params(&model),
        options.epochs,
        options.batch,
        if method.uses_unlabeled() {
            options.batch
        } else {
            0
        },
        options.lr,
        options.crop
    );

    let images = Arc::new(Images { labeled, unlabeled });
    let rx = spawn_loader(
        images,
        options.batch,
        Augment::spec(options.crop),
        options.seed,
        true,
        method.uses_unlabeled(),
        state.iteration..total,
    );
    let crop = options.crop as usize;
    let tty = std::io::stderr().is_terminal();
    let mut noise_rng = Rng::stream(options.seed, 0x7EAC_0000 + state.iteration as u64);
    let mut sums = (LossTerms::default(), 0.0f64, 0usize);
    let run_start = Instant::now() - std::time::Duration::from_secs_f64(state.seconds);
    let session_start = Instant::now();
    let session_first = state.iteration;
    let csv_path = out.join("log.csv");
    if !resume || !csv_path.is_file() {
        std::fs::write(
            &csv_path,
            "epoch,iteration,lr,loss,seg,inp,consistency,val_dice,val_iou,val_acc,val_rec,val_spe,val_pre,seconds\n",
        )
        .map_err(|e| io(&csv_path, e))?;
    }

    while state.iteration < total {
        if STOP.load(Ordering::SeqCst) {
            save(out, &model, &optim, teacher.as_ref(), &state, run_start)?;
            eprintln!(
                "\ninterrupted: saved the run at iteration {}; continue with --resume",
                state.iteration
            );
            return Ok(());
        }
        let hb = rx
            .recv()
            .map_err(|_| Error::Config("data loader stopped".into()))?;
        let to_tensor = |v: Vec<f32>, b: usize, c: usize| {
            Tensor::<4>::from_data(TensorData::new(v, [b, c, crop, crop]), &ad)
        };
        let batch = Batch {
            labeled: hb
                .labeled
                .map(|(x, y, b)| (to_tensor(x, b, 3), to_tensor(y, b, 1))),
            unlabeled: hb.unlabeled.map(|(x, b)| to_tensor(x, b, 3)),
        };
        let lr = train::poly_lr(options.lr, state.iteration, total);
        let (next, terms, cons) = match (method, teacher.as_ref()) {
            (Method::MeanTeacher, Some(t)) => {
                let w = options.consistency
                    * sigmoid_rampup(
                        state.iteration as f64 / (options.rampup * total as f64).max(1.0),
                    );
                mean_teacher_step(
                    model,
                    &mut optim,
                    t,
                    &batch,
                    lr,
                    w,
                    options.teacher_noise,
                    &mut noise_rng,
                )
            }
            _ => {
                let (m, t) = train::step(model, &mut optim, &batch, lr);
                (m, t, 0.0)
            }
        };
        model = next;
        if let Some(t) = teacher.take() {
            teacher = Some(ema_update(t, &model, options.ema));
        }
        if !terms.total.is_finite() {
            return Err(Error::Config(format!(
                "the loss became {} at iteration {}: lower --lr",
                terms.total, state.iteration
            )));
        }
        state.iteration += 1;
        sums.0.seg += terms.seg;
        sums.0.inp += terms.inp;
        sums.0.total += terms.total;
        sums.1 += cons;
        sums.2 += 1;

        let done = state.iteration - session_first;
        let per_it = session_start.elapsed().as_secs_f64() / done as f64;
        let epoch = state.iteration.div_ceil(ipe);
        let line = format!(
            "epoch {epoch}/{} it {}/{total} | L {:.4} seg {:.4} inp {:.4}{} | lr {:.2e} | {:.2} s/it | ETA {}",
            options.epochs,
            state.iteration,
            terms.total,
            terms.seg,
            terms.inp,
            if method == Method::MeanTeacher {
                format!(" cons {cons:.5}")
            } else {
                String::new()
            },
            lr,
            per_it,
            hms(per_it * (total - state.iteration) as f64)
        );
        if tty {
            eprint!("\r{line}   ");
        } else if state.iteration % 20 == 0 || state.iteration == total {
            eprintln!("{line}");
        }

        if state.iteration % ipe == 0 || state.iteration == total {
            let n = sums.2.max(1) as f64;
            let mut record = EpochRecord {
                epoch,
                iteration: state.iteration,
                lr,
                loss: LossTerms {
                    seg: sums.0.seg / n,
                    inp: sums.0.inp / n,
                    total: sums.0.total / n,
                },
                consistency: sums.1 / n,
                val: None,
                seconds: run_start.elapsed().as_secs_f64(),
            };
            sums = (LossTerms::default(), 0.0, 0);
            if epoch % options.val_every.max(1) == 0 || state.iteration == total {
                let judged = match &teacher {
                    Some(t) => t.clone(),
                    None => model.valid(),
                };
                let t = Instant::now();
                let summary = Summary::of(&evaluate(&judged, &val, device)?);
                if tty {
                    eprintln!();
                }
                eprintln!(
                    "epoch {epoch}: val Dice {:.2} IoU {:.2} ({} images, {:.0} s)",
                    summary.dice.mean * 100.0,
                    summary.iou.mean * 100.0,
                    summary.count,
                    t.elapsed().as_secs_f64()
                );
                // The first validation always writes best.bpk (even at Dice 0), so a finished
                // run always has one.
                if state.best_epoch == 0 || summary.dice.mean > state.best_dice {
                    state.best_dice = summary.dice.mean;
                    state.best_epoch = epoch;
                    weights::save_file(&judged, &out.join("best.bpk"), Precision::F32)?;
                }
                record.val = Some(summary);
            }
            let v = record.val.as_ref();
            let f = |g: fn(&Summary) -> f64| v.map(|s| format!("{:.4}", g(s))).unwrap_or_default();
            let row = format!(
                "{},{},{:.6e},{:.5},{:.5},{:.5},{:.6},{},{},{},{},{},{},{:.1}\n",
                record.epoch,
                record.iteration,
                record.lr,
                record.loss.total,
                record.loss.seg,
                record.loss.inp,
                record.consistency,
                f(|s| s.dice.mean),
                f(|s| s.iou.mean),
                f(|s| s.accuracy.mean),
                f(|s| s.recall.mean),
                f(|s| s.specificity.mean),
                f(|s| s.precision.mean),
                record.seconds
            );
            std::fs::OpenOptions::new()
                .append(true)
                .open(&csv_path)
                .and_then(|mut file| file.write_all(row.as_bytes()))
                .map_err(|e| io(&csv_path, e))?;
            state.epochs.push(record);
            save(out, &model, &optim, teacher.as_ref(), &state, run_start)?;
        }
    }
    eprintln!(
        "done: best val Dice {:.2} at epoch {} ({}), weights in {}",
        state.best_dice * 100.0,
        state.best_epoch,
        hms(run_start.elapsed().as_secs_f64()),
        out.join("best.bpk").display()
    );
    Ok(())
}

fn save(
    out: &Path,
    model: &Scl,
    optim: &ModuleOptimizer,
    teacher: Option<&Scl>,
    state: &RunState,
    run_start: Instant,
) -> Result<(), Error> {
    let mut state = state.clone();
    state.seconds = run_start.elapsed().as_secs_f64();
    weights::save_file(&model.valid(), &out.join("last.bpk"), Precision::F32)?;
    if let Some(t) = teacher {
        weights::save_file(t, &out.join("last-teacher.bpk"), Precision::F32)?;
    }
    let optim_path = out.join("last-optim.bpk");
    let _ = std::fs::remove_file(&optim_path);
    optim
        .save(&optim_path)
        .map_err(|e| Error::Config(format!("saving the optimizer state: {e:?}")))?;
    let p = out.join("state.json");
    std::fs::write(&p, serde_json::to_string_pretty(&state).expect("state")).map_err(|e| {
        Error::Io {
            path: p.display().to_string(),
            source: e,
        }
    })
}

/// One Mean Teacher iteration: `2 L_seg` on the labeled batch plus `weight` times the mean
/// squared difference between the student's and the teacher's probabilities on the unlabeled
/// batch (teacher input with Gaussian noise, clipped to +-2 std).
#[allow(clippy::too_many_arguments)]
fn mean_teacher_step(
    student: Scl,
    optim: &mut ModuleOptimizer,
    teacher: &Scl,
    batch: &Batch,
    lr: f64,
    weight: f64,
    noise_std: f64,
    rng: &mut Rng,
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
            let [b, c, h, w] = xu.dims();
            let noise: Vec<f32> = (0..b * c * h * w)
                .map(|_| (rng.normal() * noise_std).clamp(-2.0 * noise_std, 2.0 * noise_std) as f32)
                .collect();
            let plain = teacher.devices()[0].clone();
            let xt = xu.clone().inner().to_device(&plain)
                + Tensor::<4>::from_data(TensorData::new(noise, [b, c, h, w]), &plain);
            let (_, p_teacher) = teacher.predict_mask(xt).expect("teacher input");
            let p_teacher = Tensor::<4>::from_data(p_teacher.into_data(), &xu.device());
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
    let total = match cons {
        Some(c) => total_loss(seg_loss, c * weight),
        None => seg_loss * 2.0,
    };
    let total_v = scalar(&total);
    let grads = GradientsParams::from_grads(total.backward(), &student);
    let student = optim.step(lr, student, grads);
    (
        student,
        LossTerms {
            seg: seg_v,
            inp: 0.0,
            total: total_v,
        },
        cons_v,
    )
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
