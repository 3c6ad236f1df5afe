// Injected-fault page test (issue 12): with the page's test hooks (?test-hooks), the WebGPU
// device is reported lost (the page must restart on the CPU and say so), the worker dies in
// the middle of a segmentation and in the middle of fine-tuning (the page must notice, restart
// it, say so and keep the loaded images), and the weights fail to load at start (404, cut
// short, an image instead of weights: a clear message). Run after scripts/web.sh:
// `node tests/page/faults.test.mjs` (WebGPU from SwiftShader, as in the browser suite).
import fs from 'node:fs';
import path from 'node:path';
import { root, serveDist, launchChromium, syntheticPng } from './serve.mjs';

const log = (...a) => console.log('[faults]', ...a);
function fail(msg) { console.error(`fault page test FAILED: ${msg}`); process.exit(1); }
if (!fs.existsSync(path.join(root, 'index.html'))) fail(`${root}/index.html is missing: run scripts/web.sh first`);

const server = await serveDist();
const browser = await launchChromium({ webgpu: true });
const uncaught = [];
const watch = (page) => page.on('pageerror', (e) => uncaught.push(e.message));
const text = (page, sel) => page.textContent(sel);
const until = (page, re, timeout = 180_000) => page.waitForFunction(
  (src) => new RegExp(src).test(document.getElementById('messages').textContent), re.source, { timeout });

async function drop(page, name) {
  await page.setInputFiles('#file-input', { name, mimeType: 'image/png', buffer: syntheticPng(64, 64) });
}
async function segmentedNow(page, name) {
  await page.waitForFunction((n) => document.getElementById('image-name').textContent === n
    && !document.getElementById('stages').classList.contains('busy')
    && !!document.querySelector('figure[data-stage="fine"] canvas')
    && document.getElementById('loading').hidden, name, { timeout: 600_000 });
}

try {
  const page = await browser.newPage();
  watch(page);
  await page.goto(`${server.origin}/index.html?backend=webgpu&size=64&test-hooks`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  const badge = await text(page, '#backend-badge');
  log('ready on', badge);
  if (!/WebGPU/.test(badge)) fail(`the page did not start on WebGPU (${badge}): the device-loss path cannot be tested`);
  await drop(page, 'one.png');
  await segmentedNow(page, 'one.png');

  // 1. The GPU device is lost: the next pass fails, the page restarts on the CPU.
  await page.evaluate(() => window.sclTest.fault('device-lost'));
  await drop(page, 'two.png');
  await page.click('#gallery .thumb:nth-child(2)');
  await until(page, /Switching to the CPU backend/);
  await segmentedNow(page, 'two.png');
  const after = await text(page, '#backend-badge');
  log('device lost ->', after, '|', (await page.textContent('#messages .msg.error')).replace('×', '').trim());
  if (!/CPU/.test(after)) fail(`after the device loss the page runs on ${after}`);

  // 2. The worker dies in the middle of a segmentation (no reply, no error event).
  await page.evaluate(() => window.sclTest.fault('die-in-segment'));
  await drop(page, 'three.png');
  await page.click('#gallery .thumb:nth-child(3)');
  await until(page, /worker stopped unexpectedly.*your 3 image\(s\) are kept/);
  await segmentedNow(page, 'three.png');
  log('died in segmentation -> restarted,', await page.$$eval('#gallery .thumb', (t) => t.length), 'images kept, three.png segmented');

  // 3. The worker dies in the middle of fine-tuning.
  await page.evaluate(() => window.sclTest.fault('die-in-tune'));
  await page.selectOption('#tune-objective', 'inpainting');
  await page.waitForFunction(() => /^inpainting:/.test(document.getElementById('tune-desc').textContent));
  await page.fill('#tune-steps', '5');
  await page.fill('#tune-batch', '1');
  await page.selectOption('#tune-crop', '64');
  await page.evaluate(() => document.getElementById('messages').replaceChildren());
  await page.click('#tune-start');
  await until(page, /worker stopped unexpectedly.*your 3 image\(s\) are kept/);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  await page.waitForFunction(() => !document.getElementById('tune-start').disabled, null, { timeout: 600_000 });
  const thumbs = await page.$$eval('#gallery .thumb', (t) => t.length);
  log(`died in fine-tuning (${await text(page, '#tune-text')}) -> restarted, ${thumbs} images kept, fine-tuning can start again`);
  if (thumbs !== 3) fail(`${thumbs} images after the restart, expected 3`);
  await page.close();

  // 4. The weights fail to load at start: each gets a clear message.
  const weights = fs.readFileSync(path.join(root, 'weights/scl.bpk'));
  for (const [what, reply, pattern] of [
    ['404', { status: 404, body: 'not found' }, /Could not start the model: could not load the scl weights \(weights\/scl\.bpk: HTTP 404\)/],
    ['cut short', { status: 200, body: weights.subarray(0, 300_000) }, /Could not start the model: scl\.bpk: .*(truncated|cut short|corrupt)/i],
    ['an image', { status: 200, body: syntheticPng(64, 64) }, /Could not start the model: scl\.bpk: this is a Png image, not a weights file/],
  ]) {
    const p = await browser.newPage();
    watch(p);
    await p.route('**/weights/scl.bpk', (r) => r.fulfill({ ...reply, contentType: 'application/octet-stream' }));
    await p.goto(`${server.origin}/index.html?size=64`);
    await p.waitForFunction((src) => new RegExp(src).test(document.getElementById('load-text').textContent), pattern.source, { timeout: 300_000 });
    log(`weights ${what} at start:`, await text(p, '#load-text'));
    await p.close();
  }
  if (uncaught.length) fail(`uncaught errors:\n  ${uncaught.join('\n  ')}`);
  console.log('fault page test passed: device loss -> CPU, worker death in segmentation and in fine-tuning -> restart with images kept, 3 bad weights at start');
} catch (e) {
  fail(e.stack || e.message);
} finally {
  await browser.close();
  server.close();
}
