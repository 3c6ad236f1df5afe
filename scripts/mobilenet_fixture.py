#!/usr/bin/env python3
"""Writes tests/fixtures/mobilenetv2_taps.f32: torchvision's own MobileNetV2 (width 1.0) with
../shared/weights/mobilenetv2-imagenet-features.safetensors loaded, in eval mode, on a fixed
32x32 input, normalised with ImageNet's mean/std: the five taps e1..e5 (features.1, .3, .6, .13,
.17), flattened in that order (16x16x16, 24x8x8, 32x4x4, 96x2x2, 320x1x1 = 6848 floats, little-
endian f32), preceded by the input (3x32x32). The project's import test
(tests/shared_data.rs) runs the Burn encoder on the same input and compares.

The file's keys use the flat older layout (`features.N.conv.K`); torchvision's current model
nests them (`features.N.conv.0.0` for the expansion Conv2dNormActivation, `conv.1.0` for the
depthwise one, `conv.2` the projection, `conv.3` its BN); they are mapped here one to one and
every tensor must land.

Needs torch, torchvision and safetensors (a venv outside the repo, e.g. ~/.cache/torch-venv).
Usage: python3 scripts/mobilenet_fixture.py [WEIGHTS] [OUT]
"""
import re
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from torchvision.models import mobilenet_v2

WEIGHTS = sys.argv[1] if len(sys.argv) > 1 else "../shared/weights/mobilenetv2-imagenet-features.safetensors"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/mobilenetv2_taps.f32"


def nested(key):
    """Flat legacy key -> torchvision's current key."""
    m = re.match(r"features\.(\d+)\.conv\.(\d+)\.(.+)", key)
    if not m:
        return key
    n, k, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if n == 1:  # no expansion: dw conv, bn, (relu), project conv, bn
        table = {0: "conv.0.0", 1: "conv.0.1", 3: "conv.1", 4: "conv.2"}
    else:  # expand conv, bn, (relu), dw conv, bn, (relu), project conv, bn
        table = {0: "conv.0.0", 1: "conv.0.1", 3: "conv.1.0", 4: "conv.1.1", 6: "conv.2", 7: "conv.3"}
    return f"features.{n}.{table[k]}.{rest}"


def main():
    flat = load_file(WEIGHTS)
    sd = {nested(k): v for k, v in flat.items()}
    model = mobilenet_v2()
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    feats = {k for k in own if k.startswith("features.")}
    assert set(sd) == feats, (sorted(set(sd) - feats)[:5], sorted(feats - set(sd))[:5])
    res = model.load_state_dict(sd, strict=False)
    assert all(k.startswith("classifier") or k.endswith("num_batches_tracked") for k in res.missing_keys), res
    assert not res.unexpected_keys, res
    model.eval()

    # A fixed, smooth input in [0, 1]; stored in the fixture, so the Rust test reads the same one.
    y, x = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    img = np.stack([
        0.5 + 0.5 * np.sin(0.3 * x + 0.2 * y + c) for c in range(3)
    ]).astype(np.float32)
    inp = torch.from_numpy(img)[None]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (inp - mean) / std
    taps = []
    with torch.no_grad():
        for i, m in enumerate(model.features):
            h = m(h)
            if i in (1, 3, 6, 13, 17):
                taps.append(h.numpy().ravel())
            if i == 17:
                break
    data = np.concatenate([img.ravel()] + taps).astype("<f4")
    data.tofile(OUT)
    print(f"{OUT}: input 3x32x32 + taps {[t.size for t in taps]} ({data.size} floats); "
          f"e5 mean {taps[4].mean():.5f} std {taps[4].std():.5f}")


if __name__ == "__main__":
    main()
