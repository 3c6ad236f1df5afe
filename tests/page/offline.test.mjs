// Offline page test (issue 11): the first visit installs the service worker (www/sw.js), which
// keeps this build's files; a second visit loads from that cache (timed, with the first); then
// the network goes away and the page, reloaded, still starts and segments an image as before.
// Run after scripts/web.sh: `node tests/page/offline.test.mjs` (CPU path, cross-origin isolated:
// the multi-threaded module).
import fs from 'node:fs';
import path from 'node:path';
import { root, serveDist, launchChromium, syntheticPng } from './serve.mjs';

const log = (...a) => console.log('[offline]', ...a);
function fail(msg) { console.error(`offline page test FAILED: ${msg}`); process.exit(1); }
if (!fs.existsSync(path.join(root, 'sw.js'))) fail(`${root}/sw.js is missing: run scripts/web.sh first`);

const server = await serveDist();
const browser = await launchChromium();
const served = [];
const uncaught = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => uncaught.push(e.message));
  server.onRequest = (url) => served.push(url);
  const url = `${server.origin}/index.html?backend=flex&size=64`;

  const visit = async (what) => {
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
    const ms = Date.now() - t0;
    log(`${what}: model ready ${(ms / 1000).toFixed(2)} s`);
    return ms;
  };
  const segment = async (name) => {
    await page.setInputFiles('#file-input', { name, mimeType: 'image/png', buffer: syntheticPng(64, 64) });
    await page.waitForFunction((n) => document.getElementById('image-name').textContent === n
      && !document.getElementById('stages').classList.contains('busy')
      && !!document.querySelector('figure[data-stage="fine"] canvas'), name, { timeout: 600_000 });
    return page.evaluate(() => {
      const c = document.querySelector('figure[data-stage="fine"] canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let on = 0;
      for (let i = 0; i < d.length; i += 4) on += d[i] > 127;
      return on;
    });
  };

  const first = await visit('first visit');
  const onlineMask = await segment('online.png');
  // The service worker has precached the page's files once it is active (its install awaits
  // the cache), and keeps the module the worker loaded (the multi-threaded one: the server
  // sends COOP/COEP) when the page asks; the other module is never downloaded.
  const cached = await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    const keys = await caches.keys();
    const cache = await caches.open(keys.find((k) => k.startsWith('scl-')));
    for (let i = 0; i < 600; i++) {
      const files = (await cache.keys()).map((r) => new URL(r.url).pathname);
      if (files.includes('/pkg-mt/scl_bg.wasm')) return files;
      await new Promise((r) => setTimeout(r, 100));
    }
    return (await cache.keys()).map((r) => new URL(r.url).pathname);
  });
  log(`cache holds ${cached.length} files`);
  for (const f of ['/index.html', '/pkg-mt/scl_bg.wasm', '/pkg-mt/scl.js', '/worker.js', '/weights/scl.bpk']) {
    if (!cached.includes(f)) fail(`the offline cache lacks ${f}`);
  }
  const firstFetched = served.filter((u) => u.endsWith('.wasm'));
  log(`first visit fetched: ${firstFetched.join(', ')}`);
  if (firstFetched.includes('/pkg/scl_bg.wasm') || cached.includes('/pkg/scl_bg.wasm')) fail('the single-threaded module, which this page does not run, was downloaded');

  served.length = 0;
  const second = await visit('second visit');
  const refetched = served.filter((u) => /\.(wasm|bpk|js)$/.test(u));
  log(`second visit fetched from the server: ${refetched.length ? refetched.join(', ') : 'nothing big'}`);
  if (refetched.length) fail(`the second visit fetched ${refetched.join(', ')} again`);

  await context.setOffline(true);
  const third = await visit('offline visit');
  const offlineMask = await segment('offline.png');
  log(`fine mask: ${onlineMask} lesion pixels online, ${offlineMask} offline`);
  if (offlineMask !== onlineMask) fail('the offline page segments differently');
  if (uncaught.length) fail(`uncaught errors: ${uncaught.join(' | ')}`);
  log(`PASS (first visit ${(first / 1000).toFixed(2)} s, second ${(second / 1000).toFixed(2)} s, offline ${(third / 1000).toFixed(2)} s)`);
} finally {
  await browser.close();
  server.close();
}
