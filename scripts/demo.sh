#!/usr/bin/env bash
# Builds the native `scl` tool (release) and segments an image, writing every stage's picture.
# Usage: scripts/demo.sh [IMAGE_OR_FOLDER] [extra scl predict flags]
# Without an argument it uses a Kvasir-SEG validation image from ../shared/data when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
input="${1:-}"
if [ -z "$input" ]; then
  input="../shared/data/kvasir-seg/images/cju0qkwl35piu0993l0dewei2.jpg"
  if [ ! -f "$input" ]; then
    echo "usage: scripts/demo.sh IMAGE_OR_FOLDER (no ../shared/data here to pick a default)" >&2
    exit 2
  fi
else
  shift
fi
weights=()
if [ -f weights/scl.bpk ]; then weights=(--weights weights/scl.bpk); fi
# The shipped weights' working size (the page's, weights/models.json) unless --size is given.
if [[ " $* " != *" --size"* ]] && [ -f weights/models.json ]; then
    weights+=(--size "$(python3 -c "import json; print(json.load(open('weights/models.json'))['size'])")")
fi
cargo build --release --bin scl
"$CARGO_TARGET_DIR/release/scl" predict "$input" --stages --out predictions "${weights[@]}" "$@"
echo "pictures written to $(pwd)/predictions"
