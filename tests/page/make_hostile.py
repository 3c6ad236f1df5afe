#!/usr/bin/env python3
"""Writes the odd files of the hostile-file page test (tests/page/hostile.test.mjs) into
tests/page/hostile/. Every file is generated here (nothing is copied from a dataset); the
output is committed, so the test itself needs neither Python nor Pillow.

    python3 -m venv ~/.cache/pil-venv && ~/.cache/pil-venv/bin/pip install pillow
    ~/.cache/pil-venv/bin/python tests/page/make_hostile.py

The file names say what each file is; `expect.json` says, for each, whether the page must add
it (a readable image, perhaps with a note) or refuse it, and a pattern its message must match.
"""
import io
import json
import math
import os
import struct
import zlib

from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile")
os.makedirs(OUT, exist_ok=True)
expect = {}


def disc(w, h, mode="RGB"):
    """A reddish disc on a pink background, like the synthetic test image."""
    im = Image.new("RGB", (w, h), (217, 140, 128))
    r = min(w, h) * 0.25
    cx, cy = w * 0.45, h * 0.55
    ImageDraw.Draw(im).ellipse([cx - r, cy - r, cx + r, cy + r], fill=(178, 64, 51))
    return im.convert(mode) if mode != "RGB" else im


def save(name, data, add, pattern):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    expect[name] = {"add": add, "message": pattern}


def pil_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def raw_png(w, h, bit_depth, colour_type, rows):
    """A PNG written by hand (Pillow cannot write 16-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


good = pil_bytes(disc(64, 64), "PNG")
good_jpg = pil_bytes(disc(64, 64), "JPEG", quality=90)

# ---- refused: each must be named with its reason ----
save("empty.png", b"", False, "empty")
save("truncated.jpg", good_jpg[: len(good_jpg) // 2], False, "truncated")
save("truncated.png", good[: len(good) // 2], False, "corrupt or truncated")
save("notes-named-as.png", b"These are my notes, not a picture.\n" * 20, False, "not an image")
save("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
     b'<circle cx="32" cy="32" r="16" fill="red"/></svg>', False, "SVG")
save("report.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
     False, "not an image")
save("frames.zip", b"PK\x03\x04" + bytes(26) + b"frame.png", False, "not an image")
save("page.html", b"<!doctype html><title>x</title><img src=x.png>", False, "not an image")
save("random-bytes.jpg", b"\xff\xd8\xff\xe0" + bytes((i * 73 + 11) % 256 for i in range(3000)) + b"\xff\xd9",
     False, "corrupt|not supported")
# A PNG header that claims 60000 x 60000 pixels (10.8 GB of RGB) over a few bytes of data: a
# decompression bomb must be refused before any allocation of that size.
save("bomb-60000x60000.png", raw_png(1, 1, 8, 2, [b"\x00\x00\x00"]).replace(
    png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)),
    png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))), False, "too large")
# A TIFF that claims one 12000 x 12000 RGB strip (432 MB) but holds a few bytes.
def bomb_tiff(w, h):
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8 + 2 + 12 * 11 + 4), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, w * h * 3),
               (284, 3, 1, 1), (339, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(64)
save("bomb-strip.tiff", bomb_tiff(12000, 12000), False, "too large|corrupt|truncated")
bad_crc = bytearray(good)
bad_crc[40] ^= 0xFF  # inside the IDAT data: the deflate stream or its CRC no longer match
save("bad-crc.png", bytes(bad_crc), False, "corrupt")
save("no-frames.gif", b"GIF89a\x40\x00\x40\x00\x00\x00\x00;", False, "corrupt|no pixels|not supported")
save("camera.avif", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64), False,
     "not supported|not an image")
save("icon.ico", b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + bytes(64), False,
     "not supported|not an image")

# ---- added: readable images, some with a note ----
save("tiny-1x1.png", pil_bytes(Image.new("RGB", (1, 1), (200, 80, 70)), "PNG"), True, "1x1")
save("large-4096x4096.png", pil_bytes(disc(4096, 4096), "PNG", optimize=True), True, "4096x4096")
save("grey.png", pil_bytes(disc(64, 64, "L"), "PNG"), True, "grey")
g16 = disc(64, 64, "L")
save("grey-16bit.png", raw_png(64, 64, 16, 0, [b"".join(struct.pack(">H", g16.getpixel((x, y)) * 257)
                                                   for x in range(64)) for y in range(64)]), True, "16-bit")
c = disc(64, 64)
save("rgb-16bit.png", raw_png(64, 64, 16, 2, [b"".join(struct.pack(">HHH", *(v * 257 for v in c.getpixel((x, y))))
                                                  for x in range(64)) for y in range(64)]), True, "16-bit")
rgba = disc(64, 64, "RGBA")
rgba.putalpha(Image.linear_gradient("L").resize((64, 64)))
save("rgba.png", pil_bytes(rgba, "PNG"), True, "alpha")
save("grey-alpha.png", pil_bytes(disc(64, 64, "LA"), "PNG"), True, "grey")
save("palette.png", pil_bytes(disc(64, 64).convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"), True, "")
save("cmyk.jpg", pil_bytes(disc(64, 64, "CMYK"), "JPEG", quality=90), True, "")
save("grey.jpg", pil_bytes(disc(64, 64, "L"), "JPEG", quality=90), True, "grey")
save("progressive.jpg", pil_bytes(disc(64, 64), "JPEG", quality=90, progressive=True), True, "")
frames = [disc(64, 64).rotate(a) for a in (0, 90, 180)]
save("animated.gif", pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
     True, "first frame")
save("photo.bmp", pil_bytes(disc(64, 64), "BMP"), True, "")
save("photo.tiff", pil_bytes(disc(64, 64), "TIFF"), True, "")
save("photo.webp", pil_bytes(disc(64, 64), "WEBP", lossless=True), True, "")
save("jpeg-named-as.png", good_jpg, True, "")
save("ünïcødé 图像 name.png", good, True, "")
# EXIF orientation 6 (the camera was turned): the stored pixels are the disc image rotated by
# 90 degrees counter-clockwise; shown upright the image is 48 wide and 64 high.
upright = disc(48, 64)
exif = Image.Exif()
exif[0x0112] = 6
save("exif-rotated.jpg", pil_bytes(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=exif),
     True, "EXIF")

# ---- not dropped as images ----
# A mask of another size than its image (64x64): refused by the Dice score with both sizes.
save("mask-wrong-size_mask.png", pil_bytes(Image.new("L", (48, 32), 0), "PNG"), None, "48x32.*64x64")

with open(os.path.join(OUT, "expect.json"), "w") as f:
    json.dump(expect, f, indent=1, ensure_ascii=False)
total = sum(os.path.getsize(os.path.join(OUT, n)) for n in expect)
print(f"{len(expect)} files, {total / 1024:.0f} KiB in {OUT}")
