//! Memory left behind by adaptation runs (issue 12's soak, as a test): live heap bytes are
//! counted by this binary's global allocator, and repeated runs on one network must not leave
//! more behind than the first. A test of memory, not of time.
//!
//! The two leaks it guards: an AdaBN pass on the autodiff device (every op registered in Burn's
//! autodiff graph registry, never freed without a backward: ~2.4 MiB per forward of the shipped
//! network) and a graph-registry key leak in burn-autodiff (one graph per run of 5+ steps,
//! `vendor/burn-autodiff/PATCH.md`).
#![cfg(not(target_family = "wasm"))]

#[path = "native/common.rs"]
#[allow(dead_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use image::{Rgb, RgbImage};
use scl::adapt::{AdaptOptions, Objective, folder};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
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

/// One test at a time: the counter is global.
static SERIAL: Mutex<()> = Mutex::new(());

fn images() -> Vec<RgbImage> {
    (0..4)
        .map(|i| {
            RgbImage::from_fn(64, 64, |x, y| {
                let d = (x as f32 - 30.0).powi(2) + (y as f32 - 28.0 - i as f32).powi(2) < 150.0;
                let t = 25.0 * ((x as f32 * 0.4 + y as f32 * 0.9 + i as f32).sin());
                let b = if d {
                    [220.0, 90.0, 80.0]
                } else {
                    [120.0, 60.0, 50.0]
                };
                Rgb(std::array::from_fn(|c| (b[c] + t).clamp(0.0, 255.0) as u8))
            })
        })
        .collect()
}

/// Live bytes after each of `runs` adaptation runs, each starting from the previous result.
/// On one rayon thread: each worker thread keeps its own scratch buffers (gemm's), whose sizes
/// depend on which thread ran what, ±200 KB of noise on two threads.
fn live_after_runs(objective: &str, steps: usize, runs: usize) -> Vec<isize> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| runs_on_this_thread(objective, steps, runs))
}

fn runs_on_this_thread(objective: &str, steps: usize, runs: usize) -> Vec<isize> {
    let device = common::dev();
    let mut model = common::model(&common::light(), &device);
    let imgs = images();
    let mut live = Vec::new();
    for _ in 0..runs {
        let mut options = AdaptOptions::new(Objective::parse(objective).unwrap(), 64);
        options.steps = steps;
        options.batch = 2;
        options.crop = 64;
        let (adapted, _) =
            folder::adapt_images(&model, &imgs, options, &device, |_, _, _| {}).unwrap();
        model = adapted;
        live.push(LIVE.load(Relaxed));
    }
    live
}

/// Growth from runs 2-3 (the first warms buffers) to the last two, each the smaller of the two
/// (hash tables resize at different moments: ±50 KB of noise between runs).
fn growth(live: &[isize]) -> isize {
    let n = live.len();
    live[n - 2].min(live[n - 1]) - live[1].min(live[2])
}

/// Before the fixes: AdaBN runs left ~5 MB each, gradient runs ~0.3 MB each.
const SLACK: isize = 128 << 10;

#[test]
fn adabn_runs_leave_nothing_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_after_runs("adabn", 0, 6);
    println!("adabn: live bytes after each run {live:?}");
    assert!(
        growth(&live) < SLACK,
        "AdaBN runs leaked {} bytes: {live:?}",
        growth(&live)
    );
}

#[test]
fn gradient_runs_leave_nothing_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_after_runs("pseudo", 6, 6);
    println!("pseudo (all parameters): live bytes after each run {live:?}");
    assert!(
        growth(&live) < SLACK,
        "gradient runs leaked {} bytes: {live:?}",
        growth(&live)
    );
}
