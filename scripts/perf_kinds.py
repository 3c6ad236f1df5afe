#!/usr/bin/env python3
"""Time per op kind of a `perf record --call-graph dwarf` profile of `scl bench` (issue 8).

Each sample's call chain is read from the root down; the first frame inside one of Burn Flex's
op modules (or the project's own code, or the kernel) names the sample's op kind. Samples of
the rayon worker threads carry only the worker part of the stack, which still starts at the
op's parallel closure, so they are attributed too. Prints a table of shares, plus how busy each
thread was (samples per thread / wall samples).

    cargo build --profile profiling --bin scl      # line tables: inlined frames are named
    perf record -F 499 --call-graph dwarf,32768 -o P.data $CARGO_TARGET_DIR/profiling/scl \
        bench --preset r18-w16 --size 32 --iters 4
    python3 scripts/perf_kinds.py P.data

Without line tables (a plain release build) work inlined into rayon closures is counted as
"rayon scheduling / idle spin"; with them it lands on its op.
"""
import collections
import re
import subprocess
import sys

KINDS = [
    # (kind, regex on a frame's symbol); the outermost matching frame of a sample wins.
    ("conv weight gradient", r"conv(_backward|2d_gemm)::(conv2d_weight_grad|im2col_weight_grad|depthwise_weight_grad|reduce_chunks)|conv2d_weight_backward|conv2d_weight_grad"),
    ("conv input gradient", r"conv_transpose::|conv(_backward|2d_gemm)::(conv2d_x_grad|col2im|depthwise_x_grad)|conv2d_x_backward"),
    ("conv forward", r"burn_flex::ops::conv::|conv2d_gemm::conv2d_forward"),
    ("upsampling (x2 bilinear)", r"upsample2x|burn_flex::ops::interpolate|upsample2_axis"),
    ("batch norm (project code)", r"scl::model::norm::"),
    ("reductions (sum/mean)", r"burn_flex::ops::reduce::"),
    ("concat", r"burn_flex::ops::cat::"),
    ("slice / slice-assign", r"burn_flex::ops::slice::"),
    ("pooling", r"burn_flex::ops::pool::"),
    ("copies (layout, contiguous)", r"burn_flex::tensor::|copy_2d_tiled|to_contiguous|burn_flex::ops::expand"),
    ("random (dropout masks)", r"random|DistributionSampler|chacha"),
    ("elementwise", r"burn_flex::ops::(binary|unary|activation|float|comparison|mask)|burn_flex::zip|macerator"),
    ("optimizer (SGD)", r"burn_optim::"),
]
KERNEL_ALLOC = re.compile(r"page_fault|clear_page|do_anonymous_page|mmap|munmap|madvise|free_pages|unmap")
LIBC_ALLOC = re.compile(r"malloc|_int_free|cfree|__libc_free|memset|alloc_with_data|NativeAllocationController")


def chains(path):
    """(tid, frames leaf first as (is_kernel, symbol)) per sample."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "tid,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    tid, frames = None, []
    for line in out.splitlines():
        if not line.strip():
            if tid is not None:
                yield tid, frames
            tid, frames = None, []
        elif not line[0].isspace():
            tid = int(line.split()[0])
        else:
            parts = line.strip().split(None, 1)
            ip = int(parts[0], 16) if re.fullmatch(r"[0-9a-f]+", parts[0]) else 0
            frames.append((ip >= 0xffffffff80000000, parts[1] if len(parts) > 1 else ""))
    if tid is not None:
        yield tid, frames


def kind_of(frames):
    if frames and frames[0][0]:
        kernel = [s for k, s in frames if k]
        if any(KERNEL_ALLOC.search(s) for s in kernel):
            return "allocation (page faults, kernel)"
    user = [s for k, s in frames if not k]
    for f in reversed(user):
        for kind, rx in KINDS:
            if re.search(rx, f):
                return kind
    if user and LIBC_ALLOC.search(user[0]):
        return "allocation (malloc/free/memset)"
    if any("rayon" in f for f in user):
        return "rayon scheduling / idle spin"
    if frames and frames[0][0]:
        return "kernel (other)"
    return "other"


def main():
    path = sys.argv[1]
    counts, threads = collections.Counter(), collections.Counter()
    total = 0
    for tid, frames in chains(path):
        counts[kind_of(frames)] += 1
        threads[tid] += 1
        total += 1
    print(f"{total} samples, {len(threads)} threads")
    print("| op kind | share of CPU samples |")
    print("|---|---|")
    for k, n in counts.most_common():
        print(f"| {k} | {100 * n / total:.1f}% |")
    busiest = max(threads.values())
    print("threads (samples relative to the busiest): " + ", ".join(f"{100 * n / busiest:.0f}%" for _, n in threads.most_common(4)))


if __name__ == "__main__":
    main()
