//! The per-plane loops of the fused batch norm (`flex.rs`), written so that the compiler
//! vectorises them: sums over `L` independent f32 lanes (combined in f64 at the end of a plane)
//! and branch-free selects. On x86-64 each loop is also compiled with AVX2 + FMA and chosen at
//! run time when the CPU has them (the crate's baseline is SSE2, where Flex's own kernels
//! dispatch to AVX2/AVX-512 too); the wasm32 builds get SIMD128 from the crate's target
//! features.

/// f32 lanes per partial sum.
const L: usize = 16;

/// Defines `pub fn $name` that runs `$body` (an `#[inline(always)]` function of the same
/// arguments) compiled for AVX2 + FMA when the CPU has them, and for the baseline otherwise.
macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident = $body:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// `sum_i f(v[0][i], .., v[K-1][i])` in f64, over the shortest input: `L` f32 lanes, summed in
/// f64 at the end. One accumulator per loop: the vectoriser left loops that update two
/// accumulators at once scalar, so two sums over the same plane are two loops (the plane is
/// in cache for the second).
#[inline(always)]
fn lane_sum<const K: usize>(v: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f64 {
    let n = v.iter().map(|s| s.len()).min().unwrap_or(0);
    let whole = n - n % L;
    let mut acc = [0f32; L];
    let mut i = 0;
    while i < whole {
        let c: [&[f32; L]; K] =
            std::array::from_fn(|k| v[k][i..i + L].try_into().expect("a chunk of L"));
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(std::array::from_fn(|k| c[k][l]));
        }
        i += L;
    }
    let tail: f64 = (whole..n)
        .map(|j| f(std::array::from_fn(|k| v[k][j])) as f64)
        .sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// `g` where `lo < y < hi`, else 0 (the activation's gradient mask).
#[inline(always)]
fn passed(g: f32, y: f32, lo: f32, hi: f32) -> f32 {
    if y > lo && y < hi { g } else { 0.0 }
}

#[inline(always)]
fn sum_dev_sq_body(x: &[f32], m: f32) -> (f64, f64) {
    let s = lane_sum([x], |[x]| x - m);
    let q = lane_sum([x], |[x]| (x - m) * (x - m));
    (s, q)
}

dispatch! {
    /// `(sum (x - m), sum (x - m)^2)`: with `m` near the mean (a first value of the
    /// sub-batch) the squares do not cancel.
    fn sum_dev_sq = sum_dev_sq_body(x: &[f32], m: f32) -> (f64, f64)
}

/// `clamp(z, lo, hi)` by comparisons rather than f32::max/min, so that NaN stays NaN.
#[inline(always)]
fn clamp(z: f32, lo: f32, hi: f32) -> f32 {
    if z < lo {
        lo
    } else if z > hi {
        hi
    } else {
        z
    }
}

#[inline(always)]
fn affine_clamp_body(out: &mut [f32], x: &[f32], a: f32, b: f32, lo: f32, hi: f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = clamp(v * a + b, lo, hi);
    }
}

#[inline(always)]
fn affine_clamp_in_place_body(x: &mut [f32], a: f32, b: f32, lo: f32, hi: f32) {
    for v in x.iter_mut() {
        *v = clamp(*v * a + b, lo, hi);
    }
}

dispatch! {
    /// `x = clamp(a x + b, lo, hi)`.
    fn affine_clamp_in_place = affine_clamp_in_place_body(x: &mut [f32], a: f32, b: f32, lo: f32, hi: f32) -> ()
}

dispatch! {
    /// `out = clamp(a x + b, lo, hi)`.
    fn affine_clamp = affine_clamp_body(out: &mut [f32], x: &[f32], a: f32, b: f32, lo: f32, hi: f32) -> ()
}

#[inline(always)]
fn grad_sums_body(g: &[f32], y: &[f32], x: &[f32], m: f32, lo: f32, hi: f32) -> (f64, f64) {
    let s = lane_sum([g, y], |[g, y]| passed(g, y, lo, hi));
    let t = lane_sum([g, y, x], |[g, y, x]| passed(g, y, lo, hi) * (x - m));
    (s, t)
}

dispatch! {
    /// `(sum g', sum g' (x - m))` with `g' = g` where `lo < y < hi`, else 0.
    fn grad_sums = grad_sums_body(g: &[f32], y: &[f32], x: &[f32], m: f32, lo: f32, hi: f32) -> (f64, f64)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn grad_input_body(
    out: &mut [f32],
    g: &[f32],
    y: &[f32],
    x: &[f32],
    k: [f32; 3],
    lo: f32,
    hi: f32,
) {
    let n = out.len().min(g.len()).min(y.len()).min(x.len());
    let (out, g, y, x) = (&mut out[..n], &g[..n], &y[..n], &x[..n]);
    for i in 0..n {
        out[i] = k[0] * passed(g[i], y[i], lo, hi) + k[1] * x[i] + k[2];
    }
}

dispatch! {
    /// `out = k0 g' + k1 x + k2` with `g'` as in [`grad_sums`].
    fn grad_input = grad_input_body(out: &mut [f32], g: &[f32], y: &[f32], x: &[f32], k: [f32; 3], lo: f32, hi: f32) -> ()
}

#[inline(always)]
fn grad_input_in_place_body(g: &mut [f32], y: &[f32], x: &[f32], k: [f32; 3], lo: f32, hi: f32) {
    let n = g.len().min(y.len()).min(x.len());
    let (g, y, x) = (&mut g[..n], &y[..n], &x[..n]);
    for i in 0..n {
        g[i] = k[0] * passed(g[i], y[i], lo, hi) + k[1] * x[i] + k[2];
    }
}

dispatch! {
    /// [`grad_input`] written over `g`.
    fn grad_input_in_place = grad_input_in_place_body(g: &mut [f32], y: &[f32], x: &[f32], k: [f32; 3], lo: f32, hi: f32) -> ()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in [-4, 8) from a fixed generator, `n` of them.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 12_000) as f32 / 1000.0 - 4.0
            })
            .collect()
    }

    #[test]
    fn loops_match_their_scalar_definitions_at_every_length() {
        let (lo, hi) = (0.0, 6.0);
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let (g, y, x) = (values(n, 1), values(n, 2), values(n, 3));
            let gp = |i: usize| {
                if y[i] > lo && y[i] < hi {
                    g[i] as f64
                } else {
                    0.0
                }
            };
            let m = 1.5;
            let (s, q) = sum_dev_sq(&x, m);
            let es: f64 = x.iter().map(|&v| v as f64 - 1.5).sum();
            let eq: f64 = x.iter().map(|&v| (v as f64 - 1.5).powi(2)).sum();
            assert!(
                (s - es).abs() < 1e-3 && (q - eq).abs() < 1e-2,
                "n {n}: {s} {q} vs {es} {eq}"
            );
            let (s, t) = grad_sums(&g, &y, &x, m, lo, hi);
            let es: f64 = (0..n).map(gp).sum();
            let et: f64 = (0..n).map(|i| gp(i) * (x[i] as f64 - 1.5)).sum();
            assert!(
                (s - es).abs() < 1e-3 && (t - et).abs() < 1e-2,
                "n {n}: {s} {t} vs {es} {et}"
            );

            let k = [0.5, -0.25, 0.125];
            let mut out = vec![0.0; n];
            grad_input(&mut out, &g, &y, &x, k, lo, hi);
            let mut in_place = g.clone();
            grad_input_in_place(&mut in_place, &y, &x, k, lo, hi);
            for i in 0..n {
                let e = 0.5 * gp(i) - 0.25 * x[i] as f64 + 0.125;
                assert!(
                    (out[i] as f64 - e).abs() < 1e-5,
                    "n {n}: dx[{i}] {} vs {e}",
                    out[i]
                );
                assert_eq!(out[i], in_place[i]);
            }

            affine_clamp(&mut out, &x, 2.0, -1.0, lo, hi);
            let mut in_place = x.clone();
            affine_clamp_in_place(&mut in_place, 2.0, -1.0, lo, hi);
            for i in 0..n {
                let e = (2.0 * x[i] as f64 - 1.0).clamp(0.0, 6.0);
                assert!(
                    (out[i] as f64 - e).abs() < 1e-5,
                    "n {n}: y[{i}] {} vs {e}",
                    out[i]
                );
                assert_eq!(out[i], in_place[i]);
            }
        }
    }

    #[test]
    fn nan_stays_nan_through_the_clamp() {
        let mut out = [0.0; 3];
        affine_clamp(&mut out, &[f32::NAN, -1.0, 9.0], 1.0, 0.0, 0.0, 6.0);
        assert!(out[0].is_nan());
        assert_eq!(&out[1..], &[0.0, 6.0]);
    }
}
