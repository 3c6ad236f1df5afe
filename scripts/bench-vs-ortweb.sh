#!/usr/bin/env bash
# The page against ONNX Runtime Web on the same network (issue 11's speed table): ROUNDS rounds
# (default 2), alternating, of ../shared/bench/ortweb/run.sh (ORT Web's WASM backend, 1 and 2
# threads) and tests/page/speed.mjs (the page's CPU path, 1 and 2 threads), at each of SIZES
# (default "224 320"), in the same headless Chromium, then the medians and the ratios. Run
# after scripts/web.sh; needs ../shared (a benchmark, not part of scripts/test.sh).
#     scripts/bench-vs-ortweb.sh [ROUNDS]
# The page's network is the shipped model's: MobileNetV2 (the `mnv2` preset) since 2026-12-04.
# ORT Web's graph of it is exported by scripts/export_ortweb.py (../shared's export.py on this
# repository's PyTorch network) into ORT Web's model cache before the first round; ENCODER=resnet18
# times ../shared's r18-w16 graph instead (the page must then ship r18-w16 weights).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
ORT="${ORTWEB:-../shared/bench/ortweb/run.sh}"
SIZES="${SIZES:-224 320}"
export ENCODER="${ENCODER:-mobilenetv2}"
configs=$(for s in $SIZES; do printf '1:%s,2:%s,' "$s" "$s"; done)
configs=${configs%,}
if [ "$ENCODER" = mobilenetv2 ]; then
    cache="${ORTWEB_CACHE:-$HOME/.cache/ortweb}"
    mkdir -p "$cache/models"
    for s in $SIZES; do
        f="$cache/models/scl_rmobilenetv2_w16_page_$s.onnx"
        [ -s "$f" ] && [ -s "$f.ref.bin" ] && continue
        # run.sh's venv (torch, onnx, onnxscript, onnxruntime): run it once to create it.
        [ -x "$cache/venv/bin/python" ] || CONFIGS=1:64 ENCODER=resnet18 RUNS=1 WARMUP=0 "$ORT" >/dev/null
        (cd "$cache/models" && "$cache/venv/bin/python" -W ignore "$OLDPWD/scripts/export_ortweb.py" "$s" "$f" >&2)
    done
fi
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
    echo "== round $r" >&2
    CONFIGS="$configs" "$ORT" 2>/dev/null | tee -a "$out"
    for s in $SIZES; do
        for t in 1 2; do node tests/page/speed.mjs "$s" 15 3 "$t" | tee -a "$out"; done
    done
done
python3 - "$out" $SIZES <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) threads=(\d+) size=(\d+) median_ms=([\d.]+) min_ms=([\d.]+)', line)
    if m:
        rows.setdefault((m[1], int(m[2]), int(m[3])), []).append((float(m[4]), float(m[5])))
print("\n| size | page, 1 thread | ORT Web, 1 thread | page, 2 threads | ORT Web, 2 threads | page / ORT, 1 thread | page / ORT, 2 threads | page 1 / 2 threads |")
print("|---|---|---|---|---|---|---|---|")
for s in map(int, sys.argv[2:]):
    med = lambda k: statistics.median(v[0] for v in rows.get(k, [(float('nan'), 0)]))
    p1, o1, p2, o2 = (med(("page-flex", 1, s)), med(("ortweb-wasm", 1, s)),
                      med(("page-flex", 2, s)), med(("ortweb-wasm", 2, s)))
    print(f"| {s} | {p1:.1f} ms | {o1:.1f} ms | {p2:.1f} ms | {o2:.1f} ms | {p1 / o1:.2f}x | {p2 / o2:.2f}x | {p1 / p2:.2f}x |")
PY
rm -f "$out"
