// Soak (issue 12, a script, not CI): in-browser fine-tuning and repeated segmentation on the
// CPU path for MINUTES (default 30), sampling the worker's wasm memory and JS heap and the
// page's JS heap every SAMPLE seconds (default 60); prints the curve and the growth after
// warm-up. Run after scripts/web.sh: `node tests/page/soak.mjs [MINUTES] [SAMPLE] [MODE] [STEPS]`,
// MODE `both` (default), `adapt` (adaptations only) or `segment` (segmentations only), and
// STEPS per adaptation (default 10): `node tests/page/soak.mjs 30 60 adapt 1`.
import { serveDist, launchChromium, syntheticPng, fineMaskShown } from './serve.mjs';

const minutes = Number(process.argv[2] || 30);
const sample = Number(process.argv[3] || 60);
const mode = process.argv[4] || 'both';
const server = await serveDist();
const browser = await launchChromium();
const page = await browser.newPage();
await page.goto(`${server.origin}/index.html?backend=flex&size=160&test-hooks`);
await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
await page.setInputFiles('#file-input', [0, 1, 2, 3, 4, 5].map((i) => ({
  name: `soak-${i}.png`, mimeType: 'image/png', buffer: syntheticPng(160 + 16 * i, 160) })));
await page.waitForFunction(() => document.querySelectorAll('#gallery .thumb').length === 6);
await page.selectOption('#tune-objective', 'adabn+inpainting');
await page.waitForFunction(() => /^adabn\+inpainting:/.test(document.getElementById('tune-desc').textContent));
const stepsPerRun = Number(process.argv[5] || 10);
await page.fill('#tune-steps', String(stepsPerRun));
await page.fill('#tune-batch', '2');

const t0 = Date.now();
const rows = [];
let next = 0, rounds = 0, steps = 0;
const mb = (b) => (b === null || b === undefined ? 'n/a' : (b / 2 ** 20).toFixed(1));
while (Date.now() - t0 < minutes * 60_000) {
  if (Date.now() - t0 >= next) {
    const w = await page.evaluate(() => window.sclTest.memory());
    const jsPage = await page.evaluate(() => performance.memory.usedJSHeapSize);
    rows.push({ min: (Date.now() - t0) / 60_000, wasm: w.wasmBytes, worker: w.jsHeap, page: jsPage });
    console.log(`${rows.at(-1).min.toFixed(1)} min: wasm ${mb(w.wasmBytes)} MiB, worker JS ${mb(w.jsHeap)} MiB, page JS ${mb(jsPage)} MiB (${rounds} rounds, ${steps} steps)`);
    next += sample * 1000;
  }
  // One round: an adaptation (AdaBN + 10 steps), then every image segmented again.
  if (mode !== 'segment') {
    await page.evaluate(() => { document.getElementById('tune-text').textContent = ''; });
    await page.click('#tune-start');
    await page.waitForFunction(() => /done|stopped|paused/.test(document.getElementById('tune-text').textContent), null, { timeout: 600_000 });
    steps += stepsPerRun;
  }
  for (let i = 1; i <= 6 && mode !== 'adapt'; i++) {
    if (mode === 'segment') await page.evaluate(() => window.sclTest.forget());
    await page.click(`#gallery .thumb:nth-child(${i})`);
    await fineMaskShown(page);
  }
  rounds++;
}
const warm = rows[Math.min(2, rows.length - 1)], last = rows.at(-1);
for (const k of ['wasm', 'worker', 'page'].filter((k) => rows[0][k] !== null)) {
  console.log(`${k}: ${mb(warm[k])} MiB at ${warm.min.toFixed(1)} min -> ${mb(last[k])} MiB at ${last.min.toFixed(1)} min (${(100 * (last[k] / warm[k] - 1)).toFixed(1)}% after warm-up)`);
}
await browser.close();
server.close();
