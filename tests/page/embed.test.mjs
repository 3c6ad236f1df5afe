// Embedding example test (issue 11): www/embed.html, the smallest page built on the scl
// package, loads the model, segments the synthetic image at 64 px with the same fine mask as
// the native library (tests/fixtures/forward_64.f32), reports a bad file in words, and offers
// the mask as a PNG. Run after scripts/web.sh: `node tests/page/embed.test.mjs`.
import { serveDist, launchChromium, syntheticPng, nativeFineMask } from './serve.mjs';

const log = (...a) => console.log('[embed]', ...a);
function fail(msg) { console.error(`embed page test FAILED: ${msg}`); process.exit(1); }

const server = await serveDist();
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const uncaught = [];
  page.on('pageerror', (e) => uncaught.push(e.message));
  await page.goto(`${server.origin}/embed.html?backend=flex&size=64`);
  await page.waitForFunction(() => /^Ready/.test(document.getElementById('status').textContent), null, { timeout: 600_000 });
  log(await page.textContent('#status'));
  await page.setInputFiles('#file', { name: 'disc.png', mimeType: 'image/png', buffer: syntheticPng(64, 64) });
  await page.waitForFunction(() => /lesion on/.test(document.getElementById('status').textContent), null, { timeout: 600_000 });
  log(await page.textContent('#status'));
  const got = await page.evaluate(() => {
    const c = document.querySelector('canvas[data-stage="fine"]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { stages: [...document.querySelectorAll('canvas')].map((x) => x.dataset.stage), fine: [...d].filter((_, i) => i % 4 === 0).map((v) => v > 127) };
  });
  if (got.stages.join() !== 'input,coarse,correction,fine') fail(`stages shown: ${got.stages}`);
  const native = nativeFineMask();
  const agree = got.fine.filter((v, i) => v === native[i]).length;
  log(`fine mask agrees with the native one on ${agree} of ${native.length} pixels`);
  // As in page.test.mjs: the PNG holds the image in 8 bits, pixels within ~0.01 of 0.5 may flip.
  if (agree < 0.98 * native.length) fail('the fine mask differs from the native one');
  const href = await page.getAttribute('#mask', 'href');
  const png = await page.evaluate(async (u) => [...new Uint8Array(await (await fetch(u)).arrayBuffer()).slice(0, 4)], href);
  if (png.join() !== '137,80,78,71') fail('the mask link is not a PNG');
  await page.setInputFiles('#file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not an image') });
  await page.waitForFunction(() => /^notes\.png: /.test(document.getElementById('status').textContent), null, { timeout: 60_000 });
  log(await page.textContent('#status'));
  if (uncaught.length) fail(`uncaught errors: ${uncaught.join(' | ')}`);
  log('PASS');
} finally {
  await browser.close();
  server.close();
}
