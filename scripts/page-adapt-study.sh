#!/usr/bin/env bash
# The page's adaptation on real images beside `scl adapt` (issue 10; needs ../shared, not part
# of .ci/run): tests/page/adapt-cvc.mjs adds CVC-ClinicDB's `adapt` frames to the page in
# headless Chromium, runs the panel's default objective (or OBJECTIVE) with its defaults and
# exports the weights; `scl eval` then scores the shipped and the page-adapted weights on the
# `test` frames, as scripts/adapt-study.sh does for `scl adapt`. Needs dist/ (scripts/web.sh).
#
#   scripts/page-adapt-study.sh                  # OUT=runs/page-adapt, SIZE=160
#   OBJECTIVE=adabn+prior scripts/page-adapt-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data/cvc-clinicdb}"
OUT="${OUT:-runs/page-adapt}"
SIZE="${SIZE:-160}"
OBJECTIVE="${OBJECTIVE:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
SCL="${SCL:-$CARGO_TARGET_DIR/release/scl}"
[ -x "$SCL" ] || cargo build --release --bin scl
[ -d "$DATA" ] || { echo "no dataset at $DATA"; exit 1; }
[ -f dist/index.html ] || { echo "no dist/: run scripts/web.sh first"; exit 1; }
mkdir -p "$OUT"
tag="page.${OBJECTIVE:-default}"
tag="${tag//+/-}"
node tests/page/adapt-cvc.mjs "$DATA" "$OUT/$tag.bpk" "$SIZE" "$OBJECTIVE"
"$SCL" eval weights/scl.bpk "$OUT/$tag.bpk" --data "$DATA" --split test --size "$SIZE" --json "$OUT/$tag.eval.json"
