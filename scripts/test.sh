#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (wasm32 target,
# wasm-bindgen-cli, wasm-pack, nightly Rust, Chromium + ChromeDriver, npm tools), then checks
# formatting and lints, runs the native suite, the browser suite three times (WebGPU on
# SwiftShader, the Flex CPU fallback, the multi-threaded Flex build), builds the page and runs
# the page tests (page multi- and single-threaded, hostile files, injected faults, offline, the
# embedding example) and the npm-style package pkg/. Needs no data outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scl-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
source scripts/tools.sh

# Each step's header says the minutes and seconds since the start, so that a CI log shows
# where its time went.
t0=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*"; }
summary=()
done_step() { summary+=("$1"); }
trap 'printf "\n==> FAILED after: %s\n" "${summary[*]:-nothing}"' ERR
# `only_backend LOG WANT OTHER`: each browser test logs "backend under test: NAME"; a run must
# have logged WANT and never OTHER. (Checked here rather than in the tests: a build-time
# variable would make the WebGPU and Flex runs two thin-LTO builds of the test binary.)
only_backend() {
    grep -q "backend under test: $2" "$1" && ! grep -q "backend under test: $3" "$1" \
        || { echo "$1: the run did not use only $2"; exit 1; }
}
# `passed LOG`: how many tests the cargo test runs in LOG passed, summed over its binaries.
passed() { grep -Eo 'test result: ok\. [0-9]+ passed' "$1" | awk '{s += $4} END {print s}'; }

step "tools"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
ensure_wasm_target
ensure_chromium
ensure_npm
ensure_wasm_bindgen
ensure_wasm_pack

step "cargo fmt --check"
cargo fmt --all -- --check
done_step fmt

step "cargo clippy -D warnings (native, and the library + browser tests for wasm32)"
cargo clippy --all-targets -- -D warnings
cargo clippy --release --target wasm32-unknown-unknown --lib --tests -- -D warnings
done_step clippy

step "script tests (python3, standard library: scripts/summarize.py, scripts/wasm_size.py)"
python3 -m unittest discover -s tests/scripts -p 'test_*.py'
done_step scripts

step "native tests (Flex CPU backend, synthetic data)"
cargo test --all-targets 2>&1 | tee /tmp/scl-native-tests.log
done_step "native: $(passed /tmp/scl-native-tests.log) passed"

export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}"

step "browser tests with WebGPU (SwiftShader, --enable-unsafe-webgpu): wasm-pack test --release --headless --chrome"
cp webdriver.json /tmp/scl-webdriver.json
trap 'cp /tmp/scl-webdriver.json webdriver.json' EXIT
python3 - <<'PY'
import json
w = json.load(open("webdriver.json"))
w["goog:chromeOptions"]["args"] += ["--enable-unsafe-webgpu", "--enable-features=Vulkan"]
json.dump(w, open("webdriver.json", "w"), indent=2)
PY
wasm-pack test --release --headless --chrome -- --test web -- --nocapture 2>&1 | tee /tmp/scl-web-gpu.log
cp /tmp/scl-webdriver.json webdriver.json
only_backend /tmp/scl-web-gpu.log webgpu flex
done_step "browser (WebGPU): $(passed /tmp/scl-web-gpu.log) passed"

step "browser tests without WebGPU (Flex fallback): cargo test --release --target wasm32-unknown-unknown"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --release --target wasm32-unknown-unknown --test web -- --nocapture 2>&1 | tee /tmp/scl-web-cpu.log
only_backend /tmp/scl-web-cpu.log flex webgpu
done_step "browser (Flex): $(passed /tmp/scl-web-cpu.log) passed"

step "browser tests on the multi-threaded build (Flex on two Web Workers; nightly, -Z build-std)"
ensure_nightly
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo_threads test --test web -- --nocapture 2>&1 | tee /tmp/scl-web-mt.log
grep -q "threads under test: 2" /tmp/scl-web-mt.log || { echo "the threaded run did not start two threads"; exit 1; }
only_backend /tmp/scl-web-mt.log flex webgpu
done_step "browser (Flex, 2 threads): $(passed /tmp/scl-web-mt.log) passed"

step "page: build dist/ and run the page tests (playwright-core + Chromium)"
# Without wasm-opt: binaryen under node takes ~8 minutes per module (two modules), and the tests
# check behaviour, which -O3 must not change; `scripts/web.sh` alone (what the README serves)
# runs it.
WASM_OPT=0 scripts/web.sh
node tests/page/page.test.mjs isolated
node tests/page/page.test.mjs not-isolated
node tests/page/hostile.test.mjs
node tests/page/faults.test.mjs
node tests/page/offline.test.mjs
node tests/page/embed.test.mjs
done_step "page tests passed (page multi-threaded and single-threaded, hostile files, injected faults, offline, embedding example)"

step "the npm-style package: wasm-pack build --target web (pkg/)"
wasm-pack build --target web --release
for f in package.json scl.js scl.d.ts scl_bg.wasm; do [ -f "pkg/$f" ] || { echo "pkg/$f is missing"; exit 1; }; done
grep -q "segment(bytes: Uint8Array" pkg/scl.d.ts || { echo "pkg/scl.d.ts does not declare Engine.segment"; exit 1; }
done_step "pkg/ built"

step "done"
printf '\n==> all tests passed: %s\n' "$(IFS=';'; echo "${summary[*]}")"
