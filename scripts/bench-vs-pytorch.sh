#!/usr/bin/env bash
# Side-by-side speed of this project (Burn Flex, release) and PyTorch (CPU) on the same network,
# in one run, alternating, so that the machine's drift hits both alike (issue 8). Prints each
# round and the medians with their ratio:
#   two-stage forward 320x320 batch 1, and one SCL training iteration (4 + 4 crops, 256x256).
#
#   scripts/bench-vs-pytorch.sh [PRESET] [ROUNDS]       PRESET: r18-w16 (default), r34-w32, mnv2, mnv2-lite, paper
#
# PyTorch comes from a venv outside the repository ($TORCH_VENV, default ~/.cache/torch-venv;
# created with torch, numpy, pillow and safetensors from PyPI when missing: ~5 GB). A benchmark,
# not a test: not part of .ci/run. SCL_BIN overrides the binary; SCL_BIN_B adds a second binary
# (another build, to A/B a change) in the same alternating rounds, with its own rows and its ratio
# to the first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
PRESET="${1:-r18-w16}"
ROUNDS="${2:-5}"
THREADS="${THREADS:-$(nproc)}"
VENV="${TORCH_VENV:-$HOME/.cache/torch-venv}"
SCL="${SCL_BIN:-$CARGO_TARGET_DIR/release/scl}"
[ -n "${SCL_BIN:-}" ] || cargo build --release --bin scl >&2
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy pillow safetensors
fi

case "$PRESET" in
    r18-w16) torch_args=(--encoder resnet18 --width 16) ;;
    r18-w8) torch_args=(--encoder resnet18 --width 8) ;;
    r34-w32) torch_args=(--encoder resnet34 --width 32) ;;
    paper) torch_args=(--encoder resnet34 --width 64) ;;
    mnv2) torch_args=(--encoder mobilenetv2 --e5 128 --decoder 96,32,24,16,16) ;;
    mnv2-lite) torch_args=(--encoder mobilenetv2 --e5 64 --decoder 64,24,16,16,16) ;;
    *) echo "unknown preset $PRESET" >&2; exit 2 ;;
esac

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SCL_B="${SCL_BIN_B:-}"
# Prints "forward_ms iteration_s" of one `scl bench` run of binary $1 (nothing if it failed: it
# runs in a subshell, so the caller checks what it read).
scl_round() {
    "$1" bench --preset "$PRESET" --iters 3 >"$out/scl" 2>&1 || { cat "$out/scl" >&2; return 1; }
    echo "$(grep -oP 'two-stage forward .*?median \K[0-9.]+' "$out/scl") $(grep -oP 'training iteration .*?median \K[0-9.]+' "$out/scl")"
}
for r in $(seq 1 "$ROUNDS"); do
    read -r f t < <(scl_round "$SCL")
    [ -n "$t" ] || { echo "scl bench failed ($SCL)" >&2; exit 1; }
    "$VENV/bin/python" scripts/torch_ref.py "${torch_args[@]}" --threads "$THREADS" --reps 6 >"$out/torch.$r" 2>&1
    tf=$(grep -oP 'inference two-stage .*?median \K[0-9.]+' "$out/torch.$r")
    tt=$(grep -oP 'train iteration .*?median \K[0-9.]+' "$out/torch.$r")
    fb=0 tb=0
    if [ -n "$SCL_B" ]; then
        read -r fb tb < <(scl_round "$SCL_B")
        [ -n "$tb" ] || { echo "scl bench failed ($SCL_B)" >&2; exit 1; }
        b_text=" | B forward ${fb} ms, train ${tb} s"
    else
        b_text=""
    fi
    echo "round $r: scl forward ${f} ms, train ${t} s | pytorch forward ${tf} ms, train $(echo "$tt / 1000" | bc -l | xargs printf '%.3f') s${b_text}"
    echo "$f $t $tf $tt $fb $tb" >>"$out/rows"
done
python3 - "$out/rows" "$PRESET" "$THREADS" "$SCL" "$SCL_B" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
med = [statistics.median(c) for c in zip(*rows)]
f, t, tf, tt, fb, tb = med[0], med[1], med[2], med[3] / 1000, med[4], med[5]
print(f"\n{sys.argv[2]}, {sys.argv[3]} threads, medians of {len(rows)} alternating rounds")
print("| | this project (Flex) | PyTorch | ratio |")
print("|---|---|---|---|")
print(f"| two-stage forward 320x320, batch 1 | {f:.1f} ms | {tf:.1f} ms | {f / tf:.2f}x |")
print(f"| SCL training iteration 4 + 4, 256x256 | {t:.3f} s | {tt:.3f} s | {t / tt:.2f}x |")
if sys.argv[5]:
    print(f"\nB = {sys.argv[5]} (A = {sys.argv[4]}), same rounds")
    print("| | B | B / PyTorch | B / A |")
    print("|---|---|---|---|")
    print(f"| two-stage forward | {fb:.1f} ms | {fb / tf:.2f}x | {fb / f:.2f} |")
    print(f"| SCL training iteration | {tb:.3f} s | {tb / tt:.2f}x | {tb / t:.2f} |")
PY
