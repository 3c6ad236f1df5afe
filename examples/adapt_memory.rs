//! Memory probe of in-page adaptation (issue 12's soak, bisected natively): repeats what the
//! page's fine-tuning panel does (`Adapter::new`, an AdaBN pass, gradient steps, the inference
//! copy taken after each step, one segmentation) in one process under a counting allocator, and
//! prints the bytes still allocated after each run. A leak shows as live bytes that grow with
//! the number of runs or steps; a flat line means the page's growth is the wasm heap's
//! high-water mark, not live memory.
//!
//! `cargo run --release --example adapt_memory -- [RUNS] [STEPS] [SIZE] [OBJECTIVE] [SCOPE]`
//! (defaults 8 runs of 10 steps at 160 px, `adabn+inpainting`, the objective's own scope).
//!
//! Found this way (issue 12): an AdaBN pass on the autodiff device kept 2.4 MiB per forward
//! (now run on the inference network, `adapt::adabn`), and Burn's autodiff graph registry kept
//! one graph per run, ~0.3 MiB (`vendor/burn-autodiff/PATCH.md`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use burn::prelude::*;
use image::{Rgb, RgbImage};
use scl::adapt::{AdaptOptions, Adapter, Objective};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size() as isize, Relaxed) + l.size() as isize;
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

fn mib(b: isize) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// Six textured images with a disc, like the soak's synthetic PNGs.
fn images(size: u32) -> Vec<RgbImage> {
    (0..6)
        .map(|i| {
            RgbImage::from_fn(size, size, |x, y| {
                let (dx, dy) = (x as f32 - 60.0 - 4.0 * i as f32, y as f32 - 70.0);
                let disc = dx * dx + dy * dy < 900.0;
                let t = 30.0 * ((x as f32 * 0.3 + y as f32 * 0.5 + i as f32).sin());
                let b = if disc {
                    [220.0, 90.0, 80.0]
                } else {
                    [130.0, 70.0, 60.0]
                };
                Rgb(std::array::from_fn(|c| (b[c] + t).clamp(0.0, 255.0) as u8))
            })
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: &str| std::env::args().nth(i).unwrap_or_else(|| d.to_string());
    let runs: usize = arg(1, "8").parse()?;
    let steps: usize = arg(2, "10").parse()?;
    let size: u32 = arg(3, "160").parse()?;
    let objective = Objective::parse(&arg(4, "adabn+inpainting"))?;
    let device = Device::flex();
    let mut model = scl::weights::load_file("weights/scl.bpk".as_ref(), &device)?;
    let imgs = images(size);
    println!("run,steps,live_mib,peak_mib");
    for run in 0..=runs {
        let mut options = AdaptOptions::new(objective, size);
        options.steps = steps;
        options.batch = 2;
        if let Some(scope) = std::env::args().nth(5) {
            options.scope = Some(scl::adapt::Scope::parse(&scope)?);
        }
        let mut a = Adapter::new(&model, &device, options)?;
        if objective.adabn {
            for chunk in imgs.chunks(2) {
                a.adabn_images(chunk)?;
                model = a.model()?;
            }
        }
        let gradient_steps = if objective.loss.is_some() { steps } else { 0 };
        for _ in 0..gradient_steps {
            let batch: Vec<RgbImage> = a
                .next_batch(imgs.len())
                .into_iter()
                .map(|i| imgs[i].clone())
                .collect();
            let x = a.crops(&batch);
            a.step_sync(x)?;
            model = a.model()?;
        }
        drop(a);
        let x = scl::imageio::rgb_to_tensor(&imgs[0], &device);
        let (fine, _) = model.predict_mask(x)?;
        let _ = fine.into_data();
        println!(
            "{run},{},{:.2},{:.2}",
            (run + 1) * steps,
            mib(LIVE.load(Relaxed)),
            mib(PEAK.load(Relaxed))
        );
    }
    Ok(())
}
