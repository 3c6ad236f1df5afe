#!/usr/bin/env bash
# The checks that need ../shared (real data and the ImageNet weights), which the default test
# suite (scripts/test.sh, .ci/run) cannot assume: a user's clone has no ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
[ -d ../shared ] || { echo "no ../shared here: nothing to check" >&2; exit 2; }
cargo test --release --test shared_data -- --ignored --nocapture
