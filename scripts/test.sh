#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing, then checks
# formatting and lints, runs the native test suite and builds the library for wasm32.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "native tests (Flex CPU backend, synthetic data)"
cargo test --all-targets

step "library for wasm32"
cargo build --lib --target wasm32-unknown-unknown
