#!/usr/bin/env python3
"""What a WebAssembly module holds (issue 11 item 4): its sections' sizes, and the code
section's bytes by the Rust crate that defines each function (from the function-name section,
which `.cargo/config.toml` strips: build with `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C
target-feature=+simd128"` to keep it, and run this on cargo's own output). Standard library only.

    scripts/wasm_size.py FILE.wasm [N]     the N largest crates (default 30)

A function `<cubecl_std::...>::f` (a trait impl) counts as `<cubecl_std`, so generic impls
show apart from the crate's own functions. Gzip sizes are of the whole file, level 9."""
import collections
import gzip
import re
import sys


def leb128(data, i):
    """An unsigned LEB128 number at data[i:]: (value, index after it)."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def name(data, i):
    """A length-prefixed UTF-8 name at data[i:]: (text, index after it)."""
    n, i = leb128(data, i)
    return data[i:i + n].decode("utf-8", "replace"), i + n


def imported_functions(data, i):
    """How many functions the import section at data[i:] imports."""
    count, i = leb128(data, i)
    functions = 0
    for _ in range(count):
        _, i = name(data, i)
        _, i = name(data, i)
        kind = data[i]
        i += 1
        if kind == 0:  # function: type index
            _, i = leb128(data, i)
            functions += 1
        elif kind == 1:  # table: element type, limits
            i = limits(data, i + 1)
        elif kind == 2:  # memory: limits
            i = limits(data, i)
        elif kind == 3:  # global: value type, mutability
            i += 2
        elif kind == 4:  # tag: attribute, type index
            _, i = leb128(data, i + 1)
        else:
            raise ValueError(f"unknown import kind {kind}")
    return functions


def limits(data, i):
    flags = data[i]
    _, i = leb128(data, i + 1)
    if flags & 1:
        _, i = leb128(data, i)
    return i


SECTIONS = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count",
            13: "tag"}


def parse(data):
    """(sections [(name, size)], code bodies [(function index, size)], {index: name})."""
    if data[:4] != b"\0asm":
        raise ValueError("not a WebAssembly module (no \\0asm magic)")
    sections, bodies, names = [], [], {}
    first = 0
    i = 8
    while i < len(data):
        sid = data[i]
        size, start = leb128(data, i + 1)
        end = start + size
        if sid == 0:
            section, j = name(data, start)
            sections.append((f"custom {section}", size))
            if section == "name":
                names = function_names(data, j, end)
        else:
            sections.append((SECTIONS.get(sid, f"section {sid}"), size))
            if sid == 2:
                first = imported_functions(data, start)
            elif sid == 10:
                count, j = leb128(data, start)
                for k in range(count):
                    n, body = leb128(data, j)
                    bodies.append((first + k, body - j + n))
                    j = body + n
        i = end
    return sections, bodies, names


def function_names(data, i, end):
    names = {}
    while i < end:
        sub = data[i]
        size, j = leb128(data, i + 1)
        if sub == 1:
            count, k = leb128(data, j)
            for _ in range(count):
                index, k = leb128(data, k)
                names[index], k = name(data, k)
        i = j + size
    return names


def crate(symbol):
    """The crate a (mangled or demangled) Rust symbol belongs to."""
    if symbol.startswith("_R"):  # v0 mangling: the first crate root C[s<hash>_]<len><name>
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", symbol)
        if m:
            return symbol[m.end():m.end() + int(m.group(1))]
    m = re.match(r"_ZN(\d+)", symbol)  # legacy mangling: _ZN<len><crate>...
    if m:
        part = symbol[m.end():m.end() + int(m.group(1))]
        impl = re.match(r"_\$LT\$([A-Za-z0-9_]+)", part)
        return "<" + impl.group(1) if impl else part
    if symbol.startswith("<"):  # demangled trait impl: <crate::Type as ...>::f
        return "<" + re.split(r"[:<> ]", symbol[1:], maxsplit=1)[0]
    return symbol.split("::")[0]


def by_crate(bodies, names):
    sizes, counts = collections.Counter(), collections.Counter()
    for index, size in bodies:
        c = crate(names.get(index, "?"))
        sizes[c] += size
        counts[c] += 1
    return sizes, counts


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data = open(argv[1], "rb").read()
    top = int(argv[2]) if len(argv) > 2 else 30
    sections, bodies, names = parse(data)
    print(f"{argv[1]}: {len(data) / 1e6:.2f} MB, gzip -9 {len(gzip.compress(data, 9)) / 1e6:.2f} MB")
    for section, size in sections:
        print(f"  {size / 1e6:8.2f} MB  {section}")
    code = sum(size for _, size in bodies)
    print(f"code: {len(bodies)} functions, {code / 1e6:.2f} MB")
    if not names:
        print("(no function-name section: sizes by crate need cargo's unstripped output)")
        return 0
    sizes, counts = by_crate(bodies, names)
    for c, size in sizes.most_common(top):
        print(f"  {size / 1e6:8.2f} MB {100 * size / code:5.1f}% {counts[c]:6d} fns  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
