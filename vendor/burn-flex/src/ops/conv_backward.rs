//! [scl patch] Backward passes of 2D convolutions: the weight gradient as one im2col + gemm
//! reduction, and the input gradient of depthwise convolutions as a direct scatter.
//!
//! Without this file Flex inherits `burn-backend`'s defaults:
//! - the weight gradient is a *forward* convolution of the input (batch and channels swapped)
//!   with the output gradient as a `Ho x Wo` kernel. Its gemm has `N = kh * kw` (9 for a 3x3
//!   conv), far too thin for a good gemm, and with a batch of 4 or fewer it falls on the
//!   small-channel direct path, which walks a `Ho * Wo`-tap kernel with scalar code;
//! - grouped convolutions (depthwise ones included) loop over the groups, one small
//!   convolution (or transposed convolution for the input gradient) per group.
//!
//! Here the weight gradient of group `g` is
//! `dW_g[C_out_g, C_in_g * kh * kw] = sum_b grad_b[C_out_g, P] x col_b[P, C_in_g * kh * kw]`
//! with `col_b` the im2col of image `b` (Caffe layout: one row per (c, kh, kw), one column per
//! output position, so each row is a shifted copy of an input row). The sum over the batch and
//! over tiles of output positions is split into one contiguous chunk of work per thread, each
//! accumulating into its own buffer with gemm, and the chunks are added at the end (a fixed
//! order for a given thread count). Depthwise convolutions (one input and one output channel
//! per group) get direct loops for both gradients instead.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Output positions per im2col tile: a tile of `rows x TILE` floats stays within ~256 KB.
fn tile_len(rows: usize, positions: usize) -> usize {
    let t = (64 * 1024 / rows.max(1)).max(64);
    t.min(positions).max(1)
}

/// Geometry of one 2D convolution, NCHW.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Geometry {
    fn new(x: &Shape, grad: &Shape, w_shape: &Shape, options: &ConvOptions<2>) -> Self {
        Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: w_shape[0],
            kh: w_shape[2],
            kw: w_shape[3],
            oh: grad[2],
            ow: grad[3],
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
            groups: options.groups,
        }
    }

    fn is_depthwise(&self) -> bool {
        self.groups == self.c_in && self.c_out == self.c_in
    }

    /// The output positions `[start, end)` along one axis whose input index
    /// `o * stride + k * dilation - pad` lies in `[0, size)`.
    fn valid(
        k: usize,
        stride: usize,
        dilation: usize,
        pad: usize,
        size: usize,
        out: usize,
    ) -> (usize, usize) {
        let off = k * dilation;
        let start = if off >= pad {
            0
        } else {
            (pad - off).div_ceil(stride)
        };
        let end = if off >= size + pad {
            0
        } else {
            (size + pad - off).div_ceil(stride)
        };
        let end = end.min(out);
        (start.min(end), end)
    }

    fn valid_h(&self, k: usize) -> (usize, usize) {
        Self::valid(
            k,
            self.stride[0],
            self.dilation[0],
            self.pad[0],
            self.h,
            self.oh,
        )
    }

    fn valid_w(&self, k: usize) -> (usize, usize) {
        Self::valid(
            k,
            self.stride[1],
            self.dilation[1],
            self.pad[1],
            self.w,
            self.ow,
        )
    }
}

/// Fills `col` (`[c_in_g * kh * kw, len]`, row-major) with the im2col of output positions
/// `p0 .. p0 + len` of one image's channels `c0 .. c0 + c_in_g` (`x_img` is `[c_in, h, w]`).
fn im2col_tile(
    col: &mut [f32],
    x_img: &[f32],
    g: &Geometry,
    c0: usize,
    c_in_g: usize,
    p0: usize,
    len: usize,
) {
    let plane = g.h * g.w;
    let mut row = 0;
    for c in c0..c0 + c_in_g {
        let src = &x_img[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            let (oh_s, oh_e) = g.valid_h(ki);
            for kj in 0..g.kw {
                let (ow_s, ow_e) = g.valid_w(kj);
                let dst = &mut col[row * len..(row + 1) * len];
                row += 1;
                // Walk the tile one output row at a time.
                let mut p = p0;
                while p < p0 + len {
                    let r = p / g.ow;
                    let col0 = p % g.ow;
                    let run = (g.ow - col0).min(p0 + len - p);
                    let d = &mut dst[p - p0..p - p0 + run];
                    if r < oh_s || r >= oh_e {
                        d.fill(0.0);
                    } else {
                        let ih = r * g.stride[0] + ki * g.dilation[0] - g.pad[0];
                        let src_row = &src[ih * g.w..(ih + 1) * g.w];
                        let lo = ow_s.clamp(col0, col0 + run);
                        let hi = ow_e.clamp(lo, col0 + run);
                        d[..lo - col0].fill(0.0);
                        d[hi - col0..].fill(0.0);
                        let shift = kj * g.dilation[1];
                        if hi > lo && g.stride[1] == 1 {
                            let s0 = lo + shift - g.pad[1];
                            d[lo - col0..hi - col0].copy_from_slice(&src_row[s0..s0 + (hi - lo)]);
                        } else {
                            for o in lo..hi {
                                d[o - col0] = src_row[o * g.stride[1] + shift - g.pad[1]];
                            }
                        }
                    }
                    p += run;
                }
            }
        }
    }
}

/// `acc[m, n] += lhs[m, k] * rhs[k, n]` with explicit strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    acc: &mut [f32],
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    // SAFETY: the callers pass pointers to buffers holding the addressed elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            acc.as_mut_ptr(),
            1,
            n as isize,
            true,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs `work(task_range, accumulator)` over `tasks` split into one contiguous chunk per
/// thread, each with its own zeroed accumulator of `len` floats, and sums the accumulators.
fn reduce_chunks<F>(tasks: usize, len: usize, work: F) -> Vec<f32>
where
    F: Fn(core::ops::Range<usize>, &mut [f32]) + Sync + Send,
{
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads().min(tasks).max(1);
        if threads > 1 {
            let per = tasks.div_ceil(threads);
            let parts: Vec<Vec<f32>> = (0..threads)
                .into_par_iter()
                .map(|t| {
                    let mut acc = vec![0.0f32; len];
                    work(t * per..((t + 1) * per).min(tasks), &mut acc);
                    acc
                })
                .collect();
            let mut it = parts.into_iter();
            let mut total = it.next().expect("at least one chunk");
            for part in it {
                for (a, b) in total.iter_mut().zip(part) {
                    *a += b;
                }
            }
            return total;
        }
    }
    let mut acc = vec![0.0f32; len];
    work(0..tasks, &mut acc);
    acc
}

/// Weight gradient of a 2D convolution (any groups), f32, `[c_out, c_in / groups, kh, kw]`.
pub fn conv2d_weight_grad_f32(
    x: FlexTensor,
    grad: FlexTensor,
    w_shape: &Shape,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let grad = grad.to_contiguous();
    let g = Geometry::new(x.layout().shape(), grad.layout().shape(), w_shape, options);
    let xd: &[f32] = x.storage();
    let gd: &[f32] = grad.storage();
    let out = if g.is_depthwise() && w_shape[1] == 1 {
        depthwise_weight_grad(xd, gd, &g)
    } else {
        im2col_weight_grad(xd, gd, &g)
    };
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(w_shape.clone()),
        DType::F32,
    )
}

fn im2col_weight_grad(xd: &[f32], gd: &[f32], g: &Geometry) -> Vec<f32> {
    let c_in_g = g.c_in / g.groups;
    let c_out_g = g.c_out / g.groups;
    let rows = c_in_g * g.kh * g.kw;
    let positions = g.oh * g.ow;
    let tile = tile_len(rows, positions);
    let tiles = positions.div_ceil(tile);
    let per_group = c_out_g * rows;
    // Tasks: (image, tile); every task adds into all groups' blocks.
    reduce_chunks(g.batch * tiles, g.groups * per_group, |range, acc| {
        let mut col = vec![0.0f32; rows * tile];
        for task in range {
            let (b, t) = (task / tiles, task % tiles);
            let p0 = t * tile;
            let len = tile.min(positions - p0);
            let x_img = &xd[b * g.c_in * g.h * g.w..(b + 1) * g.c_in * g.h * g.w];
            for gi in 0..g.groups {
                im2col_tile(&mut col, x_img, g, gi * c_in_g, c_in_g, p0, len);
                let lhs = &gd[(b * g.c_out + gi * c_out_g) * positions + p0..];
                gemm_acc(
                    c_out_g,
                    rows,
                    len,
                    &mut acc[gi * per_group..(gi + 1) * per_group],
                    lhs.as_ptr(),
                    positions,
                    col.as_ptr(),
                    1,
                    len,
                );
            }
        }
    })
}

/// Depthwise weight gradient: per channel and kernel tap, a dot product of the output
/// gradient with the shifted input, over the batch.
fn depthwise_weight_grad(xd: &[f32], gd: &[f32], g: &Geometry) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let channel = |c: usize, out: &mut [f32]| {
        for b in 0..g.batch {
            let x = &xd[(b * g.c_in + c) * g.h * g.w..][..g.h * g.w];
            let gr = &gd[(b * g.c_out + c) * g.oh * g.ow..][..g.oh * g.ow];
            for ki in 0..g.kh {
                let (oh_s, oh_e) = g.valid_h(ki);
                for kj in 0..g.kw {
                    let (ow_s, ow_e) = g.valid_w(kj);
                    let mut s = 0.0f32;
                    for o in oh_s..oh_e {
                        let ih = o * g.stride[0] + ki * g.dilation[0] - g.pad[0];
                        let grow = &gr[o * g.ow..(o + 1) * g.ow];
                        let xrow = &x[ih * g.w..(ih + 1) * g.w];
                        if g.stride[1] == 1 {
                            let s0 = ow_s + kj * g.dilation[1] - g.pad[1];
                            s += dot(&grow[ow_s..ow_e], &xrow[s0..s0 + (ow_e - ow_s)]);
                        } else {
                            for ow in ow_s..ow_e {
                                s += grow[ow]
                                    * xrow[ow * g.stride[1] + kj * g.dilation[1] - g.pad[1]];
                            }
                        }
                    }
                    out[ki * g.kw + kj] += s;
                }
            }
        }
    };
    let mut out = vec![0.0f32; g.c_in * taps];
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(taps)
            .enumerate()
            .for_each(|(c, o)| channel(c, o));
    }
    #[cfg(not(feature = "rayon"))]
    for (c, o) in out.chunks_mut(taps).enumerate() {
        channel(c, o);
    }
    out
}

/// A dot product in 8 independent lanes (vectorises; a plain fold would be a serial chain).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = lanes.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Whether [`depthwise_x_grad_f32`] applies: a depthwise 2D convolution (one input and one
/// output channel per group).
pub fn is_depthwise(x_shape: &Shape, w_shape: &Shape, options: &ConvOptions<2>) -> bool {
    options.groups == x_shape[1] && w_shape[0] == x_shape[1] && w_shape[1] == 1
}

/// Input gradient of a depthwise 2D convolution, f32: each output-gradient pixel scattered
/// back through its channel's kernel (`[batch, c, h, w]`).
pub fn depthwise_x_grad_f32(
    x_shape: &Shape,
    weight: FlexTensor,
    grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let grad = grad.to_contiguous();
    let w_shape = weight.layout().shape().clone();
    let g = Geometry::new(x_shape, grad.layout().shape(), &w_shape, options);
    let wd: &[f32] = weight.storage();
    let gd: &[f32] = grad.storage();
    let plane = g.h * g.w;
    let taps = g.kh * g.kw;
    let one = |bc: usize, dx: &mut [f32]| {
        let c = bc % g.c_in;
        let gr = &gd[bc * g.oh * g.ow..][..g.oh * g.ow];
        let wc = &wd[c * taps..(c + 1) * taps];
        for ki in 0..g.kh {
            let (oh_s, oh_e) = g.valid_h(ki);
            for kj in 0..g.kw {
                let (ow_s, ow_e) = g.valid_w(kj);
                let wv = wc[ki * g.kw + kj];
                for o in oh_s..oh_e {
                    let ih = o * g.stride[0] + ki * g.dilation[0] - g.pad[0];
                    let grow = &gr[o * g.ow..(o + 1) * g.ow];
                    let drow = &mut dx[ih * g.w..(ih + 1) * g.w];
                    if g.stride[1] == 1 {
                        let s0 = ow_s + kj * g.dilation[1] - g.pad[1];
                        for (d, &v) in drow[s0..s0 + (ow_e - ow_s)]
                            .iter_mut()
                            .zip(&grow[ow_s..ow_e])
                        {
                            *d += v * wv;
                        }
                    } else {
                        for ow in ow_s..ow_e {
                            drow[ow * g.stride[1] + kj * g.dilation[1] - g.pad[1]] += grow[ow] * wv;
                        }
                    }
                }
            }
        }
    };
    let mut dx = vec![0.0f32; g.batch * g.c_in * plane];
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(bc, d)| one(bc, d));
    }
    #[cfg(not(feature = "rayon"))]
    for (bc, d) in dx.chunks_mut(plane).enumerate() {
        one(bc, d);
    }
    FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(x_shape.clone()),
        DType::F32,
    )
}
