#!/usr/bin/env bash
# Fuzzes every parser that reads user bytes (issue 12) with cargo-fuzz (libFuzzer, nightly,
# AddressSanitizer): image decoding, the .bpk weights reader, and names (dataset image/mask
# pairing, objective/scope/encoder/backend names).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 600; the three targets run side by side
#
# Seeds the corpora on first use (the hostile-file set of the page test, the shipped weights'
# header, a few dataset listings), runs each target, minimises its corpus into fuzz/corpus/,
# and prints executions and crashes per target. Crashers land in fuzz/artifacts/<target>/;
# a fixed one goes to fuzz/regressions/<target>/. Not part of .ci/run (nightly):
# tests/native/fuzz_replay.rs replays fuzz/corpus and fuzz/regressions on stable.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-600}"
TD="${FUZZ_TARGET_DIR:-$HOME/.cache/scl-fuzz-target}"
TARGETS=(decode_image weights names)
declare -A MAXLEN=([decode_image]=20000 [weights]=70000 [names]=512)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seeds="$TD/seeds"
if [ ! -d "$seeds/names" ]; then
    mkdir -p "$seeds"/{decode_image,weights,names}
    find tests/page/hostile -type f -size -20k ! -name expect.json -exec cp {} "$seeds/decode_image/" \;
    head -c 65536 weights/scl.bpk >"$seeds/weights/scl-head.bpk"
    head -c 4096 weights/scl.bpk >"$seeds/weights/scl-4k.bpk"
    printf 'a.png\nb.jpg\nc.tif\n\na.png\nb_mask.png\nc_segmentation.png\nc-exp1.bmp' >"$seeds/names/pairs"
    printf 'adabn+pseudo+inpainting' >"$seeds/names/objective"
    printf 'x.y.png\n.png\n\xff\xfe.png\n\n.png\n\xff\xfe_mask.png\nx.y_mask.png' >"$seeds/names/odd"
fi

cd fuzz
cargo +nightly fuzz build --target-dir "$TD"
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "$TD/logs" "$TD/work/$t"
    cargo +nightly fuzz run --target-dir "$TD" "$t" "$TD/work/$t" "corpus/$t" "$seeds/$t" -- \
        -max_total_time="$SECS" -max_len="${MAXLEN[$t]}" -rss_limit_mb=4096 -timeout=30 \
        -print_final_stats=1 >"$TD/logs/$t.log" 2>&1 &
done
wait || true
for t in "${TARGETS[@]}"; do
    # Keep the smallest corpus with the same coverage.
    cargo +nightly fuzz cmin --target-dir "$TD" "$t" "$TD/work/$t" -- -max_len="${MAXLEN[$t]}" >/dev/null 2>&1 || true
    # Commit-sized: the 300 smallest inputs of the minimised corpus, at most 512 KiB in all
    # (the full corpus stays in $TD/work for the next run).
    rm -rf "corpus/$t" && mkdir -p "corpus/$t"
    ls -S -r "$TD/work/$t" | awk -v d="$TD/work/$t" 'BEGIN{t=0} {c="stat -c %s \"" d "/" $0 "\""; c | getline n; close(c); t+=n; if (NR>300 || t>524288) exit; print}' |
        while read -r f; do cp "$TD/work/$t/$f" "corpus/$t/"; done
    runs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$TD/logs/$t.log" | awk '{print $2}')
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "$t: ${runs:-?} executions in ${SECS} s, $crashes crash file(s), minimised corpus $(ls "$TD/work/$t" | wc -l) files, committed $(ls "corpus/$t" | wc -l) ($(cat "corpus/$t"/* | wc -c) bytes)"
done
