#!/usr/bin/env bash
# Native soak (issue 12, a script, not CI): `scl train` on a dataset for MINUTES (default 30),
# sampling its resident memory every SAMPLE seconds (default 60); prints the curve and the
# growth after warm-up.   scripts/soak-train.sh DATA [MINUTES] [SAMPLE]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="$1"; MINUTES="${2:-30}"; SAMPLE="${3:-60}"
SCL="${SCL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}/release/scl}"
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
"$SCL" train --data "$DATA" --out "$out/run" --preset r18-w16 --method scl --epochs 1000 \
    --size 160 --crop 128 --diagnostic-images 0 >"$out/log" 2>&1 &
pid=$!
start=$(date +%s)
rows=()
while [ $(( $(date +%s) - start )) -lt $(( MINUTES * 60 )) ] && kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    t=$(( $(date +%s) - start ))
    rows+=("$t $rss")
    printf '%5.1f min: RSS %6.1f MiB\n' "$(echo "$t/60" | bc -l)" "$(echo "$rss/1024" | bc -l)"
    sleep "$SAMPLE"
done
kill -0 "$pid" 2>/dev/null || { echo "scl train stopped early:"; tail -5 "$out/log"; exit 1; }
warm=${rows[2]:-${rows[0]}}; last=${rows[-1]}
echo "RSS after warm-up: $(( ${warm#* } / 1024 )) MiB at ${warm% *} s -> $(( ${last#* } / 1024 )) MiB at ${last% *} s" \
    "($(echo "100 * (${last#* } / ${warm#* } - 1)" | bc -l | xargs printf '%.1f')%)"
