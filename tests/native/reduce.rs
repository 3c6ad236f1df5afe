//! Sums along dimensions of tensors large enough for the vendored Flex's parallel reduction
//! paths (`vendor/burn-flex`, `ops/reduce.rs`: rows of the last dimension split across threads,
//! first- and middle-dimension sums split by batches or by column ranges), against sums
//! evaluated here in f64. These reductions are the batch-norm statistics and every broadcast
//! gradient of training (SPEC.md, the network's normalisation layers).

use burn::prelude::*;

use crate::common::{dev, noise, tensor4, to_vec};

/// A deterministic value in [-0.75, 1.25): offset so that sums do not cancel.
fn value(i: usize) -> f64 {
    noise(i, 3) + 0.25
}

/// `x` of `shape` (row-major) summed over `dim` in f64, as a flat row-major vector.
fn sum_f64(x: &[f64], shape: [usize; 4], dim: usize) -> Vec<f64> {
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let n = shape[dim];
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for d in 0..n {
            for i in 0..inner {
                out[o * inner + i] += x[(o * n + d) * inner + i];
            }
        }
    }
    out
}

fn check(actual: &[f32], expected: &[f64], terms: usize, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    // f32 sums of `terms` values of magnitude <= 1.25: rounding stays far below this bound.
    let tol = 1e-6 * terms as f64 + 1e-4;
    for (k, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a as f64 - e).abs() <= tol,
            "{what}: output {k} is {a}, expected {e} (tolerance {tol})"
        );
    }
}

#[test]
fn large_sums_along_each_dimension_match_f64() {
    // 8 x 24 x 40 x 36 = 276 480 elements: above the parallel threshold (64 Ki) for every dim,
    // with odd row lengths (36, 40 * 36 = 1440 columns) so that chunk edges fall mid-SIMD-lane.
    for shape in [[8, 24, 40, 36], [1, 3, 270, 123], [2, 5, 4, 9001]] {
        let len: usize = shape.iter().product();
        let x: Vec<f64> = (0..len).map(value).collect();
        let d = dev();
        let t = tensor4(x.iter().map(|&v| v as f32).collect(), shape, &d);
        for dim in 0..4 {
            let got = to_vec(t.clone().sum_dim(dim));
            check(
                &got,
                &sum_f64(&x, shape, dim),
                shape[dim],
                &format!("sum over dim {dim} of {shape:?}"),
            );
        }
        // Two dims in a row, as a broadcast gradient [1, C, 1, 1] is reduced.
        let got = to_vec(t.clone().sum_dim(0).sum_dim(2));
        let once = sum_f64(&x, shape, 0);
        let mut s1 = shape;
        s1[0] = 1;
        check(
            &got,
            &sum_f64(&once, s1, 2),
            shape[0] * shape[2],
            &format!("sum over dims 0 then 2 of {shape:?}"),
        );
    }
}

#[test]
fn broadcast_gradient_is_the_sum_over_broadcast_dims() {
    // d/dw sum(x * w) for w of shape [1, C, 1, 1] is the per-channel sum of x over N, H, W:
    // autodiff reduces the full-size gradient over the broadcast dimensions.
    let shape = [4, 6, 60, 50];
    let len: usize = shape.iter().product();
    let x: Vec<f64> = (0..len).map(value).collect();
    let d = dev().autodiff();
    let xt = tensor4(x.iter().map(|&v| v as f32).collect(), shape, &d);
    let w = Tensor::<4>::ones([1, 6, 1, 1], &d).require_grad();
    let grads = (xt * w.clone()).sum().backward();
    let got = to_vec(w.grad(&grads).expect("w has a gradient"));
    let per = shape[2] * shape[3];
    let expected: Vec<f64> = (0..shape[1])
        .map(|c| {
            (0..shape[0])
                .map(|b| {
                    let base = (b * shape[1] + c) * per;
                    x[base..base + per].iter().sum::<f64>()
                })
                .sum()
        })
        .collect();
    check(
        &got,
        &expected,
        shape[0] * per,
        "gradient of a [1, C, 1, 1] scale",
    );
}
