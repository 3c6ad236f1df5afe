//! Dropout of SPEC.md's segmentation heads (p = 0.1), with a fast mask on the CPU.
//!
//! The same function as `burn::nn::Dropout` (keep with probability `1 - p`, scale kept values
//! by `1 / (1 - p)`, identity outside training), but on the Flex CPU backend the Bernoulli mask
//! comes from a xorshift generator on the host: Burn's `random_like` draws every element with a
//! ChaCha generator and an f64 distribution, 3-4% of a training iteration
//! (`scripts/perf_kinds.py`). Other backends keep Burn's device-side `random_like`. The host
//! generator is per thread and reseeded by [`seed`] (the trainer and the adapter call it with
//! their run's seed), so a run's masks are reproducible.

use std::cell::Cell;

use burn::module::{Flag, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::layers::is_cpu;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Reseeds this thread's mask generator.
pub fn seed(seed: u64) {
    // splitmix64 of the seed: never zero, well spread.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    STATE.with(|s| s.set((z ^ (z >> 31)) | 1));
}

/// `n` mask values: `scale` with probability `keep`, else 0 (xorshift64*).
fn host_mask(n: usize, keep: f64, scale: f32) -> Vec<f32> {
    let threshold = (keep * (1u64 << 32) as f64) as u64;
    STATE.with(|s| {
        let mut x = s.get();
        let out = (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
                if r < threshold { scale } else { 0.0 }
            })
            .collect();
        s.set(x);
        out
    })
}

/// Dropout with probability `prob`.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub prob: f64,
    /// Whether the layer takes part in training (cleared by `freeze()`).
    pub training: Param<Flag>,
}

impl Dropout {
    /// A dropout layer with probability `prob`.
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Applies dropout on an autodiff device while training; the identity otherwise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        if !self.training.is_enabled() || !device.is_autodiff() || self.prob == 0.0 {
            return x;
        }
        let keep = 1.0 - self.prob;
        let mask = if is_cpu(&device) {
            let shape = x.dims();
            let n = shape.iter().product();
            let v = host_mask(n, keep, (1.0 / keep) as f32);
            Tensor::<4>::from_data(TensorData::new(v, shape), &device)
        } else {
            x.random_like(Distribution::Bernoulli(keep)) * (1.0 / keep)
        };
        x * mask
    }
}
