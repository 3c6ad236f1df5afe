// The page's network time per image on the CPU path (issue 11's speed table, beside ONNX
// Runtime Web): opens the built page (dist/) at working size SIZE on Flex, segments one image
// WARMUP + RUNS times on THREADS threads (1: the single-threaded module; more: the
// multi-threaded one, the page served cross-origin isolated) and prints one line like
// ../shared/bench/ortweb's:
//   page-flex threads=T size=S median_ms=X min_ms=Y
// where the time is the page's own stage times summed (stage 1, stage 2 + GFF, fine
// segmentation, inpainting + composite: the same two-stage pipeline ORT Web's graph runs;
// decoding and drawing the pictures excluded). Prints numbers; asserts nothing.
//   node tests/page/speed.mjs [SIZE] [RUNS] [WARMUP] [THREADS]     (SPEED_MODE=gallery: see below)
import { serveDist, launchChromium, syntheticPng, fineMaskShown } from './serve.mjs';

const size = Number(process.argv[2] || 160), runs = Number(process.argv[3] || 15), warmup = Number(process.argv[4] || 3);
const threads = Number(process.argv[5] || 1);
const server = await serveDist();
// CHROMIUM_ARGS (space-separated, read by serve.mjs) adds browser flags, e.g.
// "--js-flags=--no-liftoff" to compare WebAssembly tiers; SPEED_RUNS=1 prints every timed run
// in order and the per-stage medians.
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(`${server.origin}/index.html?backend=flex&size=${size}&threads=${threads}`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  const badge = await page.textContent('#backend-badge');
  if (!badge.includes(threads > 1 ? `${threads} threads` : '1 thread')) throw new Error(`asked for ${threads} thread(s), the page runs: ${badge}`);
  // SPEED_MODE=gallery: one image per run, added at once, segmented by clicking each in the
  // gallery in turn (a user going through a folder: the model stays loaded); the default
  // re-selects the model before each run (the worker reloads the weights and runs its warm-up
  // pass, then segments the one image again).
  const gallery = process.env.SPEED_MODE === 'gallery';
  const png = syntheticPng(size, size);
  const files = Array.from({ length: gallery ? warmup + runs : 1 }, (_, i) => ({ name: `speed-${i}.png`, mimeType: 'image/png', buffer: png }));
  await page.setInputFiles('#file-input', files);
  // The page draws the gallery while the files are checked: wait for every thumbnail.
  await page.waitForFunction((n) => document.querySelectorAll('#gallery .thumb').length === n, files.length);
  const times = [], stages = [];
  for (let i = 0; i < warmup + runs; i++) {
    if (i > 0) {
      await page.evaluate(() => { document.querySelector('#stages').replaceChildren(); });
      if (gallery) await page.click(`#gallery .thumb >> nth=${i}`);
      else await page.dispatchEvent('#model-select', 'change');
    }
    await fineMaskShown(page);
    const line = await page.textContent('#timings');
    const ms = (label) => Number(new RegExp(`${label} (\\d+) ms`).exec(line)[1]);
    const parts = [ms('stage 1: encoder \\+ coarse mask'), ms('stage 2: encode masked image \\+ GFF'), ms('fine segmentation'), ms('inpainting \\+ composite')];
    if (i >= warmup) { times.push(parts.reduce((a, b) => a + b)); stages.push(parts); }
  }
  if (process.env.SPEED_RUNS) {
    const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    console.log(`runs_ms=${times.join(',')} stage_medians_ms=${[0, 1, 2, 3].map((k) => med(stages.map((p) => p[k]))).join('/')}`);
  }
  times.sort((a, b) => a - b);
  console.log(`page-flex threads=${threads} size=${size} median_ms=${times[times.length >> 1]} min_ms=${times[0]}`);
} finally {
  await browser.close();
  server.close();
}
