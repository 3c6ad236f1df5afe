#!/usr/bin/env bash
# Two builds of the page timed against each other (the README's way of comparing builds on this
# noisy machine): ROUNDS rounds, alternating, of tests/page/speed.mjs on build A then build B,
# at each SIZE and thread count, then each build's per-round medians and minima side by side.
# A and B are folders as scripts/web.sh leaves dist/ (copy dist/ away after each build); each
# round points dist/ at one of them by a symlink, and dist/ is restored at the end.
#     scripts/page-ab.sh DIST_A DIST_B [ROUNDS]      SIZES ("224"), THREADS ("1 2"), RUNS (15)
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1") b=$(realpath "$2")
rounds="${3:-3}"
SIZES="${SIZES:-224}"
THREADS="${THREADS:-1 2}"
RUNS="${RUNS:-15}"
for d in "$a" "$b"; do
    [ -f "$d/index.html" ] || { echo "$d: not a built page (no index.html; run scripts/web.sh)" >&2; exit 1; }
done
saved=""
# dist/ as it was (a folder or a link) is moved aside and put back.
if [ -e dist ] || [ -L dist ]; then saved=$(mktemp -d) && mv dist "$saved/dist"; fi
restore() { rm -f dist; if [ -n "$saved" ]; then mv "$saved/dist" dist && rmdir "$saved"; fi; }
trap restore EXIT
out=$(mktemp)
for r in $(seq "$rounds"); do
    for build in A B; do
        if [ $build = A ]; then d=$a; else d=$b; fi
        rm -f dist && ln -s "$d" dist
        for s in $SIZES; do
            for t in $THREADS; do
                line=$(node tests/page/speed.mjs "$s" "$RUNS" 3 "$t")
                echo "round $r build $build: $line" | tee -a "$out"
            done
        done
    done
done
python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r'build (\w): \S+ threads=(\d+) size=(\d+) median_ms=([\d.]+) min_ms=([\d.]+)', line)
    if m:
        rows.setdefault((int(m[3]), int(m[2]), m[1]), []).append((float(m[4]), float(m[5])))
print("\n| size | threads | A: round medians (min) | B: round medians (min) | median of rounds A / B |")
print("|---|---|---|---|---|")
for (s, t) in sorted({k[:2] for k in rows}):
    cell = lambda v: ", ".join(f"{m:.1f}" for m, _ in v) + f" ({min(x for _, x in v):.1f})"
    A, B = rows.get((s, t, "A"), []), rows.get((s, t, "B"), [])
    ratio = statistics.median(m for m, _ in A) / statistics.median(m for m, _ in B) if A and B else float("nan")
    print(f"| {s} | {t} | {cell(A)} | {cell(B)} | {ratio:.3f} |")
PY
rm -f "$out"
