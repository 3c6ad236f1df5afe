//! Batch normalisation (`model::norm`, SPEC.md's per-group statistics) and its activation against
//! the textbook formulas evaluated here in f64: the output, the gradients of input, scale and
//! shift (the closed-form batch-norm backward, masked by the activation), and PyTorch's
//! running-statistics update. Both paths are checked: the fused op of `model::fused_norm` (Flex,
//! what `forward_act` takes on the CPU) and the composed Burn ops (other backends).

use burn::module::{Param, RunningState};
use burn::prelude::*;
use scl::model::fused_norm::Act;
use scl::model::norm::BatchNorm;

use crate::common::{dev, noise, tensor4, to_vec};

const B: usize = 4;
const C: usize = 3;
const H: usize = 5;
const W: usize = 7;
const HW: usize = H * W;
const GAMMA: [f64; C] = [0.5, 4.0, -2.5];
const BETA: [f64; C] = [0.1, 0.7, -0.3];
// The running statistics of the evaluation-mode checks.
const RUN_MEAN: [f64; C] = [2.5, -3.0, 0.4];
const RUN_VAR: [f64; C] = [0.3, 2.0, 0.02];

/// Channels with means far from zero (3, -2, 0.5) and unequal spreads; with GAMMA and BETA the
/// outputs cross both 0 and 6.
fn input() -> Vec<f64> {
    (0..B * C * HW)
        .map(|i| {
            let ch = (i / HW) % C;
            [3.0, -2.0, 0.5][ch] + [0.5, 2.0, 0.1][ch] * noise(i, 1)
        })
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

fn layer(device: &Device, training: bool) -> BatchNorm {
    let vec1 = |v: &[f64]| Tensor::<1>::from_data(TensorData::new(f32s(v), [C]), device);
    let mut bn = BatchNorm::new(C, device);
    bn.gamma = Param::from_tensor(vec1(&GAMMA));
    bn.beta = Param::from_tensor(vec1(&BETA));
    if !training {
        bn.running_mean = RunningState::new(vec1(&RUN_MEAN));
        bn.running_var = RunningState::new(vec1(&RUN_VAR));
        bn.training = Param::from_bool(false);
    }
    bn
}

/// What one run gives: y, dx, dgamma, dbeta, running mean and variance.
struct Got {
    y: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
}

/// The layer on x with upstream gradient g, on an autodiff Flex device; `fused` picks the path.
fn run(x: &[f64], g: &[f64], groups: usize, act: Act, training: bool, fused: bool) -> Got {
    let d = dev().autodiff();
    let bn = layer(&d, training);
    let xt = tensor4(f32s(x), [B, C, H, W], &d).require_grad();
    let y = if fused {
        bn.forward_act(xt.clone(), groups, act)
    } else {
        act.apply(bn.forward_composed(xt.clone(), groups))
    };
    let grads = (y.clone() * tensor4(f32s(g), [B, C, H, W], &d))
        .sum()
        .backward();
    Got {
        y: to_vec(y),
        dx: to_vec(xt.grad(&grads).unwrap()),
        dgamma: to_vec(bn.gamma.val().grad(&grads).unwrap()),
        dbeta: to_vec(bn.beta.val().grad(&grads).unwrap()),
        rm: to_vec(bn.running_mean.value_sync()),
        rv: to_vec(bn.running_var.value_sync()),
    }
}

/// The formulas: per group and channel, mean and biased variance (or the running statistics),
/// z = gamma xhat + beta, y = clamp(z), g' = g where lo < z < hi, and PyTorch's backward.
fn check(got: &Got, x: &[f64], g: &[f64], groups: usize, act: Act, training: bool, what: &str) {
    let (lo, hi) = act.bounds();
    let (lo, hi) = (lo as f64, hi as f64);
    let groups = if training { groups } else { 1 };
    let per = B / groups;
    let n = (per * HW) as f64;
    let idx = |bi: usize, ch: usize, p: usize| (bi * C + ch) * HW + p;
    let (mut eg, mut eb) = ([0.0; C], [0.0; C]);
    let (mut rm, mut rv) = ([0.0f64; C], [1.0f64; C]);
    let mut passed = [0usize; 2];
    for grp in 0..groups {
        for ch in 0..C {
            let items: Vec<usize> = (grp * per..(grp + 1) * per)
                .flat_map(|bi| (0..HW).map(move |p| idx(bi, ch, p)))
                .collect();
            let (mean, var) = if training {
                let mean = items.iter().map(|&i| x[i]).sum::<f64>() / n;
                let var = items.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / n;
                (mean, var)
            } else {
                (RUN_MEAN[ch], RUN_VAR[ch])
            };
            let rstd = 1.0 / (var + 1e-5).sqrt();
            let xhat = |i: usize| (x[i] - mean) * rstd;
            let z = |i: usize| GAMMA[ch] * xhat(i) + BETA[ch];
            let gp = |i: usize| if z(i) > lo && z(i) < hi { g[i] } else { 0.0 };
            let sg: f64 = items.iter().map(|&i| gp(i)).sum();
            let sgx: f64 = items.iter().map(|&i| gp(i) * xhat(i)).sum();
            for &i in &items {
                let ey = z(i).clamp(lo, hi);
                assert!(
                    (got.y[i] as f64 - ey).abs() < 1e-4 * (1.0 + ey.abs()),
                    "{what}: y[{i}] {} vs {ey}",
                    got.y[i]
                );
                let edx = if training {
                    GAMMA[ch] * rstd / n * (n * gp(i) - sg - xhat(i) * sgx)
                } else {
                    GAMMA[ch] * rstd * gp(i)
                };
                let tol = 1e-4 * (1.0 + edx.abs());
                assert!(
                    (got.dx[i] as f64 - edx).abs() < tol,
                    "{what}: dx[{i}] {} vs {edx}",
                    got.dx[i]
                );
                passed[(gp(i) != 0.0) as usize] += 1;
            }
            eg[ch] += sgx;
            eb[ch] += sg;
            rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
            rv[ch] = 0.9 * rv[ch] + 0.1 * var * n / (n - 1.0);
        }
    }
    for ch in 0..C {
        close(
            got.dgamma[ch],
            eg[ch],
            1e-3 * (1.0 + eg[ch].abs()),
            what,
            "dgamma",
        );
        close(
            got.dbeta[ch],
            eb[ch],
            1e-3 * (1.0 + eb[ch].abs()),
            what,
            "dbeta",
        );
        if training {
            close(got.rm[ch], rm[ch], 1e-5, what, "running mean");
            close(got.rv[ch], rv[ch], 1e-4, what, "running var");
        } else {
            close(
                got.rm[ch],
                RUN_MEAN[ch],
                1e-7,
                what,
                "running mean (unchanged)",
            );
            close(
                got.rv[ch],
                RUN_VAR[ch],
                1e-7,
                what,
                "running var (unchanged)",
            );
        }
    }
    if act != Act::Identity {
        // The activation must cut some values and pass others, or it is not tested.
        assert!(
            passed[0] > 0 && passed[1] > 0,
            "{what}: masked/passed {passed:?}"
        );
    }
}

#[test]
fn training_forward_backward_and_running_stats_match_the_formulas() {
    let x = input();
    let g: Vec<f64> = (0..x.len()).map(|i| noise(i, 2)).collect();
    for act in [Act::Identity, Act::Relu, Act::Relu6] {
        for fused in [true, false] {
            let what = format!("training, {act:?}, fused {fused}");
            check(
                &run(&x, &g, 2, act, true, fused),
                &x,
                &g,
                2,
                act,
                true,
                &what,
            );
        }
    }
    // Groups that do not divide the batch fall back to one group.
    check(
        &run(&x, &g, 3, Act::Relu6, true, true),
        &x,
        &g,
        1,
        Act::Relu6,
        true,
        "3 groups",
    );
}

#[test]
fn evaluation_mode_uses_the_running_statistics_as_constants() {
    let x = input();
    let g: Vec<f64> = (0..x.len()).map(|i| noise(i, 3)).collect();
    for act in [Act::Identity, Act::Relu, Act::Relu6] {
        for fused in [true, false] {
            let what = format!("evaluation, {act:?}, fused {fused}");
            check(
                &run(&x, &g, 2, act, false, fused),
                &x,
                &g,
                2,
                act,
                false,
                &what,
            );
        }
    }
}

#[test]
fn inference_without_autodiff_matches_the_formula() {
    let x = input();
    let bn = layer(&dev(), true);
    let y = to_vec(bn.forward_act(tensor4(f32s(&x), [B, C, H, W], &dev()), 2, Act::Relu6));
    // A fresh layer: running mean 0, variance 1.
    for (i, &v) in x.iter().enumerate() {
        let ch = (i / HW) % C;
        let ey = (GAMMA[ch] * v / (1.0f64 + 1e-5).sqrt() + BETA[ch]).clamp(0.0, 6.0);
        assert!(
            (y[i] as f64 - ey).abs() < 1e-5 * (1.0 + ey.abs()),
            "y[{i}] {} vs {ey}",
            y[i]
        );
    }
}

/// Asserts `|got - want| < tol` for one channel's value.
fn close(got: f32, want: f64, tol: f64, what: &str, name: &str) {
    assert!(
        (got as f64 - want).abs() < tol,
        "{what}: {name}: {got} vs {want}"
    );
}

#[test]
fn a_nan_input_gives_nan_outputs_and_statistics_not_zeros() {
    // PyTorch propagates a NaN through the batch statistics into the whole (group, channel):
    // a divergence must show, not be clamped away by the ReLU.
    let mut x = input();
    x[5] = f64::NAN; // image 0, channel 0
    let d = dev().autodiff();
    let bn = layer(&d, true);
    let y = to_vec(bn.forward_act(tensor4(f32s(&x), [B, C, H, W], &d), 2, Act::Relu));
    for bi in 0..B {
        for p in 0..HW {
            let v = y[bi * C * HW + p];
            // Images 0 and 1 form group 0; group 1 is untouched.
            assert_eq!(v.is_nan(), bi < 2, "image {bi}, channel 0, pixel {p}: {v}");
        }
    }
    assert!(to_vec(bn.running_var.value_sync())[0].is_nan());
    assert!(!to_vec(bn.running_var.value_sync())[1].is_nan());
}
