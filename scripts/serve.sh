#!/usr/bin/env bash
# The demo in one command: installs what is missing (the wasm32 target, wasm-bindgen-cli of
# Cargo.lock, trunk 0.21.14), then `trunk serve` builds the page (Trunk.toml) into dist/ and
# serves it on http://127.0.0.1:8080 (PORT to change). Extra arguments go to trunk (e.g.
# `scripts/serve.sh --port 9000`; `trunk build` alone: `scripts/serve.sh build`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
source scripts/tools.sh
ensure_wasm_target
ensure_wasm_bindgen
ensure_trunk
if [ "${1:-}" = build ]; then
    shift
    exec trunk build "$@"
fi
exec trunk serve --port "${PORT:-8080}" "$@"
