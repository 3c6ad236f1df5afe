#!/usr/bin/env python3
"""Fills in the service worker of a built page (www/sw.js, issue 11): the build id (a hash of
every file's path and bytes), the files every visit needs (precached: the page, the worker, the
weights) and the files of each WebAssembly module (pkg/, pkg-mt/: kept once the page says
which one it runs).

    scripts/sw_manifest.py DIST        (scripts/web.sh and Trunk's post_build hook run it)
"""
import hashlib
import json
import os
import pathlib
import sys

dist = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRUNK_STAGING_DIR", "dist"))
sw = dist / "sw.js"
if not sw.is_file():
    sys.exit(f"{sw} is missing: www/sw.js was not copied into the build")
files = sorted(p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file() and p != sw)
h = hashlib.sha256()
for f in files:
    h.update(f.encode())
    h.update((dist / f).read_bytes())
text = sw.read_text()
modules = {m: [f for f in files if f.startswith(m + "/")] for m in ("pkg", "pkg-mt")}
common = [f for f in files if not f.startswith(tuple(m + "/" for m in modules))]
if "'__BUILD__'" not in text or "__FILES__" not in text or "__MODULES__" not in text:
    sys.exit(f"{sw} has no __BUILD__/__FILES__/__MODULES__ placeholders (already filled in?)")
text = (text.replace("'__BUILD__'", repr(h.hexdigest()[:16]))
        .replace("__FILES__", json.dumps(["./"] + common))
        .replace("__MODULES__", json.dumps({m: v for m, v in modules.items() if v})))
sw.write_text(text)
sizes = ", ".join(f"{m}/ {len(v)}" for m, v in modules.items() if v)
print(f"{sw}: build {h.hexdigest()[:16]}, {len(common)} files precached; modules: {sizes}")
