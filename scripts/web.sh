#!/usr/bin/env bash
# Builds the web page into dist/: the library for wasm32 (SIMD), wasm-bindgen's JS glue,
# wasm-opt -O3, the multi-threaded CPU module (scripts/web-threads.sh), the page (www/) and
# the shipped weights. `scripts/web.sh serve` then serves it on http://localhost:8080 (PORT
# to change), cross-origin isolated.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
source scripts/tools.sh
ensure_wasm_target
ensure_wasm_bindgen
ensure_npm

# The release profile (opt-level 3, thin LTO, SIMD128 from .cargo/config.toml); the browser
# tests build with the same profile, so the 15-minute wasm32 build of Burn happens once.
cargo build --lib --release --target wasm32-unknown-unknown
rm -rf dist
mkdir -p dist/pkg dist/weights
wasm-bindgen --target web --no-typescript --out-dir dist/pkg \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/scl.wasm"
if [ "${WASM_OPT:-1}" = 1 ]; then wasm_opt_in_place dist/pkg/scl_bg.wasm; fi
# The multi-threaded CPU module, dist/pkg-mt/ (nightly Rust; SCL_THREADS=0 skips it).
WASM_OPT="${WASM_OPT:-1}" scripts/web-threads.sh dist
cp www/*.html www/*.js www/*.css dist/
cp weights/*.bpk weights/models.json dist/weights/
cp weights/*.md dist/weights/ 2>/dev/null || true
# The service worker's build id and file list (www/sw.js).
scripts/sw_manifest.py dist
wasm_size "dist/ ready" dist/pkg/scl_bg.wasm

if [ "${1:-}" = serve ]; then
    port="${PORT:-8080}"
    echo "serving http://localhost:$port (Ctrl-C to stop)"
    # With the two headers that make the page cross-origin isolated (shared memory, so the
    # multi-threaded CPU path); a static host must send them too.
    exec python3 - "$port" <<'PY'
import functools, http.server, sys
class Isolated(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()
handler = functools.partial(Isolated, directory="dist")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
fi
