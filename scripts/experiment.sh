#!/usr/bin/env bash
# The Kvasir-SEG experiment of the README (issue 3): every method with the same config,
# schedule and seed(s), trained on the `train` split (600 images; 120 labeled) and validated on
# `val` (200). Each run is resumable: run this script again after an interruption and every
# unfinished run continues from its last checkpoint. Runs go to $RUNS (default runs/).
#
# The ISIC 2016 runs (isic-*) use $ISIC (default ../shared/data/isic2016-128, 128x128 images, no
# split file: a seeded 80/20 train/val split, the same for every run of one seed).
#
#   scripts/experiment.sh [DATA] [RUN ...]     e.g. scripts/experiment.sh ../shared/data/kvasir-seg scl-s1 sup-s1
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
DATA="${1:-../shared/data/kvasir-seg}"
shift || true
ISIC="${ISIC:-../shared/data/isic2016-128}"
RUNS="${RUNS:-runs}"
SCL="${SCL_BIN:-$CARGO_TARGET_DIR/release/scl}"
[ -x "$SCL" ] || cargo build --release --bin scl

# Config and schedule (chosen by measurement, see README): ResNet-18 width 16 (2.44 M
# parameters), images resized to 160, 128 crops, 16 epochs of 120 iterations (an epoch = one pass
# over the 480 unlabeled images), 4 + 4 images per iteration, SGD lr 0.01 poly.
SCHEDULE=(--preset r18-w16 --epochs 16 --iters-per-epoch 120 --lr "${LR:-0.01}" --val-every 2)
KVASIR=(--data "$DATA" --size 160 --crop 128)
# ISIC images are 128x128 already: train on them whole (flips, rotation and zoom still apply).
ISIC_DATA=(--data "$ISIC" --size 128 --crop 128 --val-fraction 0.2)

declare -A ARGS=(
    [scl-s1]="--method scl --seed 1"
    [sup-s1]="--method supervised --seed 1"
    [mt-s1]="--method mean-teacher --seed 1"
    [scl-s2]="--method scl --seed 2"
    [sup-s2]="--method supervised --seed 2"
    [mt-s2]="--method mean-teacher --seed 2"
    [two-stage-s1]="--method two-stage --seed 1"
    [sup600-s1]="--method supervised --seed 1 --label-ratio 1"
    [isic-scl-s1]="--method scl --seed 1"
    [isic-sup-s1]="--method supervised --seed 1"
)
ORDER=(scl-s1 sup-s1 mt-s1 two-stage-s1 sup600-s1 scl-s2 sup-s2 mt-s2 isic-scl-s1 isic-sup-s1)
[ $# -gt 0 ] && ORDER=("$@")

train_one() {
    local run=$1 out="$RUNS/$1" resume=() data=()
    if [ -f "$out/done" ]; then echo "$run: done"; return 0; fi
    [ -f "$out/state.json" ] && resume=(--resume)
    echo "$run: training (${ARGS[$run]})"
    mkdir -p "$out"
    if [[ $run == isic-* ]]; then data=("${ISIC_DATA[@]}"); else data=("${KVASIR[@]}"); fi
    # shellcheck disable=SC2086
    "$SCL" train "${data[@]}" "${SCHEDULE[@]}" ${ARGS[$run]} --out "$out" "${resume[@]}" 2>&1 | tee -a "$out.log" >&3
    # Ctrl-C saves and exits cleanly: only a run that reached its end is done.
    if tail -n 3 "$out.log" | grep -q "^done: "; then touch "$out/done"; echo "$run: finished"; else return 1; fi
}

# JOBS=N trains N runs at once. On this 2-core machine 5..7 at once did about 1.3x the work per
# hour of one at a time: a single Flex run keeps the cores only partly busy on tensors this
# small. Progress goes to $RUNS/<run>.log, and to the terminal (fd 3) only when JOBS=1.
JOBS="${JOBS:-1}"
if [ "$JOBS" -le 1 ]; then
    exec 3>&1
    for run in "${ORDER[@]}"; do train_one "$run" || exit 1; done
else
    exec 3>/dev/null
    for run in "${ORDER[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
        train_one "$run" &
    done
    wait
    failed=0
    for run in "${ORDER[@]}"; do
        [ -f "$RUNS/$run/done" ] || { echo "$run: not finished (see $RUNS/$run.log; run again to resume)"; failed=1; }
    done
    exit "$failed"
fi
