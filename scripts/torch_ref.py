#!/usr/bin/env python3
"""PyTorch reference of the SCL network as shared/SPEC.md describes it: the performance anchor.

The project's copy of ../shared/bench/torch_ref.py, extended with the MobileNetV2 encoder of the
`mnv2`/`mnv2-lite` presets (torchvision's inverted residuals, taps features.1/3/6/13/17, ImageNet
normalisation inside, an optional 1x1 Conv-BN-ReLU adapter on e5, decoders with explicit widths)
and `--profile` (time per op kind from torch.profiler for one training iteration).

Times, on this machine's CPU, (a) one two-stage inference pass at 320x320, batch 1, and (b) one
semi-supervised training iteration (4 labeled + 4 unlabeled at 256x256, SGD), for a config given as
--encoder resnet18|resnet34 --width W (64 = paper), or --encoder mobilenetv2 --e5 C --decoder a,b,c,d,e.
Usage: torch_ref.py --encoder resnet34 --width 64 [--threads 2] [--reps 5] [--profile]
"""
import argparse, time, statistics
import torch, torch.nn as nn, torch.nn.functional as F


def cbr(i, o, k=3):
    return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class Basic(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, s, 1, bias=False); self.b1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(o)
        self.down = None if (s == 1 and i == o) else nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class Encoder(nn.Module):
    def __init__(self, depth, w):
        super().__init__()
        blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        chans = [w, 2 * w, 4 * w, 8 * w]
        layers, cin = [], w
        for li, (n, c) in enumerate(zip(blocks, chans)):
            seq = [Basic(cin, c, 1 if li == 0 else 2)] + [Basic(c, c, 1) for _ in range(n - 1)]
            layers.append(nn.Sequential(*seq)); cin = c
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        e1 = self.stem(x)
        x = F.max_pool2d(e1, 3, 2, 1)
        out = [e1]
        for l in self.layers:
            x = l(x); out.append(x)
        return out  # e1..e5


class GFF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.r = nn.Conv2d(2 * c, c, 3, padding=1); self.z = nn.Conv2d(2 * c, c, 3, padding=1)
        self.o = nn.Conv2d(2 * c, c, 3, padding=1)

    def forward(self, s, p):
        sp = torch.cat([s, p], 1)
        r = torch.sigmoid(self.r(sp)); z = torch.sigmoid(self.z(sp))
        o = F.relu(self.o(torch.cat([s, p * r], 1)))
        return (1 - z) * s + z * o


class DB(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.a = cbr(i, i // 4); self.b = cbr(i // 4, o)

    def forward(self, x):
        return F.interpolate(self.b(self.a(x)), scale_factor=2, mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    def __init__(self, ec, dc, out_ch):
        """ec: encoder channels e1..e5; dc: decoder block outputs D5..D1."""
        super().__init__()
        self.d5 = DB(ec[4], dc[0]); self.d4 = DB(dc[0] + ec[3], dc[1]); self.d3 = DB(dc[1] + ec[2], dc[2])
        self.d2 = DB(dc[2] + ec[1], dc[3]); self.d1 = DB(dc[3] + ec[0], dc[4])
        self.head = nn.Sequential(cbr(dc[4], dc[4] // 2), nn.Conv2d(dc[4] // 2, out_ch, 1))
        self.sides = nn.ModuleList([nn.Sequential(cbr(ch, ch // 4), nn.Conv2d(ch // 4, out_ch, 1)) for ch in dc[:4]])

    def forward(self, e, sides=True):
        d5 = self.d5(e[4]); d4 = self.d4(torch.cat([d5, e[3]], 1)); d3 = self.d3(torch.cat([d4, e[2]], 1))
        d2 = self.d2(torch.cat([d3, e[1]], 1)); d1 = self.d1(torch.cat([d2, e[0]], 1))
        outs = [self.head(d1)]
        if sides:
            outs += [s(d) for s, d in zip(self.sides, [d5, d4, d3, d2])]
        return outs


class InvRes(nn.Module):
    """torchvision's MobileNetV2 inverted residual (expansion t)."""

    def __init__(self, i, o, s, t):
        super().__init__()
        h = i * t
        layers = [] if t == 1 else [nn.Conv2d(i, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(h, h, 3, s, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
                   nn.Conv2d(h, o, 1, bias=False), nn.BatchNorm2d(o)]
        self.conv = nn.Sequential(*layers)
        self.res = s == 1 and i == o

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2Enc(nn.Module):
    """features.0..17 tapped after 1, 3, 6, 13, 17; ImageNet normalisation; optional e5 adapter."""
    TAPS = (1, 3, 6, 13, 17)

    def __init__(self, e5=320):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))]
        cin = 32
        for t, c, n, st in cfg:
            for k in range(n):
                feats.append(InvRes(cin, c, st if k == 0 else 1, t)); cin = c
        self.features = nn.Sequential(*feats)
        self.adapter = None if e5 == 320 else cbr(320, e5, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / self.std
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self.TAPS:
                out.append(x)
        if self.adapter is not None:
            out[4] = self.adapter(out[4])
        return out


class SCL(nn.Module):
    def __init__(self, depth=34, w=64, mnv2=None):
        """mnv2: None for a ResNet, else (e5 channels, decoder widths D5..D1)."""
        super().__init__()
        if mnv2 is None:
            self.enc = Encoder(depth, w)
            ec = [w, w, 2 * w, 4 * w, 8 * w]
            dc = ec[::-1]
        else:
            self.enc = MobileNetV2Enc(mnv2[0])
            ec = [16, 24, 32, 96, mnv2[0]]
            dc = list(mnv2[1])
        self.gff = nn.ModuleList([GFF(c) for c in ec])
        self.seg = Decoder(ec, dc, 1); self.inp = Decoder(ec, dc, 3)

    def forward(self, x):
        e = self.enc(x)
        with torch.no_grad():
            coarse = torch.sigmoid(self.seg([t.detach() for t in e], sides=False)[0])
        xm = x * (coarse < 0.5).float()
        ei = self.enc(xm)
        g = [m(s, p) for m, s, p in zip(self.gff, e, ei)]
        seg = [torch.sigmoid(t) for t in self.seg(g)]
        inp = self.inp(g)
        return coarse, seg, inp


def pyramid(t, n=5):
    out = [t]
    for _ in range(n - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def seg_loss(preds, y):
    # preds: final (H), then sides at H/16, H/8, H/4, H/2
    loss = 0
    for p in preds:
        g = F.adaptive_avg_pool2d(y, p.shape[-2:])
        loss = loss + F.binary_cross_entropy(p, g)
        inter = (p * g).flatten(1).sum(1)
        dice = (2 * inter + 1) / (p.flatten(1).sum(1) + g.flatten(1).sum(1) + 1)
        loss = loss + (1 - dice).mean()
    return loss


def inp_loss(inps, segs, x):
    loss = 0
    for p, s in zip(inps, segs):
        t = F.adaptive_avg_pool2d(x, p.shape[-2:])
        m = (s.detach() >= 0.5).float().expand_as(p)
        n = m.sum()
        loss = loss + ((p - t).abs() * m).sum() / n.clamp(min=1)
    return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="resnet34"); ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--infer-size", type=int, default=320); ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--e5", type=int, default=128, help="mobilenetv2: e5 channels after the adapter (320: none)")
    ap.add_argument("--decoder", default="96,32,24,16,16", help="mobilenetv2: decoder widths D5..D1")
    ap.add_argument("--profile", action="store_true", help="print time per op kind of one training iteration")
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    if a.encoder in ("mobilenetv2", "mnv2"):
        m = SCL(mnv2=(a.e5, [int(c) for c in a.decoder.split(",")]))
        a.encoder = f"mobilenetv2-e5:{a.e5}-dec:{a.decoder}"
    else:
        m = SCL(int(a.encoder.replace("resnet", "")), a.width)
    params = sum(p.numel() for p in m.parameters())
    print(f"torch {torch.__version__} threads={a.threads} config={a.encoder}/w{a.width} params={params/1e6:.3f}M")
    m.eval()
    x = torch.rand(1, 3, a.infer_size, a.infer_size)
    with torch.no_grad():
        m(x)
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter(); m(x); ts.append(time.perf_counter() - t0)
    print(f"inference two-stage {a.infer_size}px b1: median {statistics.median(ts)*1e3:.1f} ms (min {min(ts)*1e3:.1f})")
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-5)
    S = a.train_size
    xl = torch.rand(4, 3, S, S); yl = (torch.rand(4, 1, S, S) > 0.7).float(); xu = torch.rand(4, 3, S, S)

    def step():
        _, seg_l, _ = m(xl)
        _, seg_u, inp_u = m(xu)
        loss = 2 * seg_loss(seg_l, yl) + inp_loss(inp_u, seg_u, xu)
        opt.zero_grad(); loss.backward(); opt.step()
    step()
    ts = []
    for _ in range(max(2, a.reps // 2)):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    print(f"train iteration 4L+4U {S}px: median {statistics.median(ts)*1e3:.1f} ms (min {min(ts)*1e3:.1f})")
    if a.profile:
        profile(step)


def profile(step):
    """Self CPU time per op kind over one training iteration (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile as prof
    with prof(activities=[ProfilerActivity.CPU]) as p:
        step()
    kinds = {}
    for e in p.key_averages():
        n = e.key
        if "convolution_backward" in n or "ConvolutionBackward" in n:
            k = "conv backward (input + weight)"
        elif "conv" in n or "mkldnn_convolution" in n:
            k = "conv forward"
        elif "batch_norm" in n or "BatchNorm" in n:
            k = "batch norm"
        elif n in ("aten::cat", "aten::slice", "aten::copy_", "aten::contiguous", "CatBackward0", "SliceBackward0"):
            k = "concat / slice / copies"
        elif "upsample" in n or "Upsample" in n:
            k = "upsampling"
        elif "sgd" in n.lower() or "_foreach" in n or "Optimizer" in n:
            k = "optimizer"
        else:
            k = "other (elementwise, reductions, losses)"
        kinds[k] = kinds.get(k, 0) + e.self_cpu_time_total
    total = sum(kinds.values())
    print("| op kind (PyTorch) | share of self CPU time |")
    print("|---|---|")
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {100 * v / total:.1f}% |")


if __name__ == "__main__":
    main()
