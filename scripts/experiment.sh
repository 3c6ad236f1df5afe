#!/usr/bin/env bash
# The experiment of the README (issue 9): every method with the MobileNetV2 encoder (ImageNet
# weights), the same working size, schedule and seeds, trained on Kvasir-SEG `train` (600
# images; 120 labeled, the rest unlabeled) and validated on `val` (200); ISIC 2016 with a
# seeded 80/20 split. Each run is resumable: run this script again after an interruption and
# every unfinished run continues from its last checkpoint. Runs go to $RUNS (default runs/).
#
#   scripts/experiment.sh [DATA] [RUN ...]     e.g. scripts/experiment.sh ../shared/data/kvasir-seg scl-s1 sup-s1
#   JOBS=2 scripts/experiment.sh               two runs at once (the two cores)
#
# Runs (seed N = the labeled stems and everything random; the same N gives the same labeled
# images to every method):
#   sup-sN, ts-sN (two-stage network, labels only), mt-sN (Mean Teacher), scl-sN      N = 1, 2, 3
#   sup600-s1 (all 600 labeled), scladd-s1, sclcat-s1 (the paper's fusion ablation)
#   sclcatres-s1 (residual concatenation s + Conv1x1([s, p]), zero-initialised: this project's)
#   sclc2-s1, tsc2-s1: SCL and the two-stage network with a loss on the stage-1 mask too
#   (--coarse-weight 2: the same weight as the stage-2 mask's own term; this project's variant)
#   pilot on seed 1: oracle-s1 (unlabeled images erased with their true masks), lam0-s1 and
#   lam4-s1 (lambda_inp 0 and 4), mtc1-s1, mtc10-s1 (Mean Teacher consistency weight 1, 10;
#   mt-sN uses the weight chosen from these and mt-s1's 0.1... see MT_WEIGHT)
#   isic-scl-sN, isic-sup-sN                                                           N = 1, 2
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
DATA="${1:-../shared/data/kvasir-seg}"
shift || true
ISIC="${ISIC:-../shared/data/isic2016-128}"
RUNS="${RUNS:-runs}"
SCL="${SCL_BIN:-$CARGO_TARGET_DIR/release/scl}"
WEIGHTS="${WEIGHTS:-../shared/weights/mobilenetv2-imagenet-features.safetensors}"
[ -x "$SCL" ] || cargo build --release --bin scl

# Working size, schedule and learning rate: chosen by the pilot (README, "Training and
# results"): SIZE x SIZE images, CROP crops, EPOCHS x ITERS iterations of 4 + 4 images.
SIZE="${SIZE:-224}"
CROP="${CROP:-192}"
EPOCHS="${EPOCHS:-20}"
ITERS="${ITERS:-120}"
LR="${LR:-0.01}"
MT_WEIGHT="${MT_WEIGHT:-1}"
MODEL=(--preset mnv2 --pretrained "$WEIGHTS")
SCHEDULE=(--epochs "$EPOCHS" --iters-per-epoch "$ITERS" --lr "$LR" --val-every 1)
KVASIR=(--data "$DATA" --size "$SIZE" --crop "$CROP")
# ISIC images are 128x128: trained whole at 128 (flips, rotation and zoom still apply).
ISIC_DATA=(--data "$ISIC" --size 128 --crop 128 --val-fraction 0.2)

declare -A ARGS=()
for s in 1 2 3; do
    ARGS[sup-s$s]="--method supervised --seed $s"
    ARGS[ts-s$s]="--method two-stage --seed $s"
    ARGS[mt-s$s]="--method mean-teacher --consistency $MT_WEIGHT --seed $s"
    ARGS[scl-s$s]="--method scl --seed $s"
done
ARGS[sup600-s1]="--method supervised --seed 1 --label-ratio 1"
ARGS[scladd-s1]="--method scl-add --seed 1"
ARGS[sclcat-s1]="--method scl-concat --seed 1"
ARGS[sclcatres-s1]="--method scl-concat-res --seed 1"
ARGS[sclc2-s1]="--method scl --coarse-weight 2 --seed 1"
ARGS[tsc2-s1]="--method two-stage --coarse-weight 2 --seed 1"
ARGS[oracle-s1]="--method scl-oracle --seed 1"
ARGS[lam0-s1]="--method scl --inp-weight 0 --seed 1"
ARGS[lam4-s1]="--method scl --inp-weight 4 --seed 1"
ARGS[mtc01-s1]="--method mean-teacher --consistency 0.1 --seed 1"
ARGS[mtc10-s1]="--method mean-teacher --consistency 10 --seed 1"
for s in 1 2; do
    ARGS[isic-scl-s$s]="--method scl --seed $s"
    ARGS[isic-sup-s$s]="--method supervised --seed $s"
done
ORDER=(scl-s1 sup-s1 mt-s1 oracle-s1 lam0-s1 lam4-s1 mtc01-s1 mtc10-s1 ts-s1
       scl-s2 sup-s2 mt-s2 ts-s2 scl-s3 sup-s3 mt-s3 ts-s3
       sup600-s1 scladd-s1 sclcat-s1 sclcatres-s1 sclc2-s1 tsc2-s1 isic-scl-s1 isic-sup-s1 isic-scl-s2 isic-sup-s2)
[ $# -gt 0 ] && ORDER=("$@")

train_one() {
    local run=$1 out="$RUNS/$1" resume=() data=()
    if [ -z "${ARGS[$run]:-}" ]; then echo "$run: unknown run" >&2; return 1; fi
    if [ -f "$out/done" ]; then echo "$run: done"; return 0; fi
    [ -f "$out/state.json" ] && resume=(--resume)
    echo "$run: training (${ARGS[$run]})"
    mkdir -p "$out"
    if [[ $run == isic-* ]]; then data=("${ISIC_DATA[@]}"); else data=("${KVASIR[@]}"); fi
    # shellcheck disable=SC2086
    "$SCL" train "${data[@]}" "${MODEL[@]}" "${SCHEDULE[@]}" ${ARGS[$run]} --out "$out" "${resume[@]}" 2>&1 | tee -a "$out.log" >&3
    # Ctrl-C saves and exits cleanly: only a run that reached its end is done.
    if tail -n 3 "$out.log" | grep -q "^done: "; then touch "$out/done"; echo "$run: finished"; else return 1; fi
}

# JOBS=N trains N runs at once; progress goes to $RUNS/<run>.log, and to the terminal (fd 3)
# only when JOBS=1.
JOBS="${JOBS:-1}"
# Each of N runs at once gets its share of the cores as its own thread pool (rayon reads
# RAYON_NUM_THREADS), unless the caller sets it. On the 2-core machine two 1-thread runs side by
# side train about twice the iterations per hour of one 2-thread run (2026-12-07: supervised
# seed 2 took 43 min on one thread beside the 1-thread mean teacher, seed 1 45 min alone on
# two), where two 2-thread runs fight over the cores.
if [ "$JOBS" -gt 1 ] && [ -z "${RAYON_NUM_THREADS:-}" ]; then
    RAYON_NUM_THREADS=$(( $(nproc) / JOBS ))
    export RAYON_NUM_THREADS=$(( RAYON_NUM_THREADS > 0 ? RAYON_NUM_THREADS : 1 ))
fi
mkdir -p "$RUNS"
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
