#!/usr/bin/env bash
# The trainer against an independent reference (issue 9, item 0): `scl train --method supervised`
# and ../shared/bench/train_ref.py (the same recipe written in PyTorch) on the same labeled stems,
# seeds 1..3, same schedule (160 px images, 128 crops, 1920 iterations of 4, lr 0.01 poly). Prints
# the best validation Dice of each, per seed, and the means.
#
#   scripts/match-reference.sh [DATA] [ARCH]     ARCH: resnet18 (r18-w16, random init, default)
#                                                      or mbv2 (mnv2 preset + ImageNet weights)
#
# Runs go to $RUNS/match-<arch>-{scl,ref}-s<seed> (resumable: finished runs are skipped).
# PyTorch comes from $TORCH_VENV (default ~/.cache/torch-venv). JOBS=2 runs two at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
DATA="${1:-../shared/data/kvasir-seg}"
ARCH="${2:-resnet18}"
RUNS="${RUNS:-runs}"
SEEDS="${SEEDS:-1 2 3}"
VENV="${TORCH_VENV:-$HOME/.cache/torch-venv}"
SCL="${SCL_BIN:-$CARGO_TARGET_DIR/release/scl}"
[ -x "$SCL" ] || cargo build --release --bin scl
REF=../shared/bench/train_ref.py
WEIGHTS=../shared/weights/mobilenetv2-imagenet-features.safetensors
case "$ARCH" in
    resnet18) model=(--preset r18-w16) ;;
    mbv2) model=(--preset mnv2 --pretrained "$WEIGHTS") ;;
    *) echo "unknown arch $ARCH" >&2; exit 2 ;;
esac
mkdir -p "$RUNS"

rust_run() {
    local s=$1 out="$RUNS/match-$ARCH-scl-s$1"
    [ -f "$out/done" ] && return 0
    local resume=()
    [ -f "$out/state.json" ] && resume=(--resume)
    "$SCL" train --data "$DATA" --out "$out" --method supervised "${model[@]}" --seed "$s" \
        --size 160 --crop 128 --epochs 8 --iters-per-epoch 240 --lr 0.01 --val-every 1 \
        "${resume[@]}" >>"$out.log" 2>&1
    touch "$out/done"
}

ref_run() {
    local s=$1 out="$RUNS/match-$ARCH-ref-s$1"
    [ -f "$out.done" ] && return 0
    # The same labeled stems as the Rust run of this seed (its partition.json).
    while [ ! -f "$RUNS/match-$ARCH-scl-s$s/partition.json" ]; do sleep 5; done
    "$VENV/bin/python" "$REF" --partition "$RUNS/match-$ARCH-scl-s$s/partition.json" --arch "$ARCH" \
        --seed "$s" --threads "${REF_THREADS:-1}" --data "$DATA" >"$out.log" 2>&1
    touch "$out.done"
}

JOBS="${JOBS:-2}"
for s in $SEEDS; do
    rust_run "$s" &
    [ "$JOBS" -ge 2 ] || wait
    ref_run "$s" &
    wait
done

python3 - "$RUNS" "$ARCH" $SEEDS <<'PY'
import csv, re, statistics, sys
runs, arch, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for s in seeds:
    best = max(float(r["val_dice"]) for r in csv.DictReader(open(f"{runs}/match-{arch}-scl-s{s}/log.csv")) if r["val_dice"])
    m = re.search(r"best=([0-9.]+)@(\d+)", open(f"{runs}/match-{arch}-ref-s{s}.log").read())
    rows.append((s, 100 * best, 100 * float(m.group(1))))
print(f"| seed | scl train ({arch}) | train_ref.py | difference |")
print("|---|---|---|---|")
for s, a, b in rows:
    print(f"| {s} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
ma, mb = statistics.mean(r[1] for r in rows), statistics.mean(r[2] for r in rows)
print(f"| mean | {ma:.2f} | {mb:.2f} | {ma - mb:+.2f} |")
PY
