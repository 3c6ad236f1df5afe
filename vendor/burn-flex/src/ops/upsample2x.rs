//! [scl patch] Bilinear x2 upsampling with half-pixel centres (`align_corners = false`), f32:
//! a separable fast path for the forward pass and its gradient.
//!
//! burn-flex 0.22.1's bilinear interpolation computes each output pixel's two source rows,
//! columns and weights in f64 and gathers four bounds-checked values, one pixel at a time; its
//! backward pass scatters the same way. For an exact factor of 2 the weights are fixed: along
//! one axis `out[2i] = 0.75 in[i] + 0.25 in[i - 1]` and `out[2i + 1] = 0.75 in[i] +
//! 0.25 in[i + 1]` (edges clamped), so both passes are two short separable loops per plane
//! (rows, then columns), which vectorise. Planes run in parallel.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Whether the fast path applies: 4D, f32, bilinear without corner alignment, output exactly
/// twice the input.
pub fn applies(x: &FlexTensor, output_size: [usize; 2], align_corners: bool) -> bool {
    let s = x.layout().shape();
    !align_corners
        && x.dtype() == DType::F32
        && s.num_dims() == 4
        && output_size == [2 * s[2], 2 * s[3]]
}

/// One axis, forward: `out` (2n) from `inp` (n).
#[inline]
fn up_line(inp: &[f32], out: &mut [f32]) {
    let n = inp.len();
    for i in 0..n {
        let prev = inp[i.saturating_sub(1)];
        let next = inp[(i + 1).min(n - 1)];
        out[2 * i] = 0.75 * inp[i] + 0.25 * prev;
        out[2 * i + 1] = 0.75 * inp[i] + 0.25 * next;
    }
}

/// One axis, backward: `gin` (n) from `gout` (2n).
#[inline]
fn down_line(gout: &[f32], gin: &mut [f32]) {
    let n = gin.len();
    gin.fill(0.0);
    for i in 0..n {
        let (a, b) = (gout[2 * i], gout[2 * i + 1]);
        gin[i] += 0.75 * (a + b);
        gin[i.saturating_sub(1)] += 0.25 * a;
        gin[(i + 1).min(n - 1)] += 0.25 * b;
    }
}

fn for_planes<F>(out: &mut [f32], plane_out: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(plane_out)
            .enumerate()
            .for_each(|(i, o)| f(i, o));
    }
    #[cfg(not(feature = "rayon"))]
    for (i, o) in out.chunks_mut(plane_out).enumerate() {
        f(i, o);
    }
}

/// Forward: `[b, c, h, w]` to `[b, c, 2h, 2w]`.
pub fn upsample2x_f32(x: FlexTensor) -> FlexTensor {
    let x = x.to_contiguous();
    let s = x.layout().shape().clone();
    let (h, w) = (s[2], s[3]);
    let xd: &[f32] = x.storage();
    let mut out = super::par::filled(s[0] * s[1] * 4 * h * w, 0.0f32);
    for_planes(&mut out, 4 * h * w, |i, o| {
        let inp = &xd[i * h * w..(i + 1) * h * w];
        // Rows first (each input row widened to 2w), then columns: out rows 2r and 2r + 1
        // mix widened rows r, r - 1 and r + 1.
        let mut wide: Vec<f32> = vec![0.0; h * 2 * w];
        for r in 0..h {
            up_line(
                &inp[r * w..(r + 1) * w],
                &mut wide[r * 2 * w..(r + 1) * 2 * w],
            );
        }
        let w2 = 2 * w;
        for r in 0..h {
            let cur = &wide[r * w2..(r + 1) * w2];
            let prev = &wide[r.saturating_sub(1) * w2..][..w2];
            let next = &wide[(r + 1).min(h - 1) * w2..][..w2];
            let (top, bottom) = o[2 * r * w2..(2 * r + 2) * w2].split_at_mut(w2);
            for j in 0..w2 {
                top[j] = 0.75 * cur[j] + 0.25 * prev[j];
                bottom[j] = 0.75 * cur[j] + 0.25 * next[j];
            }
        }
    });
    let shape = Shape::from(vec![s[0], s[1], 2 * h, 2 * w]);
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Backward: the gradient `[b, c, 2h, 2w]` to `[b, c, h, w]` (the input's shape).
pub fn upsample2x_backward_f32(x_shape: &Shape, grad: FlexTensor) -> FlexTensor {
    let grad = grad.to_contiguous();
    let (h, w) = (x_shape[2], x_shape[3]);
    let gd: &[f32] = grad.storage();
    let mut gin = vec![0.0f32; x_shape[0] * x_shape[1] * h * w];
    let w2 = 2 * w;
    for_planes(&mut gin, h * w, |i, o| {
        let g = &gd[i * 4 * h * w..(i + 1) * 4 * h * w];
        // Columns first (the transpose of the forward's last step): rows 2r and 2r + 1 of the
        // gradient feed widened rows r (0.75 each), r - 1 (0.25 of 2r) and r + 1 (0.25 of
        // 2r + 1); then each widened row narrows back to w.
        let mut wide = vec![0.0f32; h * w2];
        for r in 0..h {
            let top = &g[2 * r * w2..(2 * r + 1) * w2];
            let bottom = &g[(2 * r + 1) * w2..(2 * r + 2) * w2];
            for j in 0..w2 {
                wide[r * w2 + j] += 0.75 * (top[j] + bottom[j]);
            }
            let p = r.saturating_sub(1);
            for j in 0..w2 {
                wide[p * w2 + j] += 0.25 * top[j];
            }
            let n = (r + 1).min(h - 1);
            for j in 0..w2 {
                wide[n * w2 + j] += 0.25 * bottom[j];
            }
        }
        for r in 0..h {
            down_line(&wide[r * w2..(r + 1) * w2], &mut o[r * w..(r + 1) * w]);
        }
    });
    FlexTensor::new(
        Bytes::from_elems(gin),
        Layout::contiguous(x_shape.clone()),
        DType::F32,
    )
}
