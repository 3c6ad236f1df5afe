#!/usr/bin/env bash
# Builds the page's multi-threaded CPU module into DIST/pkg-mt/ (issue 11 item 3): the library
# compiled by nightly Rust with wasm atomics and a rebuilt standard library (Cargo.toml then
# adds rayon and wasm-bindgen-rayon and leaves WebGPU out: wgpu's WebGPU backend does not
# build with atomics), then wasm-bindgen. The worker (www/worker.js) loads it for the CPU backend when the page is
# cross-origin isolated; otherwise it loads the single-threaded pkg/.
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
target="$THREADS_TARGET_DIR"
# `test` in the rebuilt standard library as in the threaded browser tests' build (scripts/test.sh):
# the two then share the standard library and every dependency but Burn's top crates.
RUSTFLAGS="$THREADS_RUSTFLAGS" CARGO_TARGET_DIR="$target" \
    cargo "+$NIGHTLY" build --lib --release --target wasm32-unknown-unknown \
    -Z build-std=panic_abort,std,test
rm -rf "$dist/pkg-mt"
wasm-bindgen --target web --no-typescript --out-dir "$dist/pkg-mt" \
    "$target/wasm32-unknown-unknown/release/scl.wasm"
if [ "${WASM_OPT:-0}" = 1 ]; then
    wasm-opt -O3 --enable-threads --enable-simd --enable-bulk-memory \
        --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
        --enable-reference-types --enable-multivalue \
        "$dist/pkg-mt/scl_bg.wasm" -o "$dist/pkg-mt/scl_bg.opt.wasm"
    mv "$dist/pkg-mt/scl_bg.opt.wasm" "$dist/pkg-mt/scl_bg.wasm"
fi
raw=$(stat -c %s "$dist/pkg-mt/scl_bg.wasm")
gz=$(gzip -9 -c "$dist/pkg-mt/scl_bg.wasm" | wc -c)
echo "$dist/pkg-mt ready: scl_bg.wasm $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip"
