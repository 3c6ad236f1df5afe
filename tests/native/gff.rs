//! GFF against hand-built weights (C = 1, 2x2 maps, 3x3 kernels with every tap equal, so each
//! convolution output is `sum_over_channels(weight * sum_of_the_2x2_map) + bias` at every pixel).

use burn::module::Param;
use burn::prelude::*;
use scl::model::fusion::Gff;

use crate::common::*;

/// Sets a 2 -> 1, 3x3 convolution to weights `a` (first input channel) and `b` (second) on every
/// tap, and bias `c`.
fn set(conv: &mut burn::nn::conv::Conv2d, a: f32, b: f32, c: f32, device: &Device) {
    let mut w = vec![a; 9];
    w.extend(vec![b; 9]);
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [1, 2, 3, 3]), device));
    conv.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(vec![c], [1]),
        device,
    )));
}

fn setup(select_bias: f32) -> Vec<f32> {
    let device = dev();
    let mut gff = Gff::new(1, &device);
    // reset: r = sigmoid(0.1 S - 0.2 P + 0.3); fuse: o = relu(0.05 S + 0.4 sum(r p) - 0.1);
    // select: z = sigmoid(select_bias).
    set(&mut gff.reset, 0.1, -0.2, 0.3, &device);
    set(&mut gff.fuse, 0.05, 0.4, -0.1, &device);
    set(&mut gff.select, 0.0, 0.0, select_bias, &device);
    let s = tensor4(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &device);
    let p = tensor4(vec![0.5, -1.0, 2.0, 0.0], [1, 1, 2, 2], &device);
    let (out, z) = gff.forward(s, p);
    let z = to_vec(z);
    assert!(z.iter().all(|v| (v - z[0]).abs() < 1e-7));
    to_vec(out)
}

#[test]
fn select_gate_zero_gives_seg_features() {
    // sigmoid(-200) is exactly 0 in f32.
    assert_eq!(setup(-200.0), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn select_gate_one_gives_fused_value_computed_by_hand() {
    // S = 10, P = 1.5: r = sigmoid(1 - 0.3 + 0.3) = sigmoid(1) = 0.7310585786;
    // o = relu(0.5 + 0.4 * 0.7310585786 * 1.5 - 0.1) = 0.8386351472 at every pixel.
    let out = setup(200.0);
    for v in out {
        assert_close(v as f64, 0.838_635_147_2, 1e-6, "GFF output with z = 1");
    }
}

#[test]
fn select_gate_half_mixes_both() {
    // z = 0.5: out = 0.5 s + 0.5 o.
    let out = setup(0.0);
    for (v, s) in out.iter().zip([1.0, 2.0, 3.0, 4.0]) {
        assert_close(
            *v as f64,
            0.5 * s + 0.5 * 0.838_635_147_2,
            1e-6,
            "GFF output with z = 0.5",
        );
    }
}

/// The two concatenation fusions against hand-set weights (C = 1, one 1x1 convolution 2 -> 1):
/// `a s + b p + c`, and `s` plus that for the residual one.
#[test]
fn concatenation_fusions_by_hand() {
    use scl::Fusion;
    use scl::model::fusion::FusionBlock;
    let device = dev();
    let s = vec![1.0, 2.0, 3.0, 4.0];
    let p = vec![0.5, -1.0, 2.0, 0.0];
    let fuse = |kind: Fusion, weights: Option<(f32, f32, f32)>| {
        let mut block = FusionBlock::new(kind, 1, &device);
        if let (Some((a, b, c)), Some(conv)) = (weights, block.concat.as_mut()) {
            conv.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![a, b], [1, 2, 1, 1]),
                &device,
            ));
            conv.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![c], [1]),
                &device,
            )));
        }
        assert_eq!(block.kind(), kind);
        let (out, gate) = block.forward(
            tensor4(s.clone(), [1, 1, 2, 2], &device),
            tensor4(p.clone(), [1, 1, 2, 2], &device),
        );
        assert!(gate.is_none());
        to_vec(out)
    };
    // Freshly built, the residual block is the identity on s.
    assert_eq!(fuse(Fusion::ConcatResidual, None), s);
    let (a, b, c) = (0.5, -2.0, 0.25);
    let plain: Vec<f32> = s.iter().zip(&p).map(|(s, p)| a * s + b * p + c).collect();
    let residual: Vec<f32> = s.iter().zip(&plain).map(|(s, f)| s + f).collect();
    let close = |got: Vec<f32>, want: &[f32], what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert_close(*g as f64, *w as f64, 1e-6, what);
        }
    };
    close(fuse(Fusion::Concat, Some((a, b, c))), &plain, "concat");
    close(
        fuse(Fusion::ConcatResidual, Some((a, b, c))),
        &residual,
        "concat-res",
    );
    assert_eq!(fuse(Fusion::Add, None), vec![1.5, 1.0, 5.0, 4.0]);
}
