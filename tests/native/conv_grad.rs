//! Convolutions on the Flex backend (the vendored burn-flex patch computes the forward pass and
//! both gradients with its own kernels) against a direct evaluation of the definitions in f64:
//! `Y[b, o, y, x] = bias[o] + sum_{i, u, v} W[o, i, u, v] X[b, g*Ci + i, y*s + u*d - p, x*s + v*d - p]`,
//! `dW` and `dX` the matching sums of `G = dL/dY`, for the shapes the networks use and for
//! awkward ones (batch 1, strides, dilation, groups, depthwise, pointwise, several im2col
//! tiles, asymmetric padding).

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::common::*;

struct Case {
    b: usize,
    cin: usize,
    cout: usize,
    hw: (usize, usize),
    k: (usize, usize),
    stride: usize,
    pad: [(usize, usize); 2],
    dilation: usize,
    groups: usize,
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(7);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 20_001) as f32 / 10_000.0 - 1.0
        })
        .collect()
}

fn check(c: &Case) {
    let (h, w) = c.hw;
    let (kh, kw) = c.k;
    let cin_g = c.cin / c.groups;
    let cout_g = c.cout / c.groups;
    let oh = (h + c.pad[0].0 + c.pad[0].1 - c.dilation * (kh - 1) - 1) / c.stride + 1;
    let ow = (w + c.pad[1].0 + c.pad[1].1 - c.dilation * (kw - 1) - 1) / c.stride + 1;
    let xs = values(c.b * c.cin * h * w, 1);
    let ws = values(c.cout * cin_g * kh * kw, 2);
    let gs = values(c.b * c.cout * oh * ow, 3);
    let bs = values(c.cout, 4);
    let ad = dev().autodiff();
    let x =
        Tensor::<4>::from_data(TensorData::new(xs.clone(), [c.b, c.cin, h, w]), &ad).require_grad();
    let wt = Tensor::<4>::from_data(TensorData::new(ws.clone(), [c.cout, cin_g, kh, kw]), &ad)
        .require_grad();
    let g = Tensor::<4>::from_data(TensorData::new(gs.clone(), [c.b, c.cout, oh, ow]), &ad);
    let options = ConvOptions::new_with_padding([c.stride; 2], c.pad, [c.dilation; 2], c.groups);
    let bias = Tensor::<1>::from_data(TensorData::new(bs.clone(), [c.cout]), &ad);
    let y = conv2d(x.clone(), wt.clone(), Some(bias), options);
    assert_eq!(y.dims(), [c.b, c.cout, oh, ow]);
    let yv = to_vec(y.clone());
    let grads = (y * g).sum().backward();
    let dx = to_vec(x.grad(&grads).unwrap());
    let dw = to_vec(wt.grad(&grads).unwrap());

    let mut ex = vec![0f64; xs.len()];
    let mut ew = vec![0f64; ws.len()];
    let mut ey: Vec<f64> = (0..yv.len())
        .map(|k| bs[(k / (oh * ow)) % c.cout] as f64)
        .collect();
    for b in 0..c.b {
        for o in 0..c.cout {
            let grp = o / cout_g;
            for y in 0..oh {
                for xo in 0..ow {
                    let yi = ((b * c.cout + o) * oh + y) * ow + xo;
                    let gv = gs[yi] as f64;
                    for i in 0..cin_g {
                        let ci = grp * cin_g + i;
                        for u in 0..kh {
                            for v in 0..kw {
                                let iy =
                                    (y * c.stride + u * c.dilation) as isize - c.pad[0].0 as isize;
                                let ix =
                                    (xo * c.stride + v * c.dilation) as isize - c.pad[1].0 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((b * c.cin + ci) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * cin_g + i) * kh + u) * kw + v;
                                ew[wi] += gv * xs[xi] as f64;
                                ex[xi] += gv * ws[wi] as f64;
                                ey[yi] += ws[wi] as f64 * xs[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let close = |got: &[f32], want: &[f64], what: &str| {
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err <= 1e-5 * scale,
            "{what}: max error {err} (values up to {scale}) for b {} cin {} cout {} {}x{} k {:?} s {} p {:?} d {} g {}",
            c.b,
            c.cin,
            c.cout,
            h,
            w,
            c.k,
            c.stride,
            c.pad,
            c.dilation,
            c.groups
        );
    };
    close(&yv, &ey, "forward");
    close(&dw, &ew, "weight gradient");
    close(&dx, &ex, "input gradient");
}

fn case(b: usize, cin: usize, cout: usize, hw: usize, k: usize, stride: usize, pad: usize) -> Case {
    Case {
        b,
        cin,
        cout,
        hw: (hw, hw),
        k: (k, k),
        stride,
        pad: [(pad, pad); 2],
        dilation: 1,
        groups: 1,
    }
}

#[test]
fn network_shapes() {
    for c in [
        case(8, 16, 16, 16, 3, 1, 1), // encoder block
        case(4, 16, 8, 32, 3, 1, 1),  // a batch of 4 (the old slow path)
        case(2, 8, 3, 24, 1, 1, 0),   // inpainting head
        case(8, 3, 16, 32, 7, 2, 3),  // stem
        case(4, 16, 32, 16, 1, 2, 0), // projection shortcut
        case(1, 32, 16, 8, 3, 2, 1),  // batch 1, stride 2
        // Batch 1 pointwise on a 56x56 map: the patch splits the positions into one gemm
        // per pool thread (ragged blocks) and zeroes and biases the output in parallel.
        case(1, 32, 24, 56, 1, 1, 0),
    ] {
        check(&c);
    }
}

/// The small-map splits of burn-flex's seventh patch, on a pool of exactly two threads (the
/// splits depend on the thread count, so the machine's core count must not decide whether
/// they run): a batch-1 pointwise gemm's output channels in blocks of 8 (44 = 24 + 20), a
/// 3x3's 49 positions in two tiles (25 + 24) where `tile_len` alone gave one, a 14x14 map in
/// four tiles of 49 where it gave 64, 64, 64, 4, and three images of 7x7 in an even task
/// count (two tiles each). The same shapes on one thread take the unpatched tiling.
#[test]
fn small_maps_split_over_two_threads() {
    let shapes = [
        case(1, 96, 44, 7, 1, 1, 0),
        case(1, 64, 24, 7, 3, 1, 1),
        case(1, 192, 16, 14, 3, 1, 1),
        case(3, 64, 8, 7, 3, 1, 1),
    ];
    for threads in [2, 1] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        pool.install(|| shapes.iter().for_each(check));
    }
}

#[test]
fn awkward_shapes() {
    // One input channel on 100x100: the im2col tile (7281 positions) ends mid-row.
    check(&case(2, 1, 4, 100, 3, 1, 1));
    // Non-square images and kernels, dilation, asymmetric padding.
    check(&Case {
        b: 3,
        cin: 5,
        cout: 6,
        hw: (11, 7),
        k: (3, 2),
        stride: 2,
        pad: [(2, 1), (0, 1)],
        dilation: 2,
        groups: 1,
    });
    // Grouped (not depthwise) and depthwise, stride 1 and 2.
    let grouped = |cin, cout, groups, stride| Case {
        b: 2,
        cin,
        cout,
        hw: (9, 10),
        k: (3, 3),
        stride,
        pad: [(1, 1), (1, 1)],
        dilation: 1,
        groups,
    };
    check(&grouped(8, 12, 4, 1));
    check(&grouped(12, 12, 12, 1));
    check(&grouped(12, 12, 12, 2));
    // Depthwise with one image and an output large enough (16 x 64 x 64) to be zeroed and
    // biased on the pool's threads.
    check(&Case {
        b: 1,
        hw: (64, 64),
        ..grouped(16, 16, 16, 1)
    });
    // A channel multiplier (not depthwise in the patch's sense).
    check(&grouped(4, 8, 4, 1));
}
