#!/usr/bin/env python3
"""Summarise an `scl eval --json` file of several runs (issue 3's results table).

    python3 scripts/summarize.py runs/kvasir.eval.json [--pair scl:sup --pair mt:sup ...]

Prints, in Markdown:
  * one row per checkpoint (mean ± std over images, %), named after its run folder;
  * one row per method (run name without its `-s<seed>` suffix): the mean and the sample
    standard deviation over seeds of the per-run mean Dice, and each seed's value;
  * for each --pair A:B, the paired per-image Dice difference A - B over the same validation
    images, seed by seed and pooled, with a 95% bootstrap interval (10 000 resamples of images,
    fixed seed) and how many images A segments better. Seeds are matched by their suffix.
Standard library only.
"""
import json
import random
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

METRICS = ["dice", "iou", "accuracy", "recall", "specificity"]


def run_name(weights):
    """`runs/mt-s2/best.bpk` -> `mt-s2`; another file of a run folder, e.g. the mean teacher's
    `runs/mt-s2/best-teacher.bpk` -> `mt-teacher-s2` (its own method, same seed); any other
    file -> its stem."""
    p = Path(weights)
    if p.name in ("best.bpk", "last.bpk"):
        return p.parent.name
    m = re.fullmatch(r"(?:best|last)-(.+)", p.stem)
    if m:
        method, seed = split_seed(p.parent.name)
        if seed is not None:
            return f"{method}-{m.group(1)}-s{seed}"
    return p.stem


def split_seed(name):
    m = re.fullmatch(r"(.*)-s(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def bootstrap(diffs, n=10000, seed=0):
    rng = random.Random(seed)
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def pair_row(label, seed, diffs):
    lo, hi = bootstrap(diffs)
    better = sum(d > 0 for d in diffs)
    print(f"| {label} | {seed} | {len(diffs)} | {sum(diffs) / len(diffs):+.2f} | "
          f"[{lo:+.2f}, {hi:+.2f}] | {better}/{len(diffs)} |")


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    path, pairs = argv[0], []
    rest = argv[1:]
    while rest:
        if rest[0] == "--pair" and len(rest) > 1 and ":" in rest[1]:
            pairs.append(tuple(rest[1].split(":", 1)))
            rest = rest[2:]
        else:
            print(f"unexpected argument {rest[0]!r} (see --help)", file=sys.stderr)
            return 2
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        print(f"{path}: cannot read an `scl eval --json` file: {e}", file=sys.stderr)
        return 1

    runs = {}
    by_method = defaultdict(dict)
    print("| run | images | Dice | IoU | Acc | Rec | Spe |")
    print("|---|---|" + "---|" * len(METRICS))
    for row in rows:
        name = run_name(row["weights"])
        s = row["summary"]
        runs[name] = {stem: scores for stem, scores in row["images"]}
        method, seed = split_seed(name)
        # The stage-1 mask of a two-stage run, for pairs only (for a single-stage network it is
        # the prediction itself).
        if "coarse_images" in row:
            coarse = f"{method}-coarse-s{seed}" if seed is not None else f"{name}-coarse"
            runs[coarse] = {stem: scores for stem, scores in row["coarse_images"]}
        by_method[method][seed] = 100 * s["dice"]["mean"]
        cells = [f"{100 * s[m]['mean']:.2f} ± {100 * s[m]['std']:.2f}" for m in METRICS]
        print(f"| {name} | {s['count']} | " + " | ".join(cells) + " |")

    print("\n| method | seeds | mean ± std Dice over seeds | per seed |")
    print("|---|---|---|---|")
    for method, seeds in by_method.items():
        order = sorted(seeds, key=lambda k: k or 0)
        per = ", ".join(f"s{k}: {seeds[k]:.2f}" if k else f"{seeds[k]:.2f}" for k in order)
        values = list(seeds.values())
        # Sample standard deviation across seeds (n - 1); none for a single seed.
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"| {method} | {len(order)} | {statistics.mean(values):.2f}{spread} | {per} |")

    if pairs:
        print("\n| A − B (Dice, paired per image) | seed | images | mean difference | 95% bootstrap | A better on |")
        print("|---|---|---|---|---|---|")
    for a, b in pairs:
        pooled = []
        for name, images in sorted(runs.items()):
            method, seed = split_seed(name)
            other = f"{b}-s{seed}" if seed is not None else b
            if method != a or other not in runs:
                continue
            common = sorted(set(images) & set(runs[other]))
            diffs = [100 * (images[k]["dice"] - runs[other][k]["dice"]) for k in common]
            if not diffs:
                continue
            pooled.extend(diffs)
            pair_row(f"{a} − {b}", seed, diffs)
        if pooled:
            pair_row(f"{a} − {b}", "pooled", pooled)
        else:
            print(f"(no runs of {a} and {b} with matching seeds)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
