//! Adapting a trained model to a new site's unlabeled images (SPEC.md "Adapting to a new
//! site"). One code path for `scl adapt` and the page's fine-tuning panel, with one set of
//! defaults ([`AdaptOptions::new`]), so a native run predicts what the page does.
//!
//! An objective is an optional AdaBN pass (`adabn.rs`: batch-norm statistics re-estimated on
//! the new images, no gradient) followed by an optional gradient objective (`objective.rs`:
//! inpainting, TENT, confident pseudo-labels), written `adabn+tent` and so on, and an optional
//! lesion-size prior matching at the end (`prior.rs`: the output bias shifted so that the mean
//! predicted lesion fraction equals the training set's), written `...+prior`. Every gradient
//! step is watched by the collapse guard (`guard.rs`), which stops the run and reverts the
//! weights when the predicted lesion area runs away.
//!
//! The caller feeds batches (`[B, 3, crop, crop]` on the plain device, e.g. from [`crops`])
//! and reads the two scalars of each step itself (synchronously natively, asynchronously in
//! the browser), then hands them to [`Adapter::record`].

pub mod adabn;
#[cfg(not(target_family = "wasm"))]
pub mod folder;
pub mod guard;
pub mod objective;
pub mod prior;

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::augment::{Augment, augment};
use crate::model::{FineParts, STRIDE, Scl};
use crate::rng::Rng;
use crate::train;
pub use guard::{Guard, Verdict};
pub use objective::{Loss, Scope};

/// What adaptation does: an AdaBN pass, a gradient objective, or AdaBN followed by one; then,
/// optionally, the lesion-size prior matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    /// Re-estimate the batch-norm statistics on the new images first.
    pub adabn: bool,
    /// The gradient objective, if any.
    pub loss: Option<Loss>,
    /// Shift the output bias at the end so that the mean predicted lesion fraction on the new
    /// images equals the training set's ([`prior`]).
    #[serde(default)]
    pub prior: bool,
}

impl Objective {
    /// Every objective the tools offer, in the page's order.
    pub const ALL: [&'static str; 12] = [
        "adabn",
        "adabn+prior",
        "adabn+inpainting+prior",
        "prior",
        "inpainting",
        "tent",
        "pseudo",
        "pseudo+inpainting",
        "adabn+inpainting",
        "adabn+tent",
        "adabn+pseudo",
        "adabn+pseudo+inpainting",
    ];

    /// Parses `adabn`, `tent`, `adabn+tent`, `pseudo+inpainting`, `adabn+prior`, ...
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s == "prior" {
            return Ok(Self {
                adabn: false,
                loss: None,
                prior: true,
            });
        }
        let (stages, prior) = match s.strip_suffix("+prior") {
            Some(r) => (r, true),
            None => (s, false),
        };
        let (adabn, loss) = Self::parse_stages(stages).ok_or_else(|| {
            Error::Config(format!(
                "unknown adaptation objective '{s}' (one of: {})",
                Self::ALL.join(", ")
            ))
        })?;
        Ok(Self { adabn, loss, prior })
    }

    /// The AdaBN and gradient parts of an objective's name, or `None` for an unknown one.
    fn parse_stages(s: &str) -> Option<(bool, Option<Loss>)> {
        let (adabn, rest) = match s.strip_prefix("adabn") {
            Some("") => return Some((true, None)),
            Some(r) => (true, r.strip_prefix('+').unwrap_or(r)),
            None => (false, s),
        };
        let loss = match rest {
            "inpainting" => Loss::Inpainting,
            "tent" => Loss::Tent,
            "pseudo" => Loss::Pseudo,
            "pseudo+inpainting" => Loss::PseudoInpainting,
            _ => return None,
        };
        Some((adabn, Some(loss)))
    }

    /// The name [`Objective::parse`] reads.
    pub fn name(&self) -> String {
        let parts: Vec<&str> = [
            self.adabn.then_some("adabn"),
            self.loss.map(Loss::name),
            self.prior.then_some("prior"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("+")
        }
    }

    /// One sentence for the page and `--help`.
    pub fn describe(&self) -> String {
        let bn = "re-measure the normalisation statistics on your images (seconds, no training)";
        let prior = "expect as much lesion per image as in the training images and shift the \
                     mask's threshold to match (seconds)";
        let stages = match (self.adabn, self.loss) {
            (true, None) => Some(bn.to_string()),
            (true, Some(l)) => Some(format!("{bn}, then {}", l.describe())),
            (false, Some(l)) => Some(l.describe().to_string()),
            (false, None) => None,
        };
        match (stages, self.prior) {
            (Some(stages), true) => format!("{stages}; last, {prior}"),
            (Some(stages), false) => stages,
            (None, true) => prior.into(),
            (None, false) => "nothing".into(),
        }
    }
}

/// Adaptation settings. [`AdaptOptions::new`] gives the defaults both tools use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdaptOptions {
    /// What to do.
    pub objective: Objective,
    /// Gradient steps (ignored without a gradient objective).
    pub steps: usize,
    /// Learning rate (SGD, momentum 0.9, weight decay 1e-5, poly schedule over `steps`).
    pub lr: f64,
    /// Images per step.
    pub batch: usize,
    /// Working size: images are resized to this square.
    pub size: u32,
    /// Random crop of each step's images (SPEC.md's unlabeled augmentation).
    pub crop: u32,
    /// Parameters the gradient objective moves (default: the loss's own choice).
    pub scope: Option<Scope>,
    /// Seed of the sampling and augmentation.
    pub seed: u64,
    /// AdaBN on augmented crops (the training preprocessing: SPEC.md's flips, rotations with
    /// black corners and zoom, at `crop`) instead of the whole images at the working size.
    /// Off by default, by measurement: from the shipped SCL weights, AdaBN on CVC-ClinicDB
    /// `adapt` scored 45.49 Dice on `test` with whole images (45.53 since AdaBN runs without
    /// dropout), 42.70 with crops of 160 and 42.79 with crops of 128 (41.89 before).
    pub adabn_augment: bool,
    /// The mean lesion fraction prior matching aims at (default: the training set's,
    /// [`prior::SOURCE_PRIOR`]).
    #[serde(default = "default_prior")]
    pub prior: f64,
}

fn default_prior() -> f64 {
    prior::SOURCE_PRIOR
}

impl AdaptOptions {
    /// The objective the page selects first: the best measured on CVC-ClinicDB's held-out
    /// `test` frames from the shipped SCL weights (README, "Adapting to a new hospital"):
    /// AdaBN + inpainting + prior matching 48.97 ± 0.04 Dice over 3 seeds (88 s), AdaBN +
    /// prior 48.03, AdaBN + inpainting 45.74 ± 0.11, AdaBN alone 45.53, before 41.89.
    pub const PAGE_DEFAULT: &'static str = "adabn+inpainting+prior";

    /// The defaults of `scl adapt` and the page for `objective` at working size `size`.
    pub fn new(objective: Objective, size: u32) -> Self {
        Self {
            objective,
            steps: 100,
            lr: 1e-3,
            batch: 4,
            size,
            crop: size,
            scope: None,
            seed: 1,
            adabn_augment: false,
            prior: prior::SOURCE_PRIOR,
        }
    }

    /// The parameters the gradient objective moves.
    pub fn scope(&self) -> Option<Scope> {
        self.objective
            .loss
            .map(|l| self.scope.unwrap_or(l.default_scope()))
    }

    /// Checks the settings against a network.
    pub fn validate(&self, model: &Scl) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.objective.loss.is_some_and(|l| l.inpaints()) && !model.config.two_stage {
            return bad(
                "this network has no inpainting decoder (single-stage baseline): the \
                 inpainting objective needs an SCL network; try adabn, tent or pseudo"
                    .into(),
            );
        }
        if self.crop == 0 || !(self.crop as usize).is_multiple_of(STRIDE) || self.crop > self.size {
            return bad(format!(
                "crop {} must be a multiple of {STRIDE} no larger than the size {}",
                self.crop, self.size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return bad(format!("learning rate {} must be in (0, 1)", self.lr));
        }
        if self.batch == 0 {
            return bad("the batch must hold at least one image".into());
        }
        if !(self.prior > 0.0 && self.prior < 1.0) {
            return bad(format!(
                "the lesion-fraction prior {} must be in (0, 1)",
                self.prior
            ));
        }
        Ok(())
    }
}

/// The tensors of one gradient step, to be read by the caller.
pub struct Pending {
    /// The batch's loss before the step.
    pub loss: Tensor<1>,
    /// The fraction of the batch's pixels predicted as lesion (fine mask), before the step.
    pub foreground: Tensor<1>,
}

/// Where the adapted network lives. It moves to the autodiff device only at the first gradient
/// step: AdaBN runs on the inference network, because a forward on an autodiff device that no
/// backward follows is never freed by Burn's graph registry.
enum Stage {
    /// Before any gradient step: an inference network (AdaBN updates its statistics).
    Plain(Scl),
    /// Training on the autodiff device.
    Training(Scl),
    /// A step failed; the run must be started again.
    Failed,
}

/// An adaptation in progress.
pub struct Adapter {
    model: Stage,
    /// The autodiff device the model trains on, and the plain device it came from.
    device: Device,
    plain: Device,
    optim: ModuleOptimizer,
    options: AdaptOptions,
    only: Option<Vec<ParamId>>,
    guard: Guard,
    steps: usize,
    adabn: crate::model::norm::CumulativeStats,
    /// The fine logits of the current prior-matching round.
    logits: prior::LogitHistogram,
    /// Prior matching's rounds so far.
    rounds: prior::Rounds,
    rng: Rng,
    /// Images not yet drawn in the current pass over the images (shuffled).
    order: Vec<usize>,
}

impl Adapter {
    /// Starts adapting a copy of `model` (an inference model on `device`).
    pub fn new(model: &Scl, device: &Device, options: AdaptOptions) -> Result<Self, Error> {
        options.validate(model)?;
        let ad = device.clone().autodiff();
        // `valid()`: a copy with its own running statistics, so AdaBN leaves `model` alone.
        let m = model.valid();
        let only = (options.scope() == Some(Scope::BatchNorm)).then(|| batch_norm_affine(&m));
        crate::model::dropout::seed(options.seed);
        Ok(Self {
            rng: Rng::stream(options.seed, 0xADA7),
            model: Stage::Plain(m),
            device: ad,
            plain: device.clone(),
            optim: train::sgd(),
            only,
            guard: Guard::default(),
            steps: 0,
            adabn: Default::default(),
            logits: Default::default(),
            rounds: Default::default(),
            order: Vec::new(),
            options,
        })
    }

    /// The settings.
    pub fn options(&self) -> &AdaptOptions {
        &self.options
    }

    /// Gradient steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The adapted network (an inference copy on the plain device).
    pub fn model(&self) -> Result<Scl, Error> {
        match &self.model {
            Stage::Plain(m) | Stage::Training(m) => Ok(m.valid()),
            Stage::Failed => Err(failed()),
        }
    }

    /// Why the run stopped early, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.guard.stopped()
    }

    /// One AdaBN batch (whole images at the working size, `[B, 3, S, S]`): the running
    /// statistics become the mean over all AdaBN batches so far (see [`adabn`]).
    /// AdaBN batches come before any gradient step.
    pub fn adabn_batch(&mut self, x: Tensor<4>) -> Result<(), Error> {
        match &self.model {
            Stage::Plain(model) => {
                adabn::batch(model, x.to_device(&self.plain), &mut self.adabn);
                Ok(())
            }
            Stage::Training(_) => Err(Error::Config(
                "AdaBN batches must come before the first gradient step".into(),
            )),
            Stage::Failed => Err(failed()),
        }
    }

    /// One AdaBN batch of images at the working size: augmented crops of them (or the whole
    /// images without [`AdaptOptions::adabn_augment`]), then [`Adapter::adabn_batch`].
    pub fn adabn_images(&mut self, images: &[RgbImage]) -> Result<(), Error> {
        let x = if self.options.adabn_augment {
            self.crops(images)
        } else {
            self.whole_images(images)
        };
        self.adabn_batch(x)
    }

    /// `images` (at the working size) as one batch `[B, 3, S, S]` on the plain device.
    fn whole_images(&self, images: &[RgbImage]) -> Tensor<4> {
        let s = self.options.size as usize;
        let flat: Vec<f32> = images.iter().flat_map(crate::imageio::rgb_to_chw).collect();
        Tensor::<4>::from_data(TensorData::new(flat, [images.len(), 3, s, s]), &self.plain)
    }

    /// Starts a prior-matching round (after AdaBN and the gradient steps; before every
    /// round): forgets the logits of a round stopped part-way, and takes the adapted network
    /// as an inference copy once for the whole round. The copy matters beyond speed: a batch
    /// norm's running statistics hold AdaBN's last update back until they are synchronised,
    /// which `valid()` does (Burn's `RunningState`).
    pub fn prior_begin_round(&mut self) -> Result<(), Error> {
        self.logits = Default::default();
        self.model = Stage::Plain(self.model()?);
        Ok(())
    }

    /// The fine logits of a batch of images at the working size on the adapted network, for
    /// prior matching (within a round begun by [`Adapter::prior_begin_round`]): the caller
    /// reads them and hands them to [`Adapter::prior_record`].
    pub fn prior_images(&self, images: &[RgbImage]) -> Result<Tensor<1>, Error> {
        match &self.model {
            Stage::Plain(model) => Ok(prior::fine_logits(model, self.whole_images(images))),
            Stage::Training(_) => Err(Error::Config(
                "begin a prior-matching round before its batches".into(),
            )),
            Stage::Failed => Err(failed()),
        }
    }

    /// Adds the values read from [`Adapter::prior_images`] to this round's histogram.
    pub fn prior_record(&mut self, logits: &[f32]) {
        self.logits.add(logits);
    }

    /// Ends a prior-matching round (every image's logits recorded): measures the predicted
    /// lesion fraction and either shifts the output bias for another round (returns `true`:
    /// record every image again, then call this again) or ends matching (`false`), see
    /// [`prior::Rounds`].
    pub fn prior_apply(&mut self) -> Result<bool, Error> {
        let hist = std::mem::take(&mut self.logits);
        if hist.is_empty() {
            return Err(Error::Config("prior matching saw no images".into()));
        }
        let before = self.rounds.offset();
        let Some(next) = self.rounds.next(&hist, self.options.prior) else {
            return Ok(false);
        };
        self.model = Stage::Plain(prior::shift_output_bias(self.model()?, next - before));
        Ok(true)
    }

    /// Prior matching's rounds (offset and measured lesion fraction of each).
    pub fn prior_rounds(&self) -> &[prior::Round] {
        &self.rounds.rounds
    }

    /// One gradient step on `x` (`[B, 3, crop, crop]`, plain device); returns the batch's loss
    /// and foreground fraction (before the step) for the caller to read and [`record`].
    ///
    /// [`record`]: Adapter::record
    pub fn step(&mut self, x: Tensor<4>) -> Result<Pending, Error> {
        let loss_kind = self
            .options
            .objective
            .loss
            .ok_or_else(|| Error::Config("this objective has no gradient steps".into()))?;
        if self.guard.stopped().is_some() {
            return Err(Error::Config(
                "adaptation was stopped by the collapse guard".into(),
            ));
        }
        let mut model = match std::mem::replace(&mut self.model, Stage::Failed) {
            Stage::Training(m) => m,
            Stage::Plain(m) => m.fork(&self.device).train(),
            Stage::Failed => return Err(failed()),
        };
        if self.steps == 0 && self.options.scope() == Some(Scope::NoEncoder) {
            model.encoder = model.encoder.freeze();
        }
        let x = x.to_device(&self.device);
        let parts = if loss_kind.inpaints() {
            FineParts::ALL
        } else {
            FineParts::SEGMENT_DEEP
        };
        // After an AdaBN pass the running statistics stay the cumulative mean over every batch
        // seen (the whole images, then these crops, each with weight 1/k): with the layers' own
        // momentum 0.1, 100 steps of rotated, zero-cornered crops would overwrite the AdaBN
        // estimate (measured on CVC-ClinicDB: adabn 45.5 Dice, adabn+pseudo 42.8 = pseudo alone).
        let out = if self.options.objective.adabn {
            self.adabn.run(|| model.forward_aligned(x.clone(), parts))
        } else {
            model.forward_aligned(x.clone(), parts)
        };
        // Off the autodiff tape (`network::off_tape`).
        let foreground =
            crate::model::network::threshold(&sigmoid(out.seg[0].clone().inner())).mean();
        let loss = loss_kind.loss(&out, x);
        drop(out);
        let mut grads = loss.backward();
        let grads = match &self.only {
            Some(ids) => GradientsParams::from_params(&mut grads, &model, ids),
            None => GradientsParams::from_grads(grads, &model),
        };
        let lr = train::poly_lr(self.options.lr, self.steps, self.options.steps);
        self.guard.before_step(self.steps, &model);
        self.model = Stage::Training(self.optim.step(lr, model, grads));
        self.steps += 1;
        Ok(Pending {
            loss: loss.inner(),
            foreground,
        })
    }

    /// Records the values of the last step's [`Pending`]; a collapse reverts the weights to
    /// the last healthy snapshot and stops the run (the verdict says so).
    pub fn record(&mut self, loss: f64, foreground: f64) -> Verdict {
        let verdict = self.guard.record(self.steps, loss, foreground);
        if let Verdict::Collapsed { .. } = verdict
            && let Some(snapshot) = self.guard.snapshot()
        {
            self.model = Stage::Training(snapshot.clone().fork(&self.device).train());
        }
        verdict
    }

    /// [`Adapter::step`] then [`Adapter::record`], reading the scalars synchronously (native).
    pub fn step_sync(&mut self, x: Tensor<4>) -> Result<(f64, f64, Verdict), Error> {
        let p = self.step(x)?;
        let loss = p.loss.into_scalar::<f32>() as f64;
        let fg = p.foreground.into_scalar::<f32>() as f64;
        Ok((loss, fg, self.record(loss, fg)))
    }

    /// Which of `n` images the next step reads: `batch` draws from a shuffled pass over all of
    /// them (reshuffled each pass), so every image is used once before any is used again.
    pub fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.options.batch);
        while out.len() < self.options.batch.min(n.max(1)) && n > 0 {
            if self.order.is_empty() {
                self.order = (0..n).collect();
                self.rng.shuffle(&mut self.order);
            }
            out.push(self.order.pop().expect("non-empty").min(n - 1));
        }
        out
    }

    /// Random augmented crops of `images` for the next step (SPEC.md's unlabeled
    /// preprocessing), as planar floats `[B, 3, crop, crop]`.
    pub fn crops(&mut self, images: &[RgbImage]) -> Tensor<4> {
        crops(images, self.options.crop, &mut self.rng, &self.plain)
    }
}

fn failed() -> Error {
    Error::Config("an adaptation step failed earlier; start again".into())
}

/// Augmented `crop x crop` crops of `images` (already at the working size) on `device`.
pub fn crops(images: &[RgbImage], crop: u32, rng: &mut Rng, device: &Device) -> Tensor<4> {
    let aug = Augment::spec(crop);
    let c = crop as usize;
    let mut xs = Vec::with_capacity(images.len() * 3 * c * c);
    for img in images {
        xs.extend(augment(img, None, &aug, rng).image);
    }
    Tensor::<4>::from_data(TensorData::new(xs, [images.len(), 3, c, c]), device)
}

/// The ids of every batch-norm scale and shift (TENT's parameters).
pub fn batch_norm_affine(model: &Scl) -> Vec<ParamId> {
    struct Collect {
        path: Vec<String>,
        ids: Vec<ParamId>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if matches!(self.path.last().map(String::as_str), Some("gamma" | "beta")) {
                self.ids.push(p.id);
            }
        }
    }
    let mut c = Collect {
        path: Vec::new(),
        ids: Vec::new(),
    };
    model.visit(&mut c);
    c.ids
}
