//! [scl patch] 2D convolutions as Caffe-layout im2col + gemm, straight from and into NCHW:
//! the forward pass, the weight gradient and the input gradient; depthwise gradients as direct
//! loops.
//!
//! burn-flex 0.22.1's forward convolution transposes the input to NHWC on the calling thread,
//! builds each tile's im2col in freshly allocated buffers and scatters the gemm results back
//! element by element; for 1 to 4 input channels it walks a direct "small channel" path. For
//! the gradients it inherits `burn-backend`'s defaults: the weight gradient is a *forward*
//! convolution of the input (batch and channels swapped) with the output gradient as a
//! `Ho x Wo` kernel (a gemm with `N = kh * kw` columns, or, for a batch of 4 or fewer, the
//! small-channel path walking a `Ho * Wo`-tap kernel with scalar code), and grouped
//! convolutions (depthwise included) loop over the groups.
//!
//! Here the im2col of image `b`, group `g` is `col[c * kh * kw, P]`, one row per (channel,
//! kernel tap) and one column per output position, so each row is a shifted copy of input rows
//! (no transpose), built tile by tile in one buffer per thread. Then
//! - forward: `y_b,g[C_out_g, P] = W_g[C_out_g, rows] x col` written into the output's rows;
//! - weight gradient: `dW_g += grad_b,g[C_out_g, P] x col^T`, the (image, tile) tasks split
//!   into one chunk per thread, each with its own accumulator, summed at the end (a fixed
//!   order for a given thread count);
//! - input gradient: `col = W_g^T x grad_b,g`, scattered back (col2im), one task per
//!   (image, group).
//! Pointwise (1x1, stride 1, no padding) convolutions skip the im2col. Depthwise convolutions
//! (one input and one output channel per group) get direct loops for both gradients.

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

/// [scl patch] `(tile, tiles)` for a forward convolution: as many tiles as [`tile_len`] asks
/// for, rounded up so that the `batch * tiles` tasks split evenly over the pool's threads, and
/// equal-sized. Without it a small map ran on one thread (7x7 at 256 x 9 rows: one 64-position
/// tile) or unevenly (14x14: tiles of 64, 64, 64, 4 on two threads). On one thread (or without
/// rayon) the tiling is [`tile_len`]'s, unchanged.
fn balanced_tiles(tile: usize, positions: usize, batch: usize) -> (usize, usize) {
    let threads = super::par::threads();
    let tiles = positions.div_ceil(tile);
    if threads <= 1 {
        return (tile, tiles);
    }
    // Whole tasks per thread: tiles * batch a multiple of threads, as far as tiles of at
    // least 16 positions allow (16 threads on a 7x7 map would otherwise make tiles of 4),
    // and never fewer tiles than `tile_len` asked for (so never a longer tile).
    let step = threads / gcd(threads, batch).max(1);
    let most = positions.div_ceil(16).max(tiles);
    let tiles = tiles.div_ceil(step).saturating_mul(step).clamp(1, most.max(1));
    let tile = positions.div_ceil(tiles).max(1);
    (tile, positions.div_ceil(tile))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
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

    /// 1x1, stride 1, no padding: the im2col is the input itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.oh == self.h
            && self.ow == self.w
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

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, every operand given by a pointer and its row and
/// column strides; `accumulate` adds to `dst` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    // SAFETY: the callers pass pointers to buffers holding the addressed elements, and no
    // other thread writes the addressed part of `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0f32 } else { 0.0f32 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `acc[m, n] += lhs[m, k] * rhs[k, n]` (`acc` row-major; `lhs` rows `lhs_rs` apart).
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
    gemm_raw(
        m,
        n,
        k,
        acc.as_mut_ptr(),
        n,
        true,
        lhs,
        lhs_rs,
        1,
        rhs,
        rhs_rs,
        rhs_cs,
    );
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
                let lhs = &gd[(b * g.c_out + gi * c_out_g) * positions + p0..];
                // col[j, t] (rows x len) as the gemm's right side [t, j].
                let (rhs, rhs_cs) = if g.is_pointwise() {
                    (x_img[gi * c_in_g * positions + p0..].as_ptr(), positions)
                } else {
                    im2col_tile(&mut col, x_img, g, gi * c_in_g, c_in_g, p0, len);
                    (col.as_ptr(), len)
                };
                gemm_acc(
                    c_out_g,
                    rows,
                    len,
                    &mut acc[gi * per_group..(gi + 1) * per_group],
                    lhs.as_ptr(),
                    positions,
                    rhs,
                    1,
                    rhs_cs,
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

/// Runs `work(task_range, scratch)` over `tasks` split into one contiguous chunk per thread,
/// each with its own scratch buffer of `scratch` floats. The tasks must write disjoint data.
fn for_each_chunk<F>(tasks: usize, scratch: usize, work: F)
where
    F: Fn(core::ops::Range<usize>, &mut [f32]) + Sync + Send,
{
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads().min(tasks).max(1);
        if threads > 1 {
            let per = tasks.div_ceil(threads);
            (0..threads).into_par_iter().for_each(|t| {
                let mut buf = vec![0.0f32; scratch];
                work(t * per..((t + 1) * per).min(tasks), &mut buf);
            });
            return;
        }
    }
    let mut buf = vec![0.0f32; scratch];
    work(0..tasks, &mut buf);
}

/// A raw pointer that may cross threads (the tasks write disjoint parts of its buffer).
#[derive(Clone, Copy)]
struct Shared(*mut f32);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Whether [`conv2d_forward_f32`] handles this convolution: 2D, not depthwise (Flex's direct
/// depthwise path is better) and not pointwise (Flex's 1x1 path is already one gemm per
/// image).
pub fn forward_applies(x_shape: &Shape, w_shape: &Shape, options: &ConvOptions<2>) -> bool {
    let pointwise = w_shape[2] == 1
        && w_shape[3] == 1
        && options.stride == [1, 1]
        && options.padding == [(0, 0), (0, 0)];
    !pointwise && !is_depthwise(x_shape, w_shape, options)
}

/// Forward 2D convolution (any groups), f32: `[batch, c_out, oh, ow]`.
pub fn conv2d_forward_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let w_shape = weight.layout().shape().clone();
    let x_shape = x.layout().shape().clone();
    let [ph, pw] = [options.padding[0], options.padding[1]];
    let out_size = |i: usize, (p0, p1): (usize, usize), k: usize| {
        (x_shape[2 + i] + p0 + p1 - options.dilation[i] * (k - 1) - 1) / options.stride[i] + 1
    };
    let out_shape = Shape::from(vec![
        x_shape[0],
        w_shape[0],
        out_size(0, ph, w_shape[2]),
        out_size(1, pw, w_shape[3]),
    ]);
    let g = Geometry::new(&x_shape, &out_shape, &w_shape, options);
    let xd: &[f32] = x.storage();
    let wd: &[f32] = weight.storage();
    let c_in_g = g.c_in / g.groups;
    let c_out_g = g.c_out / g.groups;
    let rows = c_in_g * g.kh * g.kw;
    let positions = g.oh * g.ow;
    let (tile, tiles) = balanced_tiles(tile_len(rows, positions), positions, g.batch);
    // [scl patch] zeroed on the pool's threads (gemm overwrites it; zeroing keeps it safe).
    let mut out = super::par::filled(g.batch * g.c_out * positions, 0.0f32);
    let dst = Shared(out.as_mut_ptr());
    for_each_chunk(g.batch * tiles, rows * tile, |range, col| {
        let dst = dst;
        for task in range {
            let (b, t) = (task / tiles, task % tiles);
            let p0 = t * tile;
            let len = tile.min(positions - p0);
            let x_img = &xd[b * g.c_in * g.h * g.w..(b + 1) * g.c_in * g.h * g.w];
            for gi in 0..g.groups {
                im2col_tile(col, x_img, &g, gi * c_in_g, c_in_g, p0, len);
                let off = (b * g.c_out + gi * c_out_g) * positions + p0;
                gemm_raw(
                    c_out_g,
                    len,
                    rows,
                    // SAFETY: `off` addresses this task's rows of the output (in bounds).
                    unsafe { dst.0.add(off) },
                    positions,
                    false,
                    wd[gi * c_out_g * rows..].as_ptr(),
                    rows,
                    1,
                    col.as_ptr(),
                    len,
                    1,
                );
            }
        }
    });
    if let Some(bias) = bias {
        let bias = bias.to_contiguous();
        let bd: &[f32] = bias.storage();
        for (i, plane) in out.chunks_mut(positions).enumerate() {
            let v = bd[i % g.c_out];
            plane.iter_mut().for_each(|y| *y += v);
        }
    }
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(out_shape),
        DType::F32,
    )
}

/// Adds the columns `col` (`[c_in_g * kh * kw, len]`) of output positions `p0 .. p0 + len`
/// back into the image gradient `dx_img` (`[c_in, h, w]`, channels `c0 ..`): the transpose of
/// [`im2col_tile`].
fn col2im_tile(
    dx_img: &mut [f32],
    col: &[f32],
    g: &Geometry,
    c0: usize,
    c_in_g: usize,
    p0: usize,
    len: usize,
) {
    let plane = g.h * g.w;
    let mut row = 0;
    for c in c0..c0 + c_in_g {
        let dst = &mut dx_img[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            let (oh_s, oh_e) = g.valid_h(ki);
            for kj in 0..g.kw {
                let (ow_s, ow_e) = g.valid_w(kj);
                let src = &col[row * len..(row + 1) * len];
                row += 1;
                let mut p = p0;
                while p < p0 + len {
                    let r = p / g.ow;
                    let col0 = p % g.ow;
                    let run = (g.ow - col0).min(p0 + len - p);
                    if r >= oh_s && r < oh_e {
                        let ih = r * g.stride[0] + ki * g.dilation[0] - g.pad[0];
                        let drow = &mut dst[ih * g.w..(ih + 1) * g.w];
                        let lo = ow_s.clamp(col0, col0 + run);
                        let hi = ow_e.clamp(lo, col0 + run);
                        let shift = kj * g.dilation[1];
                        let s = &src[p - p0..p - p0 + run];
                        if g.stride[1] == 1 {
                            if hi > lo {
                                let s0 = lo + shift - g.pad[1];
                                for (d, v) in drow[s0..s0 + (hi - lo)]
                                    .iter_mut()
                                    .zip(&s[lo - col0..hi - col0])
                                {
                                    *d += v;
                                }
                            }
                        } else {
                            for o in lo..hi {
                                drow[o * g.stride[1] + shift - g.pad[1]] += s[o - col0];
                            }
                        }
                    }
                    p += run;
                }
            }
        }
    }
}

/// Input gradient of a 2D convolution (any groups but depthwise), f32: `[batch, c_in, h, w]`.
pub fn conv2d_x_grad_f32(
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
    let c_in_g = g.c_in / g.groups;
    let c_out_g = g.c_out / g.groups;
    let rows = c_in_g * g.kh * g.kw;
    let positions = g.oh * g.ow;
    let plane = g.h * g.w;
    let tile = tile_len(rows, positions);
    let mut dx = vec![0.0f32; g.batch * g.c_in * plane];
    let dst = Shared(dx.as_mut_ptr());
    // One task per (image, group): each writes its own channels of its own image.
    for_each_chunk(g.batch * g.groups, rows * tile, |range, col| {
        let dst = dst;
        for task in range {
            let (b, gi) = (task / g.groups, task % g.groups);
            // SAFETY: this task's channels of image `b` (in bounds, written by no other task).
            let dx_grp = unsafe {
                core::slice::from_raw_parts_mut(
                    dst.0.add((b * g.c_in + gi * c_in_g) * plane),
                    c_in_g * plane,
                )
            };
            let lhs = wd[gi * c_out_g * rows..].as_ptr(); // W_g^T: [rows, c_out_g]
            let grad_b = &gd[(b * g.c_out + gi * c_out_g) * positions..];
            if g.is_pointwise() {
                gemm_raw(
                    rows,
                    positions,
                    c_out_g,
                    dx_grp.as_mut_ptr(),
                    positions,
                    false,
                    lhs,
                    1,
                    rows,
                    grad_b.as_ptr(),
                    positions,
                    1,
                );
                continue;
            }
            let mut p0 = 0;
            while p0 < positions {
                let len = tile.min(positions - p0);
                gemm_raw(
                    rows,
                    len,
                    c_out_g,
                    col.as_mut_ptr(),
                    len,
                    false,
                    lhs,
                    1,
                    rows,
                    grad_b[p0..].as_ptr(),
                    positions,
                    1,
                );
                col2im_tile(dx_grp, col, &g, 0, c_in_g, p0, len);
                p0 += len;
            }
        }
    });
    FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(x_shape.clone()),
        DType::F32,
    )
}
