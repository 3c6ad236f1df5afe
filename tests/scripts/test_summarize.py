#!/usr/bin/env python3
"""Unit tests of scripts/summarize.py on a hand-made `scl eval --json` file (standard library
only; `python3 tests/scripts/test_summarize.py`). Expected values are worked out by hand in
the comments."""
import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import summarize  # noqa: E402


def row(weights, dices):
    """One checkpoint's entry: per-image Dice over images a, b, c, d."""
    images = [[stem, {"dice": d}] for stem, d in zip("abcd", dices)]
    mean = sum(dices) / len(dices)
    stats = {"mean": mean, "std": 0.0}
    summary = {m: stats for m in summarize.METRICS}
    summary["count"] = len(dices)
    return {"weights": weights, "summary": summary, "images": images}


class Summarize(unittest.TestCase):
    def test_run_names(self):
        self.assertEqual(summarize.run_name("runs/scl-s2/best.bpk"), "scl-s2")
        self.assertEqual(summarize.run_name("runs/mt-s3/best-teacher.bpk"), "mt-teacher-s3")
        self.assertEqual(summarize.run_name("runs/mt-s3/last-teacher.bpk"), "mt-teacher-s3")
        self.assertEqual(summarize.run_name("weights/scl.bpk"), "scl")
        self.assertEqual(summarize.split_seed("mt-teacher-s3"), ("mt-teacher", 3))

    def run_on(self, rows, *args):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "e.json"
            p.write_text(json.dumps(rows))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(summarize.main([str(p), *args]), 0)
            return out.getvalue()

    def test_seed_spread_and_pairs(self):
        rows = [
            # sup: means 0.80, 0.70, 0.75 -> 75.00 over seeds, sample std 5.00
            row("runs/sup-s1/best.bpk", [0.8, 0.8, 0.8, 0.8]),
            row("runs/sup-s2/best.bpk", [0.7, 0.7, 0.7, 0.7]),
            row("runs/sup-s3/best.bpk", [0.75, 0.75, 0.75, 0.75]),
            # scl s1: +0.10 on every image of sup-s1, so the paired difference is +10.00 with
            # an interval of zero width, better on 4/4
            row("runs/scl-s1/best.bpk", [0.9, 0.9, 0.9, 0.9]),
            row("runs/mt-s1/best-teacher.bpk", [0.6, 0.6, 0.6, 0.6]),
        ]
        out = self.run_on(rows, "--pair", "scl:sup", "--pair", "mt-teacher:sup")
        self.assertIn("| sup | 3 | 75.00 ± 5.00 | s1: 80.00, s2: 70.00, s3: 75.00 |", out)
        self.assertIn("| scl | 1 | 90.00 | s1: 90.00 |", out)
        self.assertIn("| scl − sup | 1 | 4 | +10.00 | [+10.00, +10.00] | 4/4 |", out)
        self.assertIn("| mt-teacher − sup | 1 | 4 | -20.00 | [-20.00, -20.00] | 0/4 |", out)

    def test_stage_one_mask_pairs_as_coarse(self):
        fine = row("runs/scl-s1/best.bpk", [0.9, 0.8, 0.9, 0.8])
        # Stage 1 scored 0.1 less on a and c and the same on b and d: stage 2 adds +5.00 on
        # average, better on 2 of 4 images; resampled means lie in [0, +10].
        fine["coarse_images"] = [[s, {"dice": d}] for s, d in zip("abcd", [0.8, 0.8, 0.8, 0.8])]
        out = self.run_on([fine], "--pair", "scl:scl-coarse")
        self.assertIn("| scl − scl-coarse | 1 | 4 | +5.00 |", out)
        self.assertIn("| 2/4 |", out)
        # The coarse mask is not a run of its own in the per-run and per-method tables.
        self.assertNotIn("| scl-coarse", out)


if __name__ == "__main__":
    unittest.main()
