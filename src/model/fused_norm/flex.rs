//! The fused batch norm's kernels on Flex (see `mod.rs`), f32, NCHW. Work is cut by
//! `(image, channel)` planes and runs on rayon's pool where there is one (native, the threaded
//! wasm build); sums are taken per plane (f32 lanes, `kernels.rs`) and added per sub-batch in
//! f64 in a fixed order, so results do not depend on the thread count.

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Shape, TensorData};

use super::{FusedNorm, FusedNormBackward, kernels};

impl FusedNorm for Flex {
    fn bn_stats(x: FloatTensor<Self>, groups: usize) -> FloatTensor<Self> {
        let x = contiguous(x);
        let dims = Dims::of(&x, groups);
        let xs = f32s(&x);
        // Sums of x - k per plane, k the first value of the plane's (sub-batch, channel), so
        // that the squares do not cancel.
        let shift = |key: usize| xs[dims.plane(dims.first_plane(key)).start];
        let sums = plane_map(dims.planes(), dims.hw, |p| {
            kernels::sum_dev_sq(&xs[dims.plane(p)], shift(dims.key(p)))
        });
        let n = dims.n();
        let mut out = vec![0f32; dims.groups * 2 * dims.c];
        for (key, (s1, s2)) in dims.group_sums(&sums) {
            let (g, ch) = (key / dims.c, key % dims.c);
            let d = s1 / n;
            out[g * 2 * dims.c + ch] = (shift(key) as f64 + d) as f32;
            // Rounding can make the variance slightly negative; NaN (from a non-finite input)
            // must stay NaN (f64::max would turn it into 0 and hide the divergence).
            let var = s2 / n - d * d;
            out[g * 2 * dims.c + dims.c + ch] = if var < 0.0 { 0.0 } else { var } as f32;
        }
        tensor(out, [dims.groups, 2, dims.c])
    }

    fn bn_act(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        lo: f32,
        hi: f32,
        _batch: bool,
    ) -> FloatTensor<Self> {
        let mut x = contiguous(x);
        let dims = Dims::of(&x, stats.shape()[0]);
        let coef = Affine::new(&dims, &stats, &gamma, eps).coef(&beta, dims.c);
        // In place when nothing else holds x (inference; in training the autodiff step keeps
        // x for the backward, so the output is a new buffer).
        if let Some(v) = owned_mut(&mut x) {
            for_planes(v, dims.hw, |p, o| {
                let (a, b) = coef[dims.key(p)];
                kernels::affine_clamp_in_place(o, a, b, lo, hi);
            });
            return x;
        }
        let xs = f32s(&x);
        let mut out = vec![0f32; xs.len()];
        for_planes(&mut out, dims.hw, |p, o| {
            let (a, b) = coef[dims.key(p)];
            kernels::affine_clamp(o, &xs[dims.plane(p)], a, b, lo, hi);
        });
        tensor(out, x.shape())
    }
}

impl FusedNormBackward for Flex {
    fn bn_act_backward(
        x: FloatTensor<Self>,
        y: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
        lo: f32,
        hi: f32,
        batch: bool,
    ) -> [FloatTensor<Self>; 3] {
        let (x, y, mut grad) = (contiguous(x), contiguous(y), contiguous(grad));
        let dims = Dims::of(&x, stats.shape()[0]);
        let norm = Affine::new(&dims, &stats, &gamma, eps);
        let (xs, ys, gs) = (f32s(&x), f32s(&y), f32s(&grad));
        // Per plane: the sum of the passed gradient g' and of g' (x - mean).
        let sums = plane_map(dims.planes(), dims.hw, |p| {
            let r = dims.plane(p);
            let mean = norm.stat[dims.key(p)].0 as f32;
            kernels::grad_sums(&gs[r.clone()], &ys[r.clone()], &xs[r], mean, lo, hi)
        });
        let n = dims.n();
        let (mut dgamma, mut dbeta) = (vec![0f64; dims.c], vec![0f64; dims.c]);
        // dx = k1 g' + k2 x + k3 per (sub-batch, channel): PyTorch's closed form
        // a (g' - sum g' / n - xhat sum(g' xhat) / n), a = gamma / std; constants when !batch.
        let mut k = vec![(0f32, 0f32, 0f32); dims.groups * dims.c];
        for (key, (s_g, s_gd)) in dims.group_sums(&sums) {
            let ch = key % dims.c;
            let (mean, rstd, a) = norm.stat[key];
            let s_gxhat = rstd * s_gd;
            dgamma[ch] += s_gxhat;
            dbeta[ch] += s_g;
            k[key] = if batch {
                let k2 = -a * rstd * s_gxhat / n;
                (a as f32, k2 as f32, (-a * s_g / n - k2 * mean) as f32)
            } else {
                (a as f32, 0.0, 0.0)
            };
        }
        let k = &k;
        let dx = if let Some(g) = owned_mut(&mut grad) {
            // The output gradient is not needed after this: dx is written over it.
            for_planes(g, dims.hw, |p, o| {
                let (k1, k2, k3) = k[dims.key(p)];
                let r = dims.plane(p);
                kernels::grad_input_in_place(o, &ys[r.clone()], &xs[r], [k1, k2, k3], lo, hi);
            });
            grad
        } else {
            let gs = f32s(&grad);
            let mut dx = vec![0f32; xs.len()];
            for_planes(&mut dx, dims.hw, |p, o| {
                let (k1, k2, k3) = k[dims.key(p)];
                let r = dims.plane(p);
                kernels::grad_input(
                    o,
                    &gs[r.clone()],
                    &ys[r.clone()],
                    &xs[r],
                    [k1, k2, k3],
                    lo,
                    hi,
                );
            });
            tensor(dx, x.shape())
        };
        let per_channel = |v: Vec<f64>| tensor(v.into_iter().map(|s| s as f32).collect(), [dims.c]);
        [dx, per_channel(dgamma), per_channel(dbeta)]
    }
}

/// The geometry: `b` images of `c` planes of `hw` values, in `groups` equal sub-batches.
struct Dims {
    b: usize,
    c: usize,
    hw: usize,
    groups: usize,
}

impl Dims {
    fn of(x: &FlexTensor, groups: usize) -> Self {
        let s = x.shape();
        assert_eq!(
            s.num_dims(),
            4,
            "fused batch norm: [B, C, H, W] expected, got {s:?}"
        );
        let (b, c, hw) = (s[0], s[1], s[2] * s[3]);
        assert!(
            groups > 0 && b % groups == 0,
            "fused batch norm: {b} images in {groups} groups"
        );
        Self { b, c, hw, groups }
    }
    fn planes(&self) -> usize {
        self.b * self.c
    }
    /// Values per (sub-batch, channel).
    fn n(&self) -> f64 {
        (self.b / self.groups * self.hw) as f64
    }
    fn plane(&self, p: usize) -> std::ops::Range<usize> {
        p * self.hw..(p + 1) * self.hw
    }
    /// The (sub-batch, channel) index `g * c + ch` of plane `p`.
    fn key(&self, p: usize) -> usize {
        (p / self.c) / (self.b / self.groups) * self.c + p % self.c
    }
    /// The first plane of the (sub-batch, channel) `key`.
    fn first_plane(&self, key: usize) -> usize {
        (key / self.c) * (self.b / self.groups) * self.c + key % self.c
    }
    /// Per-plane pairs summed per (sub-batch, channel), images in order.
    fn group_sums(&self, sums: &[(f64, f64)]) -> Vec<(usize, (f64, f64))> {
        let mut out = vec![(0.0, 0.0); self.groups * self.c];
        for (p, &(a, b)) in sums.iter().enumerate() {
            let o = &mut out[self.key(p)];
            o.0 += a;
            o.1 += b;
        }
        out.into_iter().enumerate().collect()
    }
}

/// Per (sub-batch, channel): `(mean, 1 / std, gamma / std)`.
struct Affine {
    stat: Vec<(f64, f64, f64)>,
}

impl Affine {
    fn new(dims: &Dims, stats: &FlexTensor, gamma: &FlexTensor, eps: f64) -> Self {
        let (stats, gamma) = (contiguous(stats.clone()), contiguous(gamma.clone()));
        let (s, gm) = (f32s(&stats), f32s(&gamma));
        let c = dims.c;
        let stat = (0..dims.groups * c)
            .map(|key| {
                let (g, ch) = (key / c, key % c);
                let mean = s[g * 2 * c + ch] as f64;
                let rstd = 1.0 / (s[g * 2 * c + c + ch] as f64 + eps).sqrt();
                (mean, rstd, gm[ch] as f64 * rstd)
            })
            .collect();
        Self { stat }
    }

    /// The forward's `(a, b)` with `y = a x + b` (before the clamp).
    fn coef(&self, beta: &FlexTensor, c: usize) -> Vec<(f32, f32)> {
        let beta = contiguous(beta.clone());
        let bt = f32s(&beta);
        let coef = |(key, &(mean, _, a)): (usize, &(f64, f64, f64))| {
            (a as f32, (bt[key % c] as f64 - mean * a) as f32)
        };
        self.stat.iter().enumerate().map(coef).collect()
    }
}

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// `t`'s values, writable in place when `t` alone owns its buffer and the buffer holds exactly
/// them (contiguous from offset 0).
fn owned_mut(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.shape().num_elements();
    if t.layout().contiguous_offsets() != Some((0, n)) {
        return None;
    }
    t.try_storage_mut::<f32>().filter(|s| s.len() == n)
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fused batch norm: contiguous f32 tensor")
}

fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.into()))
}

/// Minimum values per rayon task.
#[cfg(not(target_arch = "wasm32"))]
const TASK: usize = 1 << 15;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
const TASK: usize = 1 << 13;

/// `f(p, plane)` for each plane of `hw` values of `out`, in parallel where possible.
fn for_planes(out: &mut [f32], hw: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(hw)
            .with_min_len(TASK.div_ceil(hw))
            .enumerate()
            .for_each(|(p, o)| f(p, o));
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    out.chunks_mut(hw).enumerate().for_each(|(p, o)| f(p, o));
}

/// `f(p)` for `p` in `0..planes` of `hw` values each, in order, in parallel where possible.
fn plane_map<T: Send>(planes: usize, hw: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    {
        use rayon::prelude::*;
        (0..planes)
            .into_par_iter()
            .with_min_len(TASK.div_ceil(hw))
            .map(f)
            .collect()
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    {
        let _ = hw; // the task size of the parallel version
        (0..planes).map(f).collect()
    }
}
