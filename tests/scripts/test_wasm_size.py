#!/usr/bin/env python3
"""Unit tests of scripts/wasm_size.py on a WebAssembly module assembled byte by byte here
(standard library only). Expected sizes are counted by hand in the comments."""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import wasm_size  # noqa: E402


def section(sid, payload):
    assert len(payload) < 128  # one-byte LEB128 size
    return bytes([sid, len(payload)]) + payload


def text(s):
    b = s.encode()
    return bytes([len(b)]) + b


# One type: () -> ().
TYPES = section(1, bytes([1, 0x60, 0, 0]))
# Imports: a memory (limits flags 1: min 1, max 2), a table (funcref, flags 0: min 1), a global
# (i32, immutable) and then one function (index 0): only the last counts as a function.
IMPORTS = section(2, bytes([4]) + text("env") + text("m") + bytes([2, 1, 1, 2])
                  + text("env") + text("t") + bytes([1, 0x70, 0, 1])
                  + text("env") + text("g") + bytes([3, 0x7F, 0])
                  + text("env") + text("f") + bytes([0, 0]))
# Three defined functions (indices 1, 2, 3), all of type 0.
FUNCS = section(3, bytes([3, 0, 0, 0]))
# Bodies: [size 2: no locals, end], [size 4: no locals, nop, nop, end] and the first again with
# its size written in two LEB128 bytes (0x82 0x00 = 2); each body also takes its size prefix:
# 3, 5 and 4 bytes.
CODE = section(10, bytes([3, 2, 0, 0x0B, 4, 0, 0x01, 0x01, 0x0B, 0x82, 0x00, 0, 0x0B]))
# Names: subsection 0 (the module's name, skipped), then subsection 1: function 1 in crate
# `alpha` (legacy mangling), function 2 a trait impl of `beta`, function 3 in `gamma` (v0
# mangling, crate root with a disambiguator).
ENTRIES = bytes([3, 1]) + text("_ZN5alpha3one17h0E") + bytes([2]) \
    + text("_ZN20_$LT$beta..X$u20$as$GT$3two17h0E") + bytes([3]) \
    + text("_RNvNtCs1a2B_5gamma6module5three")
NAME = section(0, text("name") + bytes([0, 4]) + text("mod") + bytes([1, len(ENTRIES)]) + ENTRIES)
MODULE = b"\0asm" + bytes([1, 0, 0, 0]) + TYPES + IMPORTS + FUNCS + CODE + NAME


class WasmSize(unittest.TestCase):
    def test_bodies_are_indexed_after_the_imports(self):
        sections, bodies, names = wasm_size.parse(MODULE)
        self.assertEqual(bodies, [(1, 3), (2, 5), (3, 4)])
        self.assertEqual([s for s, _ in sections],
                         ["type", "import", "function", "code", "custom name"])
        self.assertEqual(dict(sections)["code"], 13)  # the count byte + 3 + 5 + 4
        self.assertEqual(names[1], "_ZN5alpha3one17h0E")

    def test_sizes_by_crate(self):
        _, bodies, names = wasm_size.parse(MODULE)
        sizes, counts = wasm_size.by_crate(bodies, names)
        self.assertEqual(sizes, {"alpha": 3, "<beta": 5, "gamma": 4})
        self.assertEqual(counts, {"alpha": 1, "<beta": 1, "gamma": 1})

    def test_crate_names(self):
        self.assertEqual(wasm_size.crate("_ZN10cubecl_std4tile17h0E"), "cubecl_std")
        self.assertEqual(wasm_size.crate("<burn_flex::Flex as burn::Backend>::conv2d"), "<burn_flex")
        self.assertEqual(wasm_size.crate("core::fmt::write"), "core")
        self.assertEqual(wasm_size.crate("_RNvCsdVr8wqQTWhN_4core3fmt"), "core")

    def test_not_wasm(self):
        with self.assertRaises(ValueError):
            wasm_size.parse(b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
