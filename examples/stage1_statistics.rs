//! Diagnostic of issue 9: does the two-stage network's stage-1 (coarse) mask suffer from batch
//! norm statistics that mix two feature distributions? In training (SPEC.md, "The two stages")
//! the shared segmentation decoder runs twice per image, on the encoder's own features in stage
//! one and on the fused ones in stage two, and each pass updates the same running statistics;
//! at inference both stages normalise with that mixture.
//!
//! This re-estimates the running statistics on the training images (their masks are never
//! read) in the cumulative mode of AdaBN ([`scl::model::norm::CumulativeStats`]) twice: once
//! with the two-stage passes training makes, once with stage-1 passes only, and scores the
//! coarse and fine masks on the validation split after each. If only the stage-1-only
//! statistics lift the coarse Dice, the mixture is what holds stage 1 back.
//!
//! `cargo run --release --example stage1_statistics -- WEIGHTS.bpk DATA [SIZE]`
//! (e.g. `weights/scl.bpk ../shared/data/kvasir-seg 224`).

use burn::prelude::*;
use scl::Error;
use scl::metrics::{Confusion, Summary};
use scl::model::norm::{CumulativeStats, with_batch_statistics};
use scl::model::{FineParts, Scl};
use scl::train::{ValSet, evaluate};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, data, ..] = args.as_slice() else {
        return Err(Error::Config(
            "usage: stage1_statistics WEIGHTS.bpk DATA [SIZE]".into(),
        ));
    };
    let size: u32 = match args.get(2) {
        Some(s) => s
            .parse()
            .map_err(|_| Error::Config(format!("SIZE must be a number, got {s:?}")))?,
        None => 224,
    };
    let device = Device::flex();
    let dataset = scl::data::Dataset::scan(std::path::Path::new(data))?;
    let load = |split: &str| -> Result<ValSet, Error> {
        let stems = dataset.split(split, 0.2, 1)?;
        Ok(ValSet::load(&dataset.select(&stems).0, size))
    };
    let (train, val) = (load("train")?, load("val")?);
    println!(
        "{weights}: {} training images re-estimate the statistics, {} val images are scored at {size}",
        train.images.len(),
        val.images.len()
    );
    println!("| batch-norm statistics | fine Dice | coarse Dice |\n|---|---|---|");
    let open = || scl::weights::load_file(std::path::Path::new(weights), &device);
    score("as trained", &open()?.valid(), &val, &device)?;
    for (name, stage1_only) in [
        ("re-estimated, two-stage passes (as in training)", false),
        ("re-estimated, stage-1 passes only", true),
    ] {
        // A fresh load each time: clones share their running statistics.
        let model = open()?.valid();
        let mut stats = CumulativeStats::default();
        for (x, _) in train.batches(4, &device) {
            stats.run(|| {
                with_batch_statistics(|| {
                    if stage1_only {
                        drop(model.coarse(x, 1));
                    } else {
                        drop(model.forward_aligned(x, FineParts::MASK_ONLY));
                    }
                })
            });
        }
        score(name, &model, &val, &device)?;
        if stage1_only {
            let trained = open()?.valid();
            combined(&model, &trained, &val, &device)?;
        }
    }
    Ok(())
}

/// Stage 1 (the coarse mask) from `stage1`, stage 2 (both encoder passes, fusion, decoder) from
/// `stage2` on the image erased with that mask: the two-stage network with each stage's own
/// statistics.
fn combined(stage1: &Scl, stage2: &Scl, val: &ValSet, device: &Device) -> Result<(), Error> {
    let s = val.size as usize;
    let (mut fine, mut coarse) = (Vec::new(), Vec::new());
    for (x, masks) in val.batches(4, device) {
        let c1 = stage1.coarse(x.clone(), 1);
        let c2 = stage2.coarse(x, 1);
        let fused = stage2.fuse(&c2.features, c1.masked, 1);
        let f = burn::tensor::activation::sigmoid(
            stage2.seg.forward(&fused.g, false, 1).swap_remove(0),
        );
        let (f, c) = (read(f)?, read(c1.prob)?);
        for ((f, c), m) in f.chunks(s * s).zip(c.chunks(s * s)).zip(masks) {
            fine.push(Confusion::from_maps(f, m).scores());
            coarse.push(Confusion::from_maps(c, m).scores());
        }
    }
    let dice = |s: &[scl::metrics::Scores]| Summary::of(s).dice.mean * 100.0;
    println!(
        "| stage 1 with stage-1-only statistics, stage 2 as trained | {:.2} | {:.2} |",
        dice(&fine),
        dice(&coarse)
    );
    Ok(())
}

fn read(t: Tensor<4>) -> Result<Vec<f32>, Error> {
    scl::backend::read_f32(t)
}

fn score(name: &str, model: &Scl, val: &ValSet, device: &Device) -> Result<(), Error> {
    let ev = evaluate(model, val, device)?;
    let dice = |s: &[scl::metrics::Scores]| Summary::of(s).dice.mean * 100.0;
    println!(
        "| {name} | {:.2} | {:.2} |",
        dice(&ev.fine),
        dice(&ev.coarse)
    );
    Ok(())
}
