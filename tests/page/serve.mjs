// Shared by the page tests and the page bench: a static server for dist/ on a free localhost
// port, Debian's Chromium launched headless with the flags this machine needs, and the
// synthetic test image as a PNG.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist');

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
  '.json': 'application/json', '.bpk': 'application/octet-stream', '.md': 'text/plain' };

// Serves dist/; resolves to { origin, close }. `isolated` (the default, as `trunk serve` and
// `scripts/web.sh serve` do) sends COOP/COEP: the page is then cross-origin isolated and its
// CPU path runs the multi-threaded module; without, the single-threaded one.
export async function serveDist({ isolated = true } = {}) {
  const handle = { onRequest: null };
  const isolation = isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    handle.onRequest?.(url.pathname);
    const file = path.join(root, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404); res.end(); return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': body.length, ...isolation });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  // `onRequest(path)`, when set, sees every request the server answers.
  return Object.assign(handle, { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
}

// Headless Chromium; `webgpu` adds the flags that expose SwiftShader's WebGPU adapter, `args`
// any others (e.g. a remote-debugging port), and the CHROMIUM_ARGS environment variable
// (space-separated) more still, e.g. V8 flags for a benchmark.
export function launchChromium({ webgpu = false, args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
      ...(webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : []), ...args,
      ...(process.env.CHROMIUM_ARGS || '').split(' ').filter(Boolean)],
  });
}

// Resolves once the page has finished segmenting and shows a fine mask.
export function fineMaskShown(page) {
  return page.waitForFunction(() => !document.getElementById('stages').classList.contains('busy')
    && !!document.querySelector('figure[data-stage="fine"] canvas'), null, { timeout: 600_000 });
}

// The synthetic test image (same formula as scl::imageio::synthetic_image), as a PNG; with
// `mask`, its disc as a grey ground-truth mask instead.
export function syntheticPng(w, h, mask = false) {
  const ch = mask ? 1 : 3;
  const raw = Buffer.alloc((w * ch + 1) * h);
  const cx = w * 0.45, cy = h * 0.55, r = Math.min(w, h) * 0.25;
  for (let y = 0; y < h; y++) {
    raw[y * (w * ch + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const d = Math.hypot(x - cx, y - cy);
      const inside = Math.min(1, Math.max(0, 1 - (d - r) / 3));
      const tex = 0.05 * Math.sin(x * 0.7) * Math.cos(y * 0.45);
      const bg = [0.85 + tex, 0.55 + tex, 0.5 + tex], fg = [0.7, 0.25 + tex, 0.2];
      for (let c = 0; c < ch; c++) {
        const v = mask ? (d < r ? 1 : 0) : Math.min(1, Math.max(0, bg[c] * (1 - inside) + fg[c] * inside));
        raw[y * (w * ch + 1) + 1 + x * ch + c] = Math.round(v * 255);
      }
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = mask ? 0 : 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// The native library's fine mask of syntheticPng(64, 64) with the shipped weights
// (tests/fixtures/forward_64.f32, written by tests/native/fixture.rs), thresholded at 0.5.
export function nativeFineMask() {
  const raw = fs.readFileSync(path.resolve(root, '../tests/fixtures/forward_64.f32'));
  return [...new Float32Array(raw.buffer, raw.byteOffset + 64 * 64 * 4, 64 * 64)].map((p) => p >= 0.5);
}
