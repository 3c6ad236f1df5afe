# Sourced by scripts/test.sh, scripts/web.sh and scripts/serve.sh: installs, once, what the wasm build and the
# browser tests need. Everything comes from the package registries (crates.io, Debian, npm).
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
WASM_PACK_VERSION=0.15.1
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_wasm_target() {
    rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
}

ensure_wasm_bindgen() {
    if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
        echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (matches Cargo.lock)"
        cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
    fi
}

ensure_npm() {
    # wasm-opt (binaryen 132: Debian's 108 corrupts wasm-bindgen's output) and playwright-core.
    if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ]; then
        npm ci --no-audit --no-fund
    fi
}

ensure_chromium() {
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        need_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq chromium chromium-driver
    fi
}

ensure_wasm_pack() {
    if ! wasm-pack --version 2>/dev/null | grep -q "$WASM_PACK_VERSION"; then
        cargo install wasm-pack --version "=$WASM_PACK_VERSION"
    fi
}

TRUNK_VERSION=0.21.14
ensure_trunk() {
    # 0.21.x: 0.22 needs a newer rustc than this project's. Built from crates.io (~10 minutes).
    if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION\$"; then
        echo "installing trunk $TRUNK_VERSION"
        cargo install trunk --version "=$TRUNK_VERSION" --locked
    fi
}

# The page's multi-threaded build (scripts/web-threads.sh): nightly Rust with the standard
# library's source, for `-Z build-std` with wasm atomics. A dated nightly, so that a fresh
# machine builds what was tested.
NIGHTLY=nightly-2026-05-20
# Atomics, SIMD and the stripped symbols as in .cargo/config.toml (RUSTFLAGS replaces its
# flags; build.rs keeps the target_features section), and the linker flags for a shared,
# imported memory of at most 4 GiB with the thread-local storage exports wasm-bindgen's
# threads need (this nightly's rustc does not add them for +atomics by itself).
THREADS_RUSTFLAGS='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C strip=symbols'
for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
    --export=__tls_size --export=__tls_align --export=__tls_base; do
    THREADS_RUSTFLAGS="$THREADS_RUSTFLAGS -C link-arg=$arg"
done
# Its own target dir: the nightly standard library and these flags would otherwise rebuild the
# stable wasm32 artifacts.
THREADS_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}-threads"
# `cargo_threads build|test ARGS...`: cargo for the threaded build (scripts/web-threads.sh and
# the threaded browser tests of scripts/test.sh). Both rebuild the standard library with `test`,
# so that they share it and every dependency built on it.
cargo_threads() {
    local cmd=$1
    shift
    RUSTFLAGS="$THREADS_RUSTFLAGS" CARGO_TARGET_DIR="$THREADS_TARGET_DIR" \
        cargo "+$NIGHTLY" "$cmd" --release --target wasm32-unknown-unknown \
        -Z build-std=panic_abort,std,test "$@"
}
ensure_nightly() {
    if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1 \
        || ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q rust-src; then
        rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
    fi
}

# `wasm_opt_in_place FILE [FLAGS...]`: binaryen's wasm-opt -O3 (npm) on FILE, with the wasm
# features the builds use and any FLAGS more (scripts/web.sh, scripts/web-threads.sh).
wasm_opt_in_place() {
    local file=$1
    shift
    wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$@" "$file" -o "$file.opt"
    mv "$file.opt" "$file"
}

# `wasm_size LABEL FILE`: prints FILE's size raw and gzipped.
wasm_size() {
    local raw gz
    raw=$(stat -c %s "$2")
    gz=$(gzip -9 -c "$2" | wc -c)
    echo "$1: $(basename "$2") $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip"
}
