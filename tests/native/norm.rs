//! Batch normalisation in training (`model::norm`, SPEC.md's per-group statistics) against the
//! textbook formulas evaluated here in f64: the output, the gradients of input, scale and shift
//! (the closed-form batch-norm backward), and PyTorch's running-statistics update.

use burn::module::Param;
use burn::prelude::*;
use scl::model::norm::BatchNorm;

use crate::common::{dev, noise, tensor4, to_vec};

#[test]
fn training_forward_backward_and_running_stats_match_the_formulas() {
    let (b, c, h, w, groups) = (4, 3, 5, 7, 2);
    let hw = h * w;
    let per = b / groups;
    let n = (per * hw) as f64;
    // Channels with means far from zero (3, -2, 0.5) and unequal spreads.
    let x: Vec<f64> = (0..b * c * hw)
        .map(|i| {
            let ch = (i / hw) % c;
            [3.0, -2.0, 0.5][ch] + [0.5, 2.0, 0.1][ch] * noise(i, 1)
        })
        .collect();
    let g: Vec<f64> = (0..x.len()).map(|i| noise(i, 2)).collect();
    let gamma = [0.5, 1.5, -2.0];
    let beta = [0.1, -0.3, 0.7];

    let d = dev().autodiff();
    let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
    let mut bn = BatchNorm::new(c, &d);
    bn.gamma = Param::from_tensor(Tensor::from_data(TensorData::new(f32s(&gamma), [c]), &d));
    bn.beta = Param::from_tensor(Tensor::from_data(TensorData::new(f32s(&beta), [c]), &d));
    let xt = tensor4(f32s(&x), [b, c, h, w], &d).require_grad();
    let y = bn.forward(xt.clone(), groups);
    let grads = (y.clone() * tensor4(f32s(&g), [b, c, h, w], &d))
        .sum()
        .backward();
    let y = to_vec(y);
    let dx = to_vec(xt.grad(&grads).unwrap());
    let dgamma = to_vec(bn.gamma.val().grad(&grads).unwrap());
    let dbeta = to_vec(bn.beta.val().grad(&grads).unwrap());

    let idx = |bi: usize, ch: usize, p: usize| (bi * c + ch) * hw + p;
    let (mut eg, mut eb) = ([0.0; 3], [0.0; 3]);
    let (mut rm, mut rv) = ([0.0f64; 3], [1.0f64; 3]);
    for grp in 0..groups {
        for ch in 0..c {
            let items: Vec<usize> = (grp * per..(grp + 1) * per)
                .flat_map(|bi| (0..hw).map(move |p| idx(bi, ch, p)))
                .collect();
            let mean = items.iter().map(|&i| x[i]).sum::<f64>() / n;
            let var = items.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / n;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            let xhat = |i: usize| (x[i] - mean) * rstd;
            let sg: f64 = items.iter().map(|&i| g[i]).sum();
            let sgx: f64 = items.iter().map(|&i| g[i] * xhat(i)).sum();
            for &i in &items {
                let ey = gamma[ch] * xhat(i) + beta[ch];
                assert!((y[i] as f64 - ey).abs() < 1e-4, "y[{i}] {} vs {ey}", y[i]);
                let edx = gamma[ch] * rstd / n * (n * g[i] - sg - xhat(i) * sgx);
                let tol = 1e-4 * (1.0 + edx.abs());
                assert!(
                    (dx[i] as f64 - edx).abs() < tol,
                    "dx[{i}] {} vs {edx}",
                    dx[i]
                );
            }
            eg[ch] += sgx;
            eb[ch] += sg;
            rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
            rv[ch] = 0.9 * rv[ch] + 0.1 * var * n / (n - 1.0);
        }
    }
    for ch in 0..c {
        close(dgamma[ch], eg[ch], 1e-3, "dgamma");
        close(dbeta[ch], eb[ch], 1e-3, "dbeta");
    }
    let got_rm = to_vec(bn.running_mean.value_sync());
    let got_rv = to_vec(bn.running_var.value_sync());
    for ch in 0..c {
        close(got_rm[ch], rm[ch], 1e-5, "running mean");
        close(got_rv[ch], rv[ch], 1e-4, "running var");
    }
}

/// Asserts `|got - want| < tol` for one channel's value.
fn close(got: f32, want: f64, tol: f64, what: &str) {
    assert!((got as f64 - want).abs() < tol, "{what}: {got} vs {want}");
}
