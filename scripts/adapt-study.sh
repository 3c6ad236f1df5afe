#!/usr/bin/env bash
# The adaptation study of the README (issue 10): every objective of `scl adapt` from the shipped
# Kvasir-SEG weights on CVC-ClinicDB's `adapt` frames (masks never read), scored on its `test`
# frames with `scl eval`. Stochastic objectives (those with gradient steps) run SEEDS seeds;
# AdaBN and prior matching without steps are deterministic and run once. Needs ../shared/data
# (not part of .ci/run).
#
#   scripts/adapt-study.sh                      # all objectives, both shipped models
#   OBJECTIVES="adabn adabn+tent" MODELS=scl SEEDS="1" scripts/adapt-study.sh
#
# Extra `scl adapt` flags (e.g. `--steps 200 --lr 0.002`) go in ADAPT_ARGS. Results (one line per
# run: model objective seed dice_before dice_after seconds stopped) go to OUT/results.tsv and a
# summary table (mean over seeds) is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data/cvc-clinicdb}"
OUT="${OUT:-runs/adapt-study}"
SIZE="${SIZE:-160}"
MODELS="${MODELS:-scl supervised}"
SEEDS="${SEEDS:-1 2 3}"
OBJECTIVES="${OBJECTIVES:-adabn inpainting tent pseudo pseudo+inpainting adabn+inpainting adabn+tent adabn+pseudo adabn+pseudo+inpainting prior adabn+prior adabn+inpainting+prior}"
ADAPT_ARGS="${ADAPT_ARGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
SCL="${SCL:-$CARGO_TARGET_DIR/release/scl}"
[ -x "$SCL" ] || cargo build --release --bin scl
[ -d "$DATA" ] || { echo "no dataset at $DATA"; exit 1; }
mkdir -p "$OUT"
RES="$OUT/results.tsv"
[ -f "$RES" ] || printf 'model\tobjective\tseed\tbefore\tafter\tseconds\tstopped\targs\n' > "$RES"

dice() { python3 -c 'import json,sys; print("%.2f" % (100 * json.load(open(sys.argv[1]))[0]["summary"]["dice"]["mean"]))' "$1"; }

for m in $MODELS; do
  base="$OUT/$m.before.json"
  [ -f "$base" ] || "$SCL" eval "weights/$m.bpk" --data "$DATA" --split test --size "$SIZE" --json "$base" >/dev/null
  before=$(dice "$base")
  echo "== $m: Dice on $DATA test before adaptation: $before"
  for o in $OBJECTIVES; do
    seeds="$SEEDS"
    # Without a gradient objective (adabn, prior, adabn+prior) a run is deterministic.
    case "$o" in adabn | prior | adabn+prior) seeds="${SEEDS%% *}" ;; esac
    for s in $seeds; do
      tag="$m.${o//+/-}.s$s"
      w="$OUT/$tag.bpk"
      # shellcheck disable=SC2086
      "$SCL" adapt --weights "weights/$m.bpk" --data "$DATA" --split adapt --out "$w" \
        --objective "$o" --seed "$s" --size "$SIZE" --report "$OUT/$tag.report.json" $ADAPT_ARGS \
        > "$OUT/$tag.adapt.log" 2>&1 || { echo "$tag: scl adapt failed (see $OUT/$tag.adapt.log)"; continue; }
      "$SCL" eval "$w" --data "$DATA" --split test --size "$SIZE" --json "$OUT/$tag.eval.json" >/dev/null
      after=$(dice "$OUT/$tag.eval.json")
      read -r secs stopped < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.1f" % r["seconds"], "yes" if r["stopped"] else "no")' "$OUT/$tag.report.json")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$o" "$s" "$before" "$after" "$secs" "$stopped" "$ADAPT_ARGS" >> "$RES"
      echo "$tag: $before -> $after ($secs s, stopped: $stopped)"
    done
  done
done

python3 - "$RES" <<'PY'
import csv, sys, statistics as st
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["model"], r["objective"], r["args"]), []).append(r)
print("| model | objective | args | Dice before | Dice after (mean ± sd over seeds) | change | seconds | seeds | guard stops |")
print("|---|---|---|---|---|---|---|---|---|")
for (m, o, a), rs in groups.items():
    after = [float(r["after"]) for r in rs]
    sd = st.stdev(after) if len(after) > 1 else 0.0
    b = float(rs[0]["before"])
    mean = st.mean(after)
    secs = st.mean(float(r["seconds"]) for r in rs)
    stops = sum(r["stopped"] == "yes" for r in rs)
    print(f"| {m} | {o} | {a or '-'} | {b:.2f} | {mean:.2f} ± {sd:.2f} | {mean - b:+.2f} | {secs:.0f} | {len(rs)} | {stops} |")
PY
