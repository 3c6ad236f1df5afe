//! The native command-line tool `scl` (model info, prediction, benchmarks, training, evaluation).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::prelude::*;
use clap::{Args, Parser, Subcommand};
use image::DynamicImage;

use scl::backend::{self, Backend};
use scl::config::{EncoderKind, Fusion, ModelConfig, PRESETS};
use scl::flops::Macs;
use scl::imageio;
use scl::model::{Scl, trainable_params};
use scl::train;
use scl::{Error, weights};

#[derive(Parser)]
#[command(
    name = "scl",
    version,
    about = "Self-supervised Correction Learning (Zhang et al., MICCAI 2021): segmentation with a coarse mask, lesion inpainting and a refined mask"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a configuration, its parameter counts and its multiply-accumulates per image.
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Image side (pixels, a multiple of 32) for the MAC counts.
        #[arg(long, default_value_t = 256)]
        size: usize,
    },
    /// Segment an image or every image of a folder; writes `<stem>_mask.png` at the input's size.
    Predict(PredictArgs),
    /// Time the two-stage forward pass and one training iteration.
    Bench(BenchArgs),
    /// Train a model on a dataset folder (images/, masks/, optional split.json).
    Train(TrainArgs),
    /// Evaluate checkpoints on a split or folder at the working size; prints the paper's table.
    Eval(EvalArgs),
    /// Adapt trained weights to a new site's unlabeled images (the page's fine-tuning, natively).
    Adapt(AdaptArgs),
    /// Run the same weights on the CPU (Flex) and on wgpu and print how far each stage's output
    /// differs: a check that a GPU (or driver) computes this network correctly.
    CompareBackends {
        /// Weights file (random weights without one).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Side of the synthetic test image.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Rewrite a weights file (e.g. as f16 for shipping, half the size).
    Convert {
        /// Weights file to read.
        input: PathBuf,
        /// Weights file to write.
        output: PathBuf,
        /// Store the weights as f16 (batch-norm statistics stay f32).
        #[arg(long)]
        f16: bool,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// Run folder: checkpoints, logs and the labeled/unlabeled stem lists go here.
    #[arg(long, short)]
    out: PathBuf,
    /// scl | scl-add | scl-concat | scl-concat-res | scl-oracle | supervised | two-stage | mean-teacher.
    #[arg(long, default_value = "scl")]
    method: String,
    #[command(flatten)]
    model: ModelArgs,
    /// ImageNet weights for the encoder (torchvision names; .safetensors or .pth), e.g.
    /// ../shared/weights/mobilenetv2-imagenet-features.safetensors with --preset mnv2.
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Weight of the inpainting loss, lambda_inp (SPEC.md: 1).
    #[arg(long, default_value_t = 1.0)]
    inp_weight: f64,
    /// Weight of a BCE + Dice loss on the labeled images' stage-1 (coarse) mask, two-stage
    /// methods only. SPEC.md's method has none (0): its shared segmentation decoder learns only
    /// from the fine pass.
    #[arg(long, default_value_t = 0.0)]
    coarse_weight: f64,
    /// Unlabeled images scored (against their hidden masks) at each validation for the
    /// diagnostics; 0 turns them off.
    #[arg(long, default_value_t = 100)]
    diagnostic_images: usize,
    /// Fraction of the training split used with labels (SPEC.md: 0.2).
    #[arg(long, default_value_t = 0.2)]
    label_ratio: f64,
    /// Seed (labeled selection, initialisation, sampling, augmentation).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 80)]
    epochs: usize,
    /// Iterations per epoch (default: a pass over the unlabeled images, else the labeled ones).
    #[arg(long)]
    iters_per_epoch: Option<usize>,
    /// Labeled (and unlabeled) images per iteration.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Working size (images resized to this square).
    #[arg(long, default_value_t = 320)]
    size: u32,
    /// Random crop side.
    #[arg(long, default_value_t = 256)]
    crop: u32,
    #[arg(long, default_value = "train")]
    train_split: String,
    #[arg(long, default_value = "val")]
    val_split: String,
    /// Validation fraction for datasets without split.json.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Validate every this many epochs.
    #[arg(long, default_value_t = 1)]
    val_every: usize,
    /// Mean Teacher: EMA decay.
    #[arg(long, default_value_t = 0.99)]
    ema: f64,
    /// Mean Teacher: consistency weight after ramp-up.
    #[arg(long, default_value_t = 0.1)]
    consistency: f64,
    /// Mean Teacher: ramp-up length, fraction of training.
    #[arg(long, default_value_t = 0.4)]
    rampup: f64,
    /// Mean Teacher: teacher input noise standard deviation.
    #[arg(long, default_value_t = 0.1)]
    teacher_noise: f64,
    /// Continue the run saved in --out.
    #[arg(long)]
    resume: bool,
    /// Backend: flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(Args)]
struct AdaptArgs {
    /// Trained weights to start from.
    #[arg(long)]
    weights: PathBuf,
    /// A dataset folder (images/, optional masks/ and split.json; masks are never read) or a
    /// plain folder of images.
    #[arg(long)]
    data: PathBuf,
    /// The split of a dataset folder to adapt on (e.g. `adapt` of CVC-ClinicDB), or `all`.
    #[arg(long, default_value = "all")]
    split: String,
    /// Where to write the adapted weights.
    #[arg(long, short)]
    out: PathBuf,
    /// adabn | inpainting | tent | pseudo | pseudo+inpainting | adabn+<one of those>, each
    /// optionally followed by +prior (lesion-size prior matching; or prior alone).
    /// Default: the page's.
    #[arg(long, default_value = scl::adapt::AdaptOptions::PAGE_DEFAULT)]
    objective: String,
    /// Gradient steps (default: the page's).
    #[arg(long)]
    steps: Option<usize>,
    /// Learning rate (default: the page's).
    #[arg(long)]
    lr: Option<f64>,
    /// Images per step (default: the page's).
    #[arg(long)]
    batch: Option<usize>,
    /// Working size (the page's: 160).
    #[arg(long, default_value_t = 160)]
    size: u32,
    /// Crop side (default: the working size).
    #[arg(long)]
    crop: Option<u32>,
    /// Parameters to move: all | no-encoder | bn (default: the objective's).
    #[arg(long)]
    scope: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// AdaBN on training-style augmented crops instead of the whole images.
    #[arg(long)]
    adabn_crops: bool,
    /// Mean lesion fraction that +prior aims at (default: the training set's, 0.16).
    #[arg(long)]
    prior: Option<f64>,
    /// Store the adapted weights as f16.
    #[arg(long)]
    f16: bool,
    /// Write the run's report (losses, foreground fractions, time) as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Backend: flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(Args)]
struct EvalArgs {
    /// Weights files (one table row each).
    #[arg(required = true)]
    weights: Vec<PathBuf>,
    /// Dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// Split (from split.json, or train/val/all with --val-fraction and --seed).
    #[arg(long, default_value = "val")]
    split: String,
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Seed of the split for datasets without split.json.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Working size.
    #[arg(long, default_value_t = 320)]
    size: u32,
    /// Write the per-image and summary results here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Backend: flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Preset: paper (ResNet-34, width 64, GFF), r34-w32, r18-w16, r18-w8, mnv2, mnv2-lite.
    #[arg(long, default_value = "paper")]
    preset: String,
    /// Override the encoder (resnet18 | resnet34 | mobilenetv2).
    #[arg(long, alias = "depth")]
    encoder: Option<String>,
    /// Override the base width (multiple of 8).
    #[arg(long)]
    width: Option<usize>,
    /// Override the fusion (gff | add | concat | concat-res).
    #[arg(long)]
    fusion: Option<String>,
}

impl ModelArgs {
    fn config(&self) -> Result<ModelConfig, Error> {
        let mut cfg = ModelConfig::preset(&self.preset)?;
        if let Some(e) = &self.encoder {
            cfg.encoder = EncoderKind::parse(e)?;
        }
        if let Some(w) = self.width {
            cfg.width = w;
        }
        if let Some(f) = &self.fusion {
            cfg.fusion = Fusion::parse(f)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args)]
struct PredictArgs {
    /// Image files or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Weights file (.bpk) written by this tool; its configuration is read from the file.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Configuration to use without --weights (random weights: only for trying the pipeline).
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, short, default_value = "predictions")]
    out: PathBuf,
    /// Working size: images are resized to this square (a multiple of 32) before the network.
    #[arg(long, default_value_t = 320)]
    size: u32,
    /// Also write every stage's picture: coarse mask, masked input, gate maps, inpainting,
    /// composite, the self-correction map (sky blue: lesion stage 2 added to the coarse mask;
    /// orange: lesion it removed), fine probability and overlay.
    #[arg(long)]
    stages: bool,
    /// Backend: flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Backend: flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Timed repetitions of each measurement (after one warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Side of the inference input.
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// Side of the training crops.
    #[arg(long, default_value_t = 256)]
    crop: usize,
    /// Labeled images per iteration.
    #[arg(long, default_value_t = 4)]
    labeled: usize,
    /// Unlabeled images per iteration.
    #[arg(long, default_value_t = 4)]
    unlabeled: usize,
    /// Skip the training-iteration measurement.
    #[arg(long)]
    no_train: bool,
}

pub fn main() -> ExitCode {
    // Burn reads a few things onto `Device::default()`, which is wgpu when wgpu is compiled in
    // (the optimizer state of a resumed run, for one): that starts a Vulkan instance, slowly and
    // noisily on a machine without a GPU. Every tensor of ours names its device, so the default
    // only matters for such loads (moved to the parameters' device on the next step): make it the
    // CPU. Set here, first thing, while no other thread exists.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: single-threaded at this point (nothing has been spawned yet).
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { model, size } => info(&model, size),
        Command::Predict(args) => predict(&args),
        Command::Bench(args) => bench(&args),
        Command::Train(args) => train_cmd(&args),
        Command::Eval(args) => eval_cmd(&args),
        Command::Adapt(args) => adapt_cmd(&args),
        Command::Convert { input, output, f16 } => convert(&input, &output, f16),
        Command::CompareBackends { weights, size } => compare_backends(weights.as_deref(), size),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn millions(n: usize) -> String {
    format!("{:.2} M", n as f64 / 1e6)
}

fn giga(n: u64) -> String {
    format!("{:.2} G", n as f64 / 1e9)
}

fn info(args: &ModelArgs, size: usize) -> Result<(), Error> {
    if size == 0 || !size.is_multiple_of(32) {
        return Err(Error::Config(format!(
            "--size must be a multiple of 32, got {size}"
        )));
    }
    let cfg = args.config()?;
    let device = Device::flex();
    let model = Scl::new(&cfg, &device)?;
    let fusion: usize = model.fusion.iter().map(trainable_params).sum();
    println!(
        "configuration   {} (presets: {})",
        cfg.describe(),
        PRESETS.join(", ")
    );
    println!(
        "  encoder {}  width {}  fusion {}  dropout {}",
        cfg.encoder.name(),
        cfg.width,
        cfg.fusion.name(),
        cfg.dropout
    );
    println!(
        "parameters      {} ({:.1} MB as f32, {:.1} MB as f16)",
        millions(trainable_params(&model)),
        trainable_params(&model) as f64 * 4.0 / 1e6,
        trainable_params(&model) as f64 * 2.0 / 1e6
    );
    println!(
        "  encoder       {}",
        millions(trainable_params(&model.encoder))
    );
    println!("  fusion x5     {}", millions(fusion));
    for (i, f) in model.fusion.iter().enumerate() {
        println!("    level {}     {}", i + 1, millions(trainable_params(f)));
    }
    println!("  seg decoder   {}", millions(trainable_params(&model.seg)));
    if let Some(inp) = &model.inp {
        println!("  inp decoder   {}", millions(trainable_params(inp)));
    }
    let m = Macs::of(&cfg, size, size);
    println!("MACs at {size}x{size}, one image (convolutions):");
    println!("  encoder pass  {}", giga(m.encoder));
    println!("  fusion x5     {}", giga(m.fusion));
    println!(
        "  decoder       {} (+ {} side heads)",
        giga(m.decoder),
        giga(m.sides)
    );
    println!(
        "  two-stage forward (e_seg reused)  {}",
        giga(m.two_stage())
    );
    println!(
        "  mask-only forward                 {}",
        giga(m.mask_only())
    );
    println!(
        "  training iteration 4 + 4 images   {} (backward counted as 2x forward)",
        giga(m.train_iteration(4, 4))
    );
    Ok(())
}

/// Loads the model from `--weights` (its own configuration) or builds one from the flags.
fn load_model(
    weights_path: Option<&Path>,
    args: &ModelArgs,
    device: &Device,
) -> Result<Scl, Error> {
    match weights_path {
        Some(p) => Ok(weights::load_file(p, device)?),
        None => {
            let cfg = args.config()?;
            eprintln!(
                "warning: no --weights given: using randomly initialised {} weights (the masks are meaningless; use this only to try the pipeline)",
                cfg.describe()
            );
            Scl::new(&cfg, device)
        }
    }
}

const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif", "webp"];

fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            found.sort();
            if found.is_empty() {
                eprintln!("warning: {}: no image files in this folder", p.display());
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn predict(args: &PredictArgs) -> Result<(), Error> {
    if args.size == 0 || !args.size.is_multiple_of(32) || args.size > 2048 {
        return Err(Error::Config(format!(
            "--size must be a multiple of 32 up to 2048, got {}",
            args.size
        )));
    }
    let device = backend::init(Backend::parse(&args.device)?)?;
    let model = load_model(args.weights.as_deref(), &args.model, &device)?.valid();
    let files = collect_inputs(&args.inputs)?;
    if files.is_empty() {
        return Err(Error::Config("no input images".into()));
    }
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.display().to_string(),
        source,
    })?;
    let mut failed = 0usize;
    for file in &files {
        let start = Instant::now();
        match predict_one(&model, file, args, &device) {
            Ok(written) => println!(
                "{} -> {} ({:.0} ms)",
                file.display(),
                written.display(),
                start.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(Error::Image(format!(
            "{failed} of {} images could not be segmented",
            files.len()
        )));
    }
    Ok(())
}

fn write_png(img: DynamicImage, path: &Path) -> Result<(), Error> {
    let bytes = imageio::encode_png(&img)?;
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn predict_one(
    model: &Scl,
    file: &Path,
    args: &PredictArgs,
    device: &Device,
) -> Result<PathBuf, Error> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    let img = imageio::decode_rgb(&bytes, &name)?;
    let (ow, oh) = (img.width(), img.height());
    let s = args.size;
    let x = imageio::rgb_to_tensor(&imageio::resize_rgb(&img, s, s), device);
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let out = |suffix: &str| args.out.join(format!("{stem}_{suffix}.png"));
    let su = s as usize;
    let mask = if args.stages {
        let p = scl::pictures::stage_pictures(model.forward(x)?, &img, su)?;
        for (name, picture) in p.pictures {
            write_png(picture, &out(&name))?;
        }
        eprintln!(
            "{name}: stage 2 added {:.2}% of the image to the coarse mask and removed {:.2}%",
            100.0 * p.added,
            100.0 * p.removed
        );
        p.mask
    } else {
        let (_, fine) = model.predict_mask(x)?;
        imageio::prob_to_mask(&backend::read_f32(fine)?, su, su, ow, oh)
    };
    let path = out("mask");
    write_png(DynamicImage::ImageLuma8(mask), &path)?;
    Ok(path)
}

fn bench(args: &BenchArgs) -> Result<(), Error> {
    if args.iters == 0 {
        return Err(Error::Config("--iters must be at least 1".into()));
    }
    for (flag, v) in [("--size", args.size), ("--crop", args.crop)] {
        if v == 0 || !v.is_multiple_of(32) {
            return Err(Error::Config(format!(
                "{flag} must be a multiple of 32, got {v}"
            )));
        }
    }
    let cfg = args.model.config()?;
    let backend = Backend::parse(&args.device)?;
    let device = backend::init(backend)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "bench: {} on {} ({threads} CPU threads available)",
        cfg.describe(),
        backend.name()
    );
    let model = Scl::new(&cfg, &device)?;
    println!("parameters: {}", millions(trainable_params(&model)));

    let s = args.size;
    let t = scl::bench::forward(&model, &device, s, args.iters)?;
    let (macs, med) = (Macs::of(&cfg, s, s).two_stage(), t.median());
    println!(
        "two-stage forward {s}x{s} batch 1: median {:.1} ms (min {:.1}, max {:.1}, n {}), {} MACs, {:.1} GFLOP/s",
        med * 1e3,
        t.min() * 1e3,
        t.max() * 1e3,
        t.count(),
        giga(macs),
        2.0 * macs as f64 / med / 1e9
    );
    drop(model);
    if args.no_train {
        return Ok(());
    }
    let (c, l, u) = (args.crop, args.labeled, args.unlabeled);
    let t = scl::bench::train_iteration(&cfg, &device, c, (l, u), args.iters)?;
    let (macs, med) = (Macs::of(&cfg, c, c).train_iteration(l, u), t.median());
    println!(
        "training iteration {l}+{u} at {c}x{c}: median {:.3} s (min {:.3}, max {:.3}, n {}), {} MACs, {:.1} GFLOP/s",
        med,
        t.min(),
        t.max(),
        t.count(),
        giga(macs),
        2.0 * macs as f64 / med / 1e9
    );
    Ok(())
}

fn train_cmd(args: &TrainArgs) -> Result<(), Error> {
    let options = train::TrainOptions {
        data: args.data.clone(),
        train_split: args.train_split.clone(),
        val_split: args.val_split.clone(),
        val_fraction: args.val_fraction,
        label_ratio: args.label_ratio,
        method: train::Method::parse(&args.method)?,
        config: args.model.config()?,
        pretrained: args.pretrained.clone(),
        seed: args.seed,
        epochs: args.epochs,
        iters_per_epoch: args.iters_per_epoch,
        batch: args.batch,
        lr: args.lr,
        size: args.size,
        crop: args.crop,
        val_every: args.val_every,
        inp_weight: args.inp_weight,
        coarse_weight: args.coarse_weight,
        mean_teacher: train::MeanTeacherOptions {
            ema: args.ema,
            consistency: args.consistency,
            rampup: args.rampup,
            teacher_noise: args.teacher_noise,
        },
        diagnostic_images: args.diagnostic_images,
    };
    let device = backend::init(Backend::parse(&args.device)?)?;
    ctrlc::set_handler(|| {
        if train::STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this iteration (Ctrl-C again to quit at once)");
    })
    .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))?;
    train::run(&options, &args.out, &device, args.resume)
}

#[derive(serde::Serialize)]
struct EvalRow {
    weights: String,
    config: String,
    summary: scl::metrics::Summary,
    /// The stage-1 mask's scores (the prediction itself for a single-stage network).
    coarse: scl::metrics::Summary,
    images: Vec<(String, scl::metrics::Scores)>,
    coarse_images: Vec<(String, scl::metrics::Scores)>,
    /// What stage 2 changed in the coarse mask (two-stage networks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    correction: Option<scl::metrics::CorrectionSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    correction_images: Vec<(String, scl::metrics::Correction)>,
}

fn compare_backends(weights_path: Option<&Path>, size: usize) -> Result<(), Error> {
    let cpu = Device::flex();
    let gpu = backend::init(Backend::Wgpu)?;
    let model = match weights_path {
        Some(p) => weights::load_file(p, &cpu)?,
        None => Scl::new(&ModelConfig::preset("r18-w16")?, &cpu)?,
    }
    .valid();
    let bytes = weights::to_bytes(&model, weights::Precision::F32)?;
    let model_gpu = weights::from_bytes(&bytes, "copy", &gpu)?.valid();
    let x = imageio::synthetic_image(size, size);
    let run = |m: &Scl, d: &Device| -> Result<Vec<(String, Vec<f32>)>, Error> {
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 3, size, size]), d);
        let features = m.encoder.forward(xt.clone(), 1);
        let mut out: Vec<(String, Vec<f32>)> = Vec::new();
        let v = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().expect("f32");
        for (i, f) in features.iter().enumerate() {
            out.push((format!("encoder e{}", i + 1), v(f.clone())));
        }
        let o = m.forward(xt)?;
        out.push(("coarse probability".into(), v(o.coarse.clone())));
        out.push(("masked image".into(), v(o.masked.clone())));
        for (i, g) in o.gates.iter().enumerate() {
            out.push((format!("GFF gate {}", i + 1), v(g.clone())));
        }
        out.push(("fine probability".into(), v(o.fine())));
        if let Some(i) = o.inp.first() {
            out.push(("inpainting".into(), v(i.clone())));
        }
        out.push(("composite".into(), v(o.composite.clone())));
        Ok(out)
    };
    let a = run(&model, &cpu)?;
    let b = run(&model_gpu, &gpu)?;
    println!(
        "{} on a {size}x{size} synthetic image: max |flex - wgpu| per stage",
        model.config.describe()
    );
    for ((name, p), (_, q)) in a.iter().zip(&b) {
        let max = p
            .iter()
            .zip(q)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let scale = p.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        println!("  {name:<20} {max:.3e}  (values up to {scale:.3e})");
    }
    Ok(())
}

fn convert(input: &Path, output: &Path, f16: bool) -> Result<(), Error> {
    let model = weights::load_file(input, &Device::flex())?;
    let precision = if f16 {
        weights::Precision::F16
    } else {
        weights::Precision::F32
    };
    weights::save_file(&model, output, precision)?;
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} -> {} ({}, {:.2} MB): {}",
        input.display(),
        output.display(),
        precision.name(),
        size as f64 / 1e6,
        model.config.describe()
    );
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> Result<(), Error> {
    let device = backend::init(Backend::parse(&args.device)?)?;
    let dataset = scl::data::Dataset::scan(&args.data)?;
    let stems = dataset.split(&args.split, args.val_fraction, args.seed)?;
    let (pairs, missing) = dataset.select(&stems);
    for m in &missing {
        eprintln!("skipped: {m}: listed in the split but not found");
    }
    let val = train::ValSet::load(&pairs, args.size);
    println!(
        "{} split of {}: {} images at {}x{} (mean +- std over images, %)",
        args.split,
        args.data.display(),
        val.images.len(),
        args.size,
        args.size
    );
    // Rows print as each checkpoint is evaluated, so the widths are fixed up front: the longest
    // path, and the longest network description ("mobilenetv2 e5:128 dec:.../... concat-res").
    let ww = args
        .weights
        .iter()
        .map(|w| w.display().to_string().chars().count())
        .max()
        .unwrap_or(0)
        .max(7);
    let nw = 48;
    println!(
        "| {:<ww$} | {:<nw$} | {:^15} | {:^15} | {:^15} | {:^15} | {:^15} | {:^15} |",
        "weights", "network", "Dice", "IoU", "Acc", "Rec", "Spe", "coarse Dice"
    );
    println!(
        "|{}|{}|{}|",
        "-".repeat(ww + 2),
        "-".repeat(nw + 2),
        "-----------------|".repeat(6).trim_end_matches('|')
    );
    let mut rows = Vec::new();
    let mut corrections = Vec::new();
    for w in &args.weights {
        let model = weights::load_file(w, &device)?.valid();
        let ev = train::evaluate(&model, &val, &device)?;
        let two_stage = model.config.two_stage;
        let correction = two_stage.then(|| scl::metrics::CorrectionSummary::of(&ev.corrections));
        if let Some(c) = &correction {
            corrections.push((w.display().to_string(), c.clone(), ev.dice_changes()));
        }
        let summary = scl::metrics::Summary::of(&ev.fine);
        let coarse = scl::metrics::Summary::of(&ev.coarse);
        let cell =
            |m: scl::metrics::MeanStd| format!("{:.2} ± {:.2}", m.mean * 100.0, m.std * 100.0);
        let v = summary.values();
        println!(
            "| {:<ww$} | {:<nw$} | {:^15} | {:^15} | {:^15} | {:^15} | {:^15} | {:^15} |",
            w.display().to_string(),
            model.config.describe(),
            cell(v[0]),
            cell(v[1]),
            cell(v[2]),
            cell(v[3]),
            cell(v[4]),
            cell(coarse.dice)
        );
        rows.push(EvalRow {
            weights: w.display().to_string(),
            config: model.config.describe(),
            summary,
            coarse,
            images: val.stems.iter().cloned().zip(ev.fine).collect(),
            coarse_images: val.stems.iter().cloned().zip(ev.coarse).collect(),
            correction,
            correction_images: if two_stage {
                val.stems.iter().cloned().zip(ev.corrections).collect()
            } else {
                Vec::new()
            },
        });
    }
    print_corrections(&corrections, ww);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows).expect("json")).map_err(
            |source| Error::Io {
                path: path.display().to_string(),
                source,
            },
        )?;
    }
    Ok(())
}

/// The second table of `scl eval`: what stage 2 changed in each two-stage model's coarse mask.
fn print_corrections(
    rows: &[(String, scl::metrics::CorrectionSummary, (usize, usize))],
    ww: usize,
) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\nstage 2 against the coarse mask (share of the image, mean ± std over images; pooled shares of the changed pixels that were right to change)"
    );
    println!(
        "| {:<ww$} | {:^15} | {:^12} | {:^15} | {:^16} | {:^22} |",
        "weights",
        "added %",
        "lesion of it",
        "removed %",
        "background of it",
        "images Dice up / down"
    );
    println!(
        "|{}|-----------------|--------------|-----------------|------------------|------------------------|",
        "-".repeat(ww + 2)
    );
    let pct = |m: scl::metrics::MeanStd| format!("{:.2} ± {:.2}", m.mean * 100.0, m.std * 100.0);
    for (w, c, (up, down)) in rows {
        println!(
            "| {:<ww$} | {:^15} | {:^12} | {:^15} | {:^16} | {:^22} |",
            w,
            pct(c.added),
            format!("{:.1}%", c.added_right * 100.0),
            pct(c.removed),
            format!("{:.1}%", c.removed_right * 100.0),
            format!("{up} / {down} of {}", c.count)
        );
    }
}

fn adapt_cmd(args: &AdaptArgs) -> Result<(), Error> {
    use scl::adapt::{AdaptOptions, Objective, Scope, folder};
    let device = backend::init(Backend::parse(&args.device)?)?;
    let model = weights::load_file(&args.weights, &device)?.valid();
    let mut options = AdaptOptions::new(Objective::parse(&args.objective)?, args.size);
    options.steps = args.steps.unwrap_or(options.steps);
    options.lr = args.lr.unwrap_or(options.lr);
    options.batch = args.batch.unwrap_or(options.batch);
    options.crop = args.crop.unwrap_or(options.crop);
    options.scope = args.scope.as_deref().map(Scope::parse).transpose()?;
    options.seed = args.seed;
    options.adabn_augment = args.adabn_crops;
    options.prior = args.prior.unwrap_or(options.prior);
    let paths = scl::data::image_paths(&args.data, &args.split)?;
    let images: Vec<_> = paths
        .iter()
        .filter_map(|p| match scl::data::load_image(p, args.size) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        })
        .collect();
    eprintln!(
        "adapting {} ({}) to {} images of {} ({}): {}",
        args.weights.display(),
        model.config.describe(),
        images.len(),
        args.data.display(),
        args.split,
        options.objective.describe()
    );
    let (adapted, report) = folder::adapt_images(&model, &images, options, &device, |s, l, f| {
        if s % 10 == 0 {
            eprintln!("step {s}: loss {l:.5}, predicted lesion {:.1}%", 100.0 * f);
        }
    })?;
    if let Some(why) = &report.stopped {
        eprintln!("{why}");
    }
    let precision = if args.f16 {
        weights::Precision::F16
    } else {
        weights::Precision::F32
    };
    weights::save_file(&adapted, &args.out, precision)?;
    eprintln!(
        "done in {:.1} s ({} AdaBN batches, {} steps): {}",
        report.seconds,
        report.adabn_batches,
        report.steps,
        args.out.display()
    );
    for (i, r) in report.prior_rounds.iter().enumerate() {
        eprintln!(
            "prior matching, round {}: output bias {:+.3}, predicted lesion {:.1}%",
            i + 1,
            r.offset,
            100.0 * r.foreground
        );
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report).expect("json")).map_err(
            |source| Error::Io {
                path: path.display().to_string(),
                source,
            },
        )?;
    }
    Ok(())
}
