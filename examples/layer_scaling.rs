//! Which layers of the two-stage forward gain least from a second CPU thread (issue 11's
//! "≥ 1.7x on 2 threads" goal): runs the inference network (SPEC.md "Inference") op by op on
//! Flex under a 1-thread and an N-thread rayon pool, alternating, and prints each op kind's
//! median time on both and the ratio, then the ops that lose the most time to imperfect
//! scaling (time at N threads minus time at 1 thread / N).
//!
//! `cargo run --release --example layer_scaling -- [SIZE] [ROUNDS] [THREADS] [PRESET]`
//! (defaults 224 px, 15 rounds, 2 threads, `mnv2`). Random weights and input: the time of these
//! ops does not depend on the values. Flex is eager, so each op's wall-clock time is its own.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{relu, sigmoid};
use scl::bench::Timings;
use scl::config::ModelConfig;
use scl::model::Scl;
use scl::model::decoder::{Decoder, Head};
use scl::model::fused_norm::Act;
use scl::model::fusion::Gff;
use scl::model::layers::{ConvBnRelu, upsample2};
use scl::model::mobilenet::{ConvBn, MobileNetV2, TAPS, imagenet_normalise};
use scl::model::network::{erase, threshold};

/// Per op name, the times (seconds) of every round.
type Times = BTreeMap<String, Vec<f64>>;

/// Times each op of one forward and files it under its name.
struct Recorder<'a>(&'a mut Times);

impl Recorder<'_> {
    fn op<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let dt = t.elapsed().as_secs_f64();
        self.0.entry(name.to_string()).or_default().push(dt);
        out
    }

    fn conv_bn(&mut self, tag: &str, l: &ConvBn, x: Tensor<4>, act: Act) -> Tensor<4> {
        let [_, c, h, _] = x.dims();
        let kind = match (l.conv.weight.dims()[2], l.conv.groups) {
            (1, _) => "1x1",
            (_, 1) => "3x3",
            _ => "dw3x3",
        };
        let y = self.op(&format!("{tag} conv {kind} {c}ch@{h}"), || {
            l.conv.forward(x)
        });
        self.op(&format!("{tag} bn+act"), || l.bn.forward_act(y, 1, act))
    }

    fn conv_bn_relu(&mut self, tag: &str, l: &ConvBnRelu, x: Tensor<4>) -> Tensor<4> {
        let [_, c, h, _] = x.dims();
        let k = l.conv.weight.dims()[2];
        let y = self.op(&format!("{tag} conv {k}x{k} {c}ch@{h}"), || {
            l.conv.forward(x)
        });
        self.op(&format!("{tag} bn+act"), || {
            l.bn.forward_act(y, 1, Act::Relu)
        })
    }

    fn encoder(&mut self, e: &MobileNetV2, x: Tensor<4>) -> [Tensor<4>; 5] {
        let x = self.op("enc imagenet normalise", || imagenet_normalise(x));
        let mut h = self.conv_bn("enc", &e.stem, x, Act::Relu6);
        let mut taps = Vec::new();
        for (i, b) in e.blocks.iter().enumerate() {
            let inp = h.clone();
            let mut y = match &b.expand {
                Some(l) => self.conv_bn("enc", l, h, Act::Relu6),
                None => h,
            };
            y = self.conv_bn("enc", &b.depthwise, y, Act::Relu6);
            y = self.conv_bn("enc", &b.project, y, Act::Identity);
            if b.residual {
                y = self.op("enc residual add", || y + inp);
            }
            h = y;
            if TAPS.contains(&(i + 1)) {
                taps.push(h.clone());
            }
        }
        if let Some(a) = &e.adapter {
            let e5 = taps.pop().expect("five taps");
            taps.push(self.conv_bn_relu("enc adapter", a, e5));
        }
        taps.try_into().expect("five taps")
    }

    /// [`Gff::forward`], op by op.
    fn gff(&mut self, g: &Gff, s: Tensor<4>, p: Tensor<4>) -> Tensor<4> {
        let [_, c, h, _] = s.dims();
        let conv = format!("gff conv 3x3 {}ch@{h}", 2 * c);
        let sp = self.op("gff cat", || Tensor::cat(vec![s.clone(), p.clone()], 1));
        let r = self.op(&conv, || g.reset.forward(sp.clone()));
        let r = self.op("gff sigmoid", || sigmoid(r));
        let z = self.op(&conv, || g.select.forward(sp));
        let z = self.op("gff sigmoid", || sigmoid(z));
        let rp = self.op("gff mul, add, relu", || r * p);
        let sr = self.op("gff cat", || Tensor::cat(vec![s.clone(), rp], 1));
        let o = self.op(&conv, || g.fuse.forward(sr));
        self.op("gff mul, add, relu", || s.clone() + z * (relu(o) - s))
    }

    fn head(&mut self, tag: &str, h: &Head, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv_bn_relu(tag, &h.hidden, x);
        self.op(&format!("{tag} out 1x1"), || h.out.forward(y))
    }

    fn decoder(&mut self, tag: &str, d: &Decoder, g: &[Tensor<4>; 5]) -> Tensor<4> {
        let mut x = g[4].clone();
        for (k, b) in d.blocks.iter().enumerate() {
            if k > 0 {
                let skip = g[4 - k].clone();
                x = self.op(&format!("{tag} cat"), || Tensor::cat(vec![x, skip], 1));
            }
            let y = self.conv_bn_relu(tag, &b.reduce, x);
            let y = self.conv_bn_relu(tag, &b.expand, y);
            x = self.op(&format!("{tag} upsample x2"), || upsample2(y));
        }
        self.head(tag, &d.head, x)
    }

    /// The two-stage inference pass of [`Scl`], op by op.
    fn forward(&mut self, m: &Scl, x: Tensor<4>) {
        let enc = m.encoder.as_mobilenet().expect("a MobileNetV2 preset");
        let f = self.encoder(enc, x.clone());
        let logits = self.decoder("dec", &m.seg, &f);
        let masked = self.op("erase (sigmoid, threshold, multiply)", || {
            erase(x.clone(), &threshold(&sigmoid(logits)))
        });
        let p = self.encoder(enc, masked);
        let g: Vec<Tensor<4>> = m
            .fusion
            .iter()
            .zip(f.iter().cloned().zip(p))
            .map(|(b, (s, p))| match &b.gff {
                Some(gff) => self.gff(gff, s, p),
                None => self.op("fusion", || b.forward(s, p).0),
            })
            .collect();
        let g: [Tensor<4>; 5] = g.try_into().expect("five levels");
        let _ = self.decoder("dec", &m.seg, &g);
        let inp = m.inp.as_ref().expect("two-stage network");
        let _ = self.decoder("dec", inp, &g);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let size: usize = arg(0, "224").parse()?;
    let rounds: usize = arg(1, "15").parse()?;
    let threads: usize = arg(2, "2").parse()?;
    let cfg = ModelConfig::preset(&arg(3, "mnv2"))?;
    let device = scl::backend::init(scl::backend::Backend::Flex)?;
    let model = Scl::new(&cfg, &device)?.valid();
    let x = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(0.0, 1.0), &device);
    let pools = [1, threads].map(|n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a rayon pool")
    });
    let (mut t1, mut tn) = (Times::new(), Times::new());
    for round in 0..=rounds {
        for (pool, times) in pools.iter().zip([&mut t1, &mut tn]) {
            let mut scratch = Times::new();
            // Round 0 warms both pools up and is not kept.
            let rec = if round == 0 { &mut scratch } else { times };
            pool.install(|| Recorder(rec).forward(&model, x.clone()));
        }
    }
    report(&t1, &tn, threads, rounds);
    Ok(())
}

/// Sums each op name's times within a round, then takes the median over rounds.
fn per_round_median(v: &[f64], rounds: usize) -> f64 {
    let per = v.len() / rounds;
    Timings::new(v.chunks(per).map(|c| c.iter().sum()).collect()).median()
}

fn report(t1: &Times, tn: &Times, n: usize, rounds: usize) {
    let mut rows: Vec<(String, f64, f64)> = t1
        .iter()
        .map(|(k, v)| {
            let a = per_round_median(v, rounds) * 1e3;
            let b = per_round_median(&tn[k], rounds) * 1e3;
            (k.clone(), a, b)
        })
        .collect();
    let (s1, sn): (f64, f64) = rows.iter().fold((0.0, 0.0), |(a, b), r| (a + r.1, b + r.2));
    rows.sort_by(|a, b| (b.2 - b.1 / n as f64).total_cmp(&(a.2 - a.1 / n as f64)));
    println!(
        "{:<44} {:>9} {:>9} {:>7} {:>9}",
        "op (summed per forward)",
        "1t ms",
        format!("{n}t ms"),
        "gain",
        "lost ms"
    );
    for (k, a, b) in &rows {
        let lost = b - a / n as f64;
        println!("{k:<44} {a:>9.2} {b:>9.2} {:>6.2}x {lost:>9.2}", a / b);
    }
    println!(
        "{:<44} {s1:>9.2} {sn:>9.2} {:>6.2}x {:>9.2}",
        "total",
        s1 / sn,
        sn - s1 / n as f64
    );
}
