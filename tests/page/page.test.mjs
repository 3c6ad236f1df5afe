// Page test: serves dist/ on localhost, opens it in headless Chromium (playwright-core, Debian's
// Chromium), drops an image, waits for the fine mask, checks the overlay canvas, gives the image
// its mask (then measured, not trained on), adapts on a second image (AdaBN, two steps, prior
// matching), exports the weights, and checks that no request left the page's origin.
// Run after scripts/web.sh: `node tests/page/page.test.mjs [isolated | not-isolated]`: served
// cross-origin isolated (the default) the CPU path must run the multi-threaded module on every
// core Chromium reports; not isolated, the single-threaded module, and the page says why.
import fs from 'node:fs';
import path from 'node:path';
import { root, serveDist, launchChromium, syntheticPng, nativeFineMask } from './serve.mjs';

function fail(msg) { console.error(`page test FAILED: ${msg}`); process.exit(1); }
const log = (...a) => console.log('[page]', ...a);

if (!fs.existsSync(path.join(root, 'index.html'))) fail(`${root}/index.html is missing: run scripts/web.sh first`);

const mode = process.argv[2] || 'isolated';
if (!['isolated', 'not-isolated'].includes(mode)) fail(`unknown mode ${mode}: isolated or not-isolated`);
const server = await serveDist({ isolated: mode === 'isolated' });
const { origin } = server;
log('serving', root, 'at', origin);

const browser = await launchChromium();
const context = await browser.newContext({ acceptDownloads: true });
const requests = [];
const foreign = [];
context.on('request', (r) => {
  requests.push(r.url());
  const u = r.url();
  if (!(u.startsWith(origin) || u.startsWith('blob:') || u.startsWith('data:'))) foreign.push(u);
});
const page = await context.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

try {
  const t0 = Date.now();
  // Working size 64: the dropped 64x64 image then reaches the network unresized, so the page's
  // mask can be compared with the native result on the same image (tests/fixtures).
  await page.goto(`${origin}/index.html?size=64`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  const tReady = Date.now();
  const badge = await page.textContent('#backend-badge');
  const adapter = await page.textContent('#adapter');
  log(`model ready after ${((tReady - t0) / 1000).toFixed(1)} s on`, badge, '|', adapter);
  const cores = Math.min(16, await page.evaluate(() => navigator.hardwareConcurrency));
  const threads = mode === 'isolated' && cores > 1 ? `${cores} threads` : '1 thread';
  if (!badge.includes(`CPU · Flex (WASM SIMD, ${threads})`)) fail(`the badge should say ${threads}: ${badge}`);
  if (mode === 'not-isolated' && !adapter.includes('one thread: the page is not cross-origin isolated')) fail(`the page does not say why it runs one thread: ${adapter}`);

  // Drop an image on the drop zone, as a user would.
  const png = syntheticPng(64, 64);
  await page.evaluate(async (bytes) => {
    const file = new File([new Uint8Array(bytes)], 'synthetic-disc.png', { type: 'image/png' });
    const dt = new DataTransfer();
    dt.items.add(file);
    document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [...png]);
  await page.waitForSelector('figure[data-stage="fine"] canvas', { timeout: 600_000 });
  log(`first mask ${((Date.now() - tReady) / 1000).toFixed(1)} s after ready; cold load to first mask ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  log('timings:', await page.textContent('#timings'));
  const stages = await page.$$eval('#stages figure', (f) => f.map((x) => x.dataset.stage));
  log('stages shown:', stages.join(', '));
  for (const s of ['input', 'coarse', 'masked', 'gate1', 'gate5', 'inpainted', 'composite', 'correction', 'fine']) {
    if (!stages.includes(s)) fail(`stage ${s} is not shown`);
  }

  // The correction card: sky blue where the fine mask has lesion and the coarse mask (its
  // picture: round(255 p), so p >= 0.5 is >= 128) has not, orange where the reverse, and the
  // timing line's added/removed areas count the same pixels.
  const corr = await page.evaluate(() => {
    const px = (k) => { const c = document.querySelector(`figure[data-stage="${k}"] canvas`); return c.getContext('2d').getImageData(0, 0, c.width, c.height).data; };
    const [cd, fd, xd] = [px('coarse'), px('fine'), px('correction')];
    let added = 0, removed = 0, wrong = 0;
    for (let i = 0; i < xd.length; i += 4) {
      const c = cd[i] >= 128, f = fd[i] > 127;
      const blue = xd[i] === 86 && xd[i + 1] === 180 && xd[i + 2] === 233;
      const orange = xd[i] === 230 && xd[i + 1] === 159 && xd[i + 2] === 0;
      added += blue; removed += orange;
      wrong += (f && !c) !== blue || (c && !f) !== orange;
    }
    return { added, removed, wrong, total: xd.length / 4, legend: !!document.querySelector('figure[data-stage="correction"] .swatch') };
  });
  log('correction card:', JSON.stringify(corr));
  if (corr.wrong > 0) fail(`the correction card disagrees with the coarse and fine masks on ${corr.wrong} pixels`);
  if (!corr.legend) fail('the correction card has no legend');
  const pct = (n) => (100 * n / corr.total).toFixed(1);
  const line = await page.textContent('#timings');
  if (!line.includes(`stage 2 added ${pct(corr.added)}%, removed ${pct(corr.removed)}%`)) fail(`the timing line does not give the added/removed areas (${pct(corr.added)}%, ${pct(corr.removed)}%): ${line}`);

  // The overlay is tinted exactly where the fine mask is, and the mask is where the native
  // library puts it on the same image (tests/fixtures/forward_64.f32, computed by
  // tests/native/fixture.rs).
  const nativeFine = nativeFineMask();
  await page.fill('#opacity', '1');
  await page.dispatchEvent('#opacity', 'input');
  const check = await page.evaluate((nativeFine) => {
    const o = document.getElementById('overlay');
    const f = document.querySelector('figure[data-stage="fine"] canvas');
    const od = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
    const fd = f.getContext('2d').getImageData(0, 0, f.width, f.height).data;
    let tinted = 0, masked = 0, agree = 0, agreeNative = 0;
    for (let i = 0; i < od.length; i += 4) {
      const isTint = od[i] === 255 && od[i + 1] === 40 && od[i + 2] === 40;
      const isMask = fd[i] > 127;
      tinted += isTint; masked += isMask; agree += isTint === isMask;
      agreeNative += isTint === nativeFine[i / 4];
    }
    return { tinted, masked, agree, agreeNative, total: od.length / 4, w: o.width, h: o.height };
  }, nativeFine);
  log('overlay:', JSON.stringify(check));
  if (check.masked === 0) fail('the fine mask is empty');
  if (check.agree !== check.total) fail('overlay tint does not match the fine mask');
  if (check.total !== 64 * 64) fail(`the overlay is ${check.w}x${check.h}, not 64x64`);
  // The PNG holds the image in 8 bits (the fixture's input is float): pixels whose probability
  // is within ~0.01 of 0.5 may flip. 98% agreement catches any real difference.
  if (check.agreeNative < 0.98 * check.total) fail(`the mask agrees with the native one on only ${check.agreeNative} of ${check.total} pixels`);

  // Adaptation. The image gets its ground-truth mask: it is then only measured, never trained
  // on, so with no other image there is nothing to adapt to.
  await page.setInputFiles('#gt-input', { name: 'synthetic-disc_mask.png', mimeType: 'image/png', buffer: syntheticPng(64, 64, true) });
  await page.waitForFunction(() => /Dice/.test(document.getElementById('scores').textContent), null, { timeout: 120_000 });
  log('scores:', await page.textContent('#scores'));
  await page.click('#tune-start');
  await page.waitForFunction(() => /only used to measure/.test(document.getElementById('messages').textContent), null, { timeout: 120_000 });
  // A second image without a mask: AdaBN, then two inpainting steps on it alone.
  await page.evaluate(async (bytes) => {
    const file = new File([new Uint8Array(bytes)], 'unlabeled.png', { type: 'image/png' });
    const dt = new DataTransfer();
    dt.items.add(file);
    document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [...syntheticPng(64, 64)]);
  await page.waitForFunction(() => document.querySelectorAll('#gallery .thumb').length === 2, null, { timeout: 120_000 });
  const objectives = await page.$$eval('#tune-objective option', (o) => o.map((x) => x.value));
  log('objectives:', objectives.join(', '));
  for (const o of ['adabn', 'inpainting', 'tent', 'adabn+inpainting', 'adabn+prior']) if (!objectives.includes(o)) fail(`objective ${o} is not offered`);
  if (objectives[0] !== 'adabn+inpainting+prior') fail(`the default objective is ${objectives[0]}, not the best measured (adabn+inpainting+prior)`);
  await page.selectOption('#tune-objective', 'adabn+inpainting+prior');
  await page.waitForFunction(() => /^adabn\+inpainting\+prior:/.test(document.getElementById('tune-desc').textContent), null, { timeout: 120_000 });
  await page.fill('#tune-steps', '2');
  await page.fill('#tune-batch', '1');
  await page.selectOption('#tune-crop', '64');
  const tt = Date.now();
  await page.click('#tune-start');
  await page.waitForFunction(() => /done|stopped/.test(document.getElementById('tune-text').textContent), null, { timeout: 600_000 });
  const tuned = await page.textContent('#tune-text');
  log('adaptation:', tuned, `(${((Date.now() - tt) / 1000).toFixed(1)} s)`);
  // The steps, then prior matching's rounds: the end line gives the output bias and the
  // lesion fraction it reached.
  if (!/done in .* output bias [-+][0-9.]+, predicted lesion [0-9.]+% of the pixels \([0-9]+ rounds?\)/.test(tuned)) fail(`no prior-matching result in the adaptation line: ${tuned}`);
  const dice = await page.textContent('#tune-dice');
  log('dice:', dice);
  if (!/1 image\(s\) with masks: before [0-9.]+%, after [0-9.]+%/.test(dice)) fail(`no Dice before/after: ${dice}`);

  // Export the weights.
  await page.uncheck('#export-f16');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 600_000 }), page.click('#export')]);
  const file = await download.path();
  const bytes = fs.readFileSync(file);
  log(`exported ${download.suggestedFilename()}: ${bytes.length} bytes`);
  if (bytes.length < 100_000) fail('exported weights are too small');
  if (bytes.subarray(0, 4).toString('latin1') === '<!do') fail('export is HTML, not weights');

  // Bad input gets a message, not a broken page.
  await page.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await page.click('#gallery .thumb:last-child');
  await page.waitForFunction(() => /notes\.txt: .*not an image/.test(document.getElementById('messages').textContent), null, { timeout: 120_000 });
  log('bad file message:', (await page.textContent('#messages .msg.error')).replace('×', '').trim());

  log(`${requests.length} requests, all to ${origin}`);
  if (foreign.length) fail(`requests left the origin: ${foreign.join(', ')}`);
  console.log('page test passed');
} catch (e) {
  console.error(consoleLines.slice(-30).join('\n'));
  fail(e.stack || e.message);
} finally {
  await browser.close();
  server.close();
}
