#!/usr/bin/env bash
# Files finished runs of scripts/experiment.sh under results/ so that they outlive the machine
# (runs/ and its checkpoints do not): each run's log.csv and options.json, and the per-image
# evaluation of its best checkpoint (and the mean teacher's EMA teacher) on Kvasir-SEG val and
# CVC-ClinicDB test, merged into the committed JSON lists (an entry of the same checkpoint is
# replaced), which scripts/summarize.py reads. Then prints the summary.
#
#   scripts/collect.sh RUN ...          e.g. scripts/collect.sh scl-s2 mt-s2
#
# ISIC runs (isic-*-sN) are evaluated on their own seed's held-out 20% of ISIC 2016 at 128 px
# into ISIC_RESULTS (default results/isic-mnv2-128); the rest on Kvasir-SEG val and CVC test.
# RESULTS (default results/kvasir-mnv2-224), SIZE (224), KVASIR, CVC, ISIC (the datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
SCL="${SCL_BIN:-$CARGO_TARGET_DIR/release/scl}"
RUNS="${RUNS:-runs}"
RESULTS="${RESULTS:-results/kvasir-mnv2-224}"
SIZE="${SIZE:-224}"
KVASIR="${KVASIR:-../shared/data/kvasir-seg}"
CVC="${CVC:-../shared/data/cvc-clinicdb}"
ISIC="${ISIC:-../shared/data/isic2016-128}"
ISIC_RESULTS="${ISIC_RESULTS:-results/isic-mnv2-128}"
[ $# -gt 0 ] || { sed -n 2,10p "$0"; exit 2; }
[ -x "$SCL" ] || cargo build --release --bin scl

checkpoints=()
declare -A isic=()  # seed -> its runs' checkpoints
for run in "$@"; do
    [ -f "$RUNS/$run/done" ] || { echo "$run: not finished ($RUNS/$run/done missing)" >&2; exit 1; }
    if [[ $run == isic-* ]]; then into=$ISIC_RESULTS; else into=$RESULTS; fi
    mkdir -p "$into/$run"
    cp "$RUNS/$run/log.csv" "$RUNS/$run/options.json" "$into/$run/"
    if [[ $run == isic-* ]]; then
        isic[${run##*-s}]+=" $RUNS/$run/best.bpk"
        continue
    fi
    checkpoints+=("$RUNS/$run/best.bpk")
    [ -f "$RUNS/$run/best-teacher.bpk" ] && checkpoints+=("$RUNS/$run/best-teacher.bpk")
done

# `merge NEW INTO`: INTO's list with NEW's entries added, replacing those of the same checkpoint.
merge() {
    python3 - "$1" "$2" <<'PY'
import json, os, sys
new, into = sys.argv[1], sys.argv[2]
rows = json.load(open(into)) if os.path.exists(into) else []
fresh = json.load(open(new))
names = {r["weights"] for r in fresh}
rows = [r for r in rows if r["weights"] not in names] + fresh
with open(into + ".tmp", "w") as f:
    json.dump(rows, f, separators=(",", ":"))
os.replace(into + ".tmp", into)
print(f"{into}: {len(rows)} checkpoints")
PY
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in "${!isic[@]}"; do
    # shellcheck disable=SC2086
    "$SCL" eval ${isic[$seed]} --data "$ISIC" --split val --val-fraction 0.2 --seed "$seed" \
        --size 128 --json "$tmp/isic.json"
    merge "$tmp/isic.json" "$ISIC_RESULTS/val-128.eval.json"
done
if [ ${#isic[@]} -gt 0 ]; then
    echo "== isic val"
    python3 scripts/summarize.py "$ISIC_RESULTS/val-128.eval.json" --pair isic-scl:isic-sup
fi
[ ${#checkpoints[@]} -gt 0 ] || exit 0
"$SCL" eval "${checkpoints[@]}" --data "$KVASIR" --split val --size "$SIZE" --json "$tmp/val.json"
merge "$tmp/val.json" "$RESULTS/val-$SIZE.eval.json"
"$SCL" eval "${checkpoints[@]}" --data "$CVC" --split test --size "$SIZE" --json "$tmp/cvc.json"
merge "$tmp/cvc.json" "$RESULTS/cvc-test-$SIZE.eval.json"
for split in val cvc-test; do
    echo "== $split"
    python3 scripts/summarize.py "$RESULTS/$split-$SIZE.eval.json" \
        --pair scl:sup --pair mt:sup --pair mt-teacher:sup --pair scl:mt-teacher
done
