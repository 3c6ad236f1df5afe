//! `scl adapt` (native): the page's adaptation driven over a folder's images, with the same
//! calls in the same order as the page's worker makes them (AdaBN over every image in batches,
//! then gradient steps on the batches [`Adapter::next_batch`] picks, then the prior-matching
//! rounds over every image in batches).

use std::time::Instant;

use burn::prelude::*;
use image::RgbImage;

use super::{AdaptOptions, Adapter, Verdict};
use crate::Error;
use crate::model::Scl;

/// What an adaptation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Images used.
    pub images: usize,
    /// AdaBN batches.
    pub adabn_batches: usize,
    /// Gradient steps taken.
    pub steps: usize,
    /// Loss of each step (before its update).
    pub losses: Vec<f64>,
    /// Predicted lesion fraction of each step's batch (before its update).
    pub foreground: Vec<f64>,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// Prior matching's rounds: total output-bias offset and measured lesion fraction
    /// (empty without it).
    pub prior_rounds: Vec<super::prior::Round>,
    /// Seconds in all.
    pub seconds: f64,
}

/// Adapts `model` to `images` (already at the working size `options.size`); `progress` hears
/// each step's number, loss and foreground fraction.
pub fn adapt_images(
    model: &Scl,
    images: &[RgbImage],
    options: AdaptOptions,
    device: &Device,
    mut progress: impl FnMut(usize, f64, f64),
) -> Result<(Scl, Report), Error> {
    if images.is_empty() {
        return Err(Error::Config("no images to adapt to".into()));
    }
    let t0 = Instant::now();
    let mut a = Adapter::new(model, device, options.clone())?;
    let mut report = Report {
        images: images.len(),
        adabn_batches: 0,
        steps: 0,
        losses: Vec::new(),
        foreground: Vec::new(),
        stopped: None,
        prior_rounds: Vec::new(),
        seconds: 0.0,
    };
    if options.objective.adabn {
        for chunk in images.chunks(options.batch) {
            a.adabn_images(chunk)?;
            report.adabn_batches += 1;
        }
    }
    if options.objective.loss.is_some() {
        for step in 0..options.steps {
            let batch: Vec<RgbImage> = a
                .next_batch(images.len())
                .into_iter()
                .map(|i| images[i].clone())
                .collect();
            let x = a.crops(&batch);
            let (loss, fg, verdict) = a.step_sync(x)?;
            report.losses.push(loss);
            report.foreground.push(fg);
            progress(step + 1, loss, fg);
            if let Verdict::Collapsed { message } = verdict {
                report.stopped = Some(message);
                break;
            }
        }
    }
    if options.objective.prior {
        loop {
            a.prior_begin_round()?;
            for chunk in images.chunks(options.batch) {
                let z = a.prior_images(chunk)?.into_data();
                a.prior_record(
                    z.as_slice::<f32>()
                        .map_err(|e| Error::Config(format!("reading the logits failed: {e:?}")))?,
                );
            }
            if !a.prior_apply()? {
                break;
            }
        }
        report.prior_rounds = a.prior_rounds().to_vec();
    }
    report.steps = a.steps();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok((a.model()?, report))
}
