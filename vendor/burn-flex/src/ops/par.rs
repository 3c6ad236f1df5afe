//! [scl patch] Elementwise passes over large tensors, split across rayon's threads.
//!
//! Flex runs its elementwise kernels (unary, binary, scalar and broadcast ops) on the calling
//! thread. In a training step of a small convolutional network on two cores they are about half
//! the wall time, the pool's threads idle meanwhile (a profile of the MobileNetV2 preset's SCL
//! iteration: the calling thread ~90% in elementwise ops while the two workers ran only the
//! convolutions). These helpers cut one pass into a contiguous chunk per thread when the
//! tensor has at least [`PAR_MIN`] elements. Every element is still computed by the same code
//! from the same operands, so results are bit-identical to the serial pass. Without the `rayon`
//! feature (or with one thread) they run the serial pass.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

/// Elements below which a pass stays on the calling thread: 64 Ki f32 (256 KiB) take some tens
/// of microseconds, the order of a rayon fan-out and join.
#[cfg(not(all(target_family = "wasm", target_feature = "atomics")))]
pub(crate) const PAR_MIN: usize = 1 << 16;
#[cfg(all(target_family = "wasm", target_feature = "atomics"))]
pub(crate) const PAR_MIN: usize = 1 << 14;

/// Chunks to cut `n` elements into: one per pool thread, none smaller than half of `PAR_MIN`
/// (so always 1 without `rayon`). (Flex's `ops::PARALLEL_THRESHOLD`, 256 Ki elements, gates its
/// per-row loops; an elementwise pass has no per-row work to amortise, hence the lower bound
/// here.)
fn pieces(n: usize) -> usize {
    if n < PAR_MIN {
        return 1;
    }
    threads().min(n / (PAR_MIN / 2)).max(1)
}

/// The pool's thread count (1 without `rayon`).
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Calls `f(start, chunk)` over consecutive chunks of `dst` (`start` is the chunk's first index),
/// in parallel for large slices. Chunk lengths are multiples of `unit` (except the last), so
/// that a caller whose work comes in rows of `unit` elements never splits a row; with `unit`
/// 1, multiples of 16 elements (one cache line of f32).
pub(crate) fn for_chunks_mut<T, F>(dst: &mut [T], unit: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let unit = if unit <= 1 { 16 } else { unit };
    for_chunks_mut_work(dst, unit, dst.len(), f);
}

/// [`for_chunks_mut`] for a pass whose cost is `work` element operations rather than
/// `dst.len()` (a reduction: few outputs, each summing many inputs), so that it goes parallel
/// when `work` is large. Chunk lengths are multiples of `unit` (except the last).
///
/// Only this thin wrapper is generic: the fan-out itself is [`run_ranges`], compiled once.
/// (Generic over the closure, rayon's splitting machinery was instantiated for every op and
/// dtype, and it multiplied Flex's release build time by seven.)
pub(crate) fn for_chunks_mut_work<T, F>(dst: &mut [T], unit: usize, work: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let n = dst.len();
    let unit = unit.max(1);
    let p = pieces(work).min(n.div_ceil(unit));
    if p <= 1 {
        f(0, dst);
        return;
    }
    let base = SendPtr(dst.as_mut_ptr());
    run_ranges(n, unit, p, &|start, end| {
        // SAFETY: `run_ranges` hands out disjoint ranges inside `0..n`, and `dst` (of length
        // `n`) stays mutably borrowed for the whole call, so each chunk is an exclusive view.
        let chunk = unsafe { core::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        f(start, chunk);
    });
}

/// A raw pointer that may cross to the pool's threads (each uses a disjoint range of it).
struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    fn get(&self) -> *mut T {
        self.0
    }
}

// SAFETY: `for_chunks_mut` only dereferences the pointer in disjoint ranges of a `&mut [T]`
// with `T: Send`.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// Calls `f(start, end)` on at most `p` consecutive ranges covering `0..n` on rayon's threads.
/// Range lengths are multiples of `unit` (except the last).
#[cfg(feature = "rayon")]
fn run_ranges(n: usize, unit: usize, p: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    use rayon::prelude::*;
    let per = n.div_ceil(unit).div_ceil(p) * unit;
    (0..n.div_ceil(per))
        .into_par_iter()
        .for_each(|i| f(i * per, ((i + 1) * per).min(n)));
}

/// Without `rayon`, `pieces` is 1 and `for_chunks_mut` never gets here.
#[cfg(not(feature = "rayon"))]
fn run_ranges(n: usize, _unit: usize, _p: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    f(0, n);
}

/// A vector of `n` elements whose every element is written by `f(start, chunk)` over the chunks
/// of [`for_chunks_mut`]. `f` must write each element of its chunk (every caller here writes
/// its chunk with one `zip` over exactly `chunk.len()` inputs).
pub(crate) fn build<T, F>(n: usize, unit: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [MaybeUninit<T>]) + Sync,
{
    let mut out = Vec::with_capacity(n);
    for_chunks_mut(&mut out.spare_capacity_mut()[..n], unit, f);
    // SAFETY: `for_chunks_mut` covers `0..n` with disjoint chunks and `f` initialises every
    // element of its chunk (the contract above); a panic in `f` propagates before this line.
    unsafe { out.set_len(n) };
    out
}

/// A vector of `n` copies of `value`, written in parallel for large `n`. (A convolution's
/// output zeroed with `vec![0.0; n]` is a serial pass on the calling thread before the
/// parallel work: with a batch of one image about a tenth of a MobileNetV2 forward's wall time
/// on two threads.)
pub(crate) fn filled<T: Copy + Send + Sync>(n: usize, value: T) -> Vec<T> {
    if pieces(n) <= 1 {
        // Serial: `vec!` zeroes through `alloc_zeroed`, which skips the pass for memory that
        // is fresh from the system (the single-threaded browser build was ~10% slower with
        // an explicit fill).
        return alloc::vec![value; n];
    }
    build(n, 1, |_, out| out.fill(MaybeUninit::new(value)))
}

/// `out[i] = op(src[i])` for every element, in parallel for large slices.
pub(crate) fn map<S, T, F>(src: &[S], op: F) -> Vec<T>
where
    S: Copy + Sync,
    T: Send,
    F: Fn(S) -> T + Sync,
{
    build(src.len(), 1, |start, out| {
        for (o, &x) in out.iter_mut().zip(&src[start..]) {
            o.write(op(x));
        }
    })
}

/// `out[i] = op(a[i], b[i])` for every element, in parallel for large slices.
pub(crate) fn map2<A, B, T, F>(a: &[A], b: &[B], op: F) -> Vec<T>
where
    A: Copy + Sync,
    B: Copy + Sync,
    T: Send,
    F: Fn(A, B) -> T + Sync,
{
    debug_assert_eq!(a.len(), b.len());
    build(a.len(), 1, |start, out| {
        for ((o, &x), &y) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            o.write(op(x, y));
        }
    })
}

/// `dst[i] = op(dst[i])` for every element, in parallel for large slices.
pub(crate) fn update<T, F>(dst: &mut [T], op: F)
where
    T: Copy + Send,
    F: Fn(T) -> T + Sync,
{
    for_chunks_mut(dst, 1, |_, chunk| {
        for x in chunk.iter_mut() {
            *x = op(*x);
        }
    });
}

/// `dst[i] = op(dst[i], src[i])` for every element, in parallel for large slices.
pub(crate) fn update2<T, S, F>(dst: &mut [T], src: &[S], op: F)
where
    T: Copy + Send,
    S: Copy + Sync,
    F: Fn(T, S) -> T + Sync,
{
    debug_assert_eq!(dst.len(), src.len());
    for_chunks_mut(dst, 1, |start, chunk| {
        for (x, &y) in chunk.iter_mut().zip(&src[start..]) {
            *x = op(*x, y);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_element_once_in_whole_units() {
        for &(n, unit) in &[
            (0, 1),
            (5, 1),
            (PAR_MIN, 1),
            (3 * PAR_MIN + 7, 1),
            (PAR_MIN * 4, 4096),
            (PAR_MIN * 2 + 100, 100),
        ] {
            let mut seen = alloc::vec![0u8; n];
            for_chunks_mut(&mut seen, unit, |start, chunk| {
                assert!(
                    start % unit == 0,
                    "chunk at {start} splits a unit of {unit}"
                );
                for x in chunk.iter_mut() {
                    *x += 1;
                }
            });
            assert!(seen.iter().all(|&c| c == 1), "n {n} unit {unit}");
        }
    }

    #[test]
    fn map_and_update_match_the_serial_pass() {
        let n = 5 * PAR_MIN + 3;
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let m = map(&a, |x| x * 2.0 + 1.0);
        let m2 = map2(&a, &b, |x, y| x * y - 0.5);
        let mut u = a.clone();
        update2(&mut u, &b, |x, y| x - y);
        update(&mut u, |x| x * 3.0);
        for i in 0..n {
            assert_eq!(m[i], a[i] * 2.0 + 1.0);
            assert_eq!(m2[i], a[i] * b[i] - 0.5);
            assert_eq!(u[i], (a[i] - b[i]) * 3.0);
        }
    }
}
