#!/usr/bin/env bash
# Builds the page's multi-threaded CPU module into DIST/pkg-mt/ (issue 11 item 3): the library
# compiled by nightly Rust with wasm atomics and a rebuilt standard library (Cargo.toml then
# adds rayon and wasm-bindgen-rayon and leaves WebGPU out: wgpu's WebGPU backend does not
# build with atomics), then wasm-bindgen. The worker (www/worker.js) loads it for the CPU
# backend when the page is cross-origin isolated; otherwise it loads the single-threaded pkg/.
#
#     scripts/web-threads.sh DIST      (scripts/web.sh and Trunk's post_build hook run it)
#
# SCL_THREADS=0 skips it (the page then always runs one thread). Toolchain, flags and target
# dir: scripts/tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dist="${1:-${TRUNK_STAGING_DIR:-dist}}"
if [ "${SCL_THREADS:-1}" = 0 ]; then
    echo "SCL_THREADS=0: no multi-threaded build (the page runs one thread)"
    exit 0
fi
source scripts/tools.sh
ensure_nightly
ensure_wasm_bindgen
cargo_threads build --lib
rm -rf "$dist/pkg-mt"
wasm-bindgen --target web --no-typescript --out-dir "$dist/pkg-mt" \
    "$THREADS_TARGET_DIR/wasm32-unknown-unknown/release/scl.wasm"
if [ "${WASM_OPT:-0}" = 1 ]; then wasm_opt_in_place "$dist/pkg-mt/scl_bg.wasm" --enable-threads; fi
wasm_size "$dist/pkg-mt ready" "$dist/pkg-mt/scl_bg.wasm"
