#!/usr/bin/env python3
"""Exports the page's MobileNetV2 network to ONNX for ONNX Runtime Web (issue 11's speed table).

../shared/bench/ortweb/export.py exports the page's two-stage pipeline (stage 1, erase, stage 2
with the five GFF fusions, fine mask, inpainting, composite) for the ResNet networks of
../shared/bench/torch_ref.py. The page now ships the `mnv2` preset (MobileNetV2 encoder with
ImageNet normalisation, e5 adapter to 128 channels, decoder widths 96/32/24/16/16), which this
repository's scripts/torch_ref.py builds. This script runs that export.py unchanged with its
`torch_ref.SCL` replaced by this repository's MobileNetV2 SCL, so the ONNX file, its reference
outputs (.ref.json/.ref.bin) and its onnxruntime check are export.py's own.

    python3 scripts/export_ortweb.py SIZE OUT.onnx     (needs torch, onnx, onnxscript, onnxruntime)

Random weights (export.py's seeds): speed does not depend on them.
"""
import os
import runpy
import sys
import types

here = os.path.dirname(os.path.abspath(__file__))
export = os.path.join(here, "..", "..", "shared", "bench", "ortweb", "export.py")
if len(sys.argv) != 3:
    sys.exit(__doc__)
size, out = sys.argv[1], sys.argv[2]

sys.path.insert(0, here)
import torch_ref as repo  # noqa: E402  (this repository's scripts/torch_ref.py)

shim = types.ModuleType("torch_ref")
# export.py calls SCL(depth, width) with the ResNet depth it parsed from --encoder; the page's
# network ignores both.
shim.SCL = lambda depth, width: repo.SCL(mnv2=(128, [96, 32, 24, 16, 16]))
sys.modules["torch_ref"] = shim
sys.argv = [export, "--encoder", "resnet18", "--size", size, "--variant", "page", "--out", out]
runpy.run_path(export, run_name="__main__")
