//! The speed benchmark behind `scl bench` (issue 8): the two-stage forward (SPEC.md
//! "Inference") and one SCL training iteration (SPEC.md "Training": labeled + unlabeled crops,
//! losses, backward, SGD step) on random inputs, each timed after one warm-up. Native only
//! (wall-clock time); `scripts/bench-vs-pytorch.sh` runs it beside the PyTorch reference.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;

use crate::Error;
use crate::config::ModelConfig;
use crate::model::Scl;
use crate::train::{self, Batch};

/// Wall-clock times of repeated runs (seconds, warm-up excluded), kept sorted.
#[derive(Debug, Clone)]
pub struct Timings(Vec<f64>);

impl Timings {
    /// The times of `runs`; panics without any (`scl bench` refuses `--iters 0` first).
    pub fn new(mut runs: Vec<f64>) -> Self {
        assert!(!runs.is_empty(), "timings of no run");
        runs.sort_by(f64::total_cmp);
        Self(runs)
    }

    /// How many runs.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The median (the mean of the two middle values for an even count).
    pub fn median(&self) -> f64 {
        let (v, n) = (&self.0, self.0.len());
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// The fastest run.
    pub fn min(&self) -> f64 {
        self.0[0]
    }

    /// The slowest run.
    pub fn max(&self) -> f64 {
        self.0[self.0.len() - 1]
    }
}

fn uniform(dims: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(dims, Distribution::Uniform(0.0, 1.0), device)
}

/// Times `iters` two-stage forwards of `model` (inference mode) on one random `size x size`
/// image on `device` (the model's); each run ends when the composite and the fine mask are
/// read back. `iters` must be at least 1.
pub fn forward(model: &Scl, device: &Device, size: usize, iters: usize) -> Result<Timings, Error> {
    let infer = model.valid();
    let x = uniform([1, 3, size, size], device);
    let run = || -> Result<f64, Error> {
        let t = Instant::now();
        let out = infer.forward(x.clone())?;
        // Reading the outputs forces the queued work to finish.
        let _ = out.composite.into_data();
        let _ = out.seg[0].clone().into_data();
        Ok(t.elapsed().as_secs_f64())
    };
    run()?;
    (0..iters)
        .map(|_| run())
        .collect::<Result<_, _>>()
        .map(Timings::new)
}

/// Times `iters` training iterations of a new `cfg` network on `device` (autodiff is added):
/// `labeled` random crops with random masks and `unlabeled` random crops, `crop x crop`, SGD
/// at learning rate 1e-3. A non-finite loss is an error. `iters` must be at least 1.
pub fn train_iteration(
    cfg: &ModelConfig,
    device: &Device,
    crop: usize,
    (labeled, unlabeled): (usize, usize),
    iters: usize,
) -> Result<Timings, Error> {
    let ad = device.clone().autodiff();
    let mut model = Scl::new(cfg, &ad)?;
    let mut optim = train::sgd();
    let batch = Batch::new(
        (labeled > 0).then(|| {
            let mask = uniform([labeled, 1, crop, crop], &ad)
                .greater_elem(0.7)
                .float();
            (uniform([labeled, 3, crop, crop], &ad), mask)
        }),
        (unlabeled > 0).then(|| uniform([unlabeled, 3, crop, crop], &ad)),
    );
    let mut times = Vec::with_capacity(iters);
    for i in 0..=iters {
        let t = Instant::now();
        let (next, terms) = train::step(model, &mut optim, &batch, 1e-3);
        model = next;
        // Reading a parameter forces the update to finish.
        let _ = model.seg.head.out.weight.val().into_data();
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        if !terms.total.is_finite() {
            return Err(Error::Config(format!(
                "training produced a non-finite loss ({terms:?})"
            )));
        }
    }
    Ok(Timings::new(times))
}

#[cfg(test)]
mod tests {
    use super::Timings;

    #[test]
    fn median_min_max_by_hand() {
        let t = Timings::new(vec![0.3, 0.1, 0.4, 0.2]);
        assert_eq!(t.median(), 0.25);
        assert_eq!(t.min(), 0.1);
        assert_eq!(t.max(), 0.4);
        assert_eq!(Timings::new(vec![0.5, 0.1, 0.3]).median(), 0.3);
    }
}
