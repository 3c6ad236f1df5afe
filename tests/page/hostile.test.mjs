// Hostile-file page test (issue 12): drops, in one go, the odd files of tests/page/hostile
// (empty, truncated, text named .png, SVG, PDF, decompression bombs, 1x1, 4096x4096, 16-bit,
// grey, RGBA, CMYK, animated GIF, EXIF-rotated, ...) and a weights file, and checks that the
// page names every one in its report, with the reason for each refused file and the notes of
// each added one (expectations in hostile/expect.json, written by make_hostile.py); that every
// added image segments; that an image given as weights, truncated weights and a mask of the
// wrong size each get their message while the model keeps working; that nothing reaches the
// console as an uncaught error; and that a good image dropped afterwards is segmented as the
// native library segments it. Run after scripts/web.sh: `node tests/page/hostile.test.mjs`.
import fs from 'node:fs';
import path from 'node:path';
import { root, serveDist, launchChromium, syntheticPng, nativeFineMask } from './serve.mjs';

const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'hostile');
const expect = JSON.parse(fs.readFileSync(path.join(dir, 'expect.json'), 'utf8'));
const failures = [];
const check = (ok, msg) => { if (!ok) failures.push(msg); };
const log = (...a) => console.log('[hostile]', ...a);
function fail(msg) { console.error(`hostile-file page test FAILED: ${msg}`); process.exit(1); }
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

if (!fs.existsSync(path.join(root, 'index.html'))) fail(`${root}/index.html is missing: run scripts/web.sh first`);
const server = await serveDist();
const browser = await launchChromium();
const page = await browser.newPage();
const uncaught = [];
page.on('pageerror', (e) => uncaught.push(`pageerror: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') uncaught.push(`console.error: ${m.text()}`); });
const messages = () => page.textContent('#messages');

// Waits for the selected image's segmentation to end; returns null or the error shown.
async function segmented(name) {
  await page.waitForFunction((n) => document.getElementById('image-name').textContent === n
    && !document.getElementById('stages').classList.contains('busy'), name, { timeout: 300_000 });
  return page.evaluate(() => document.querySelector('figure[data-stage="fine"] canvas') ? null : document.getElementById('messages').textContent);
}

try {
  await page.goto(`${server.origin}/index.html?size=64`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  log('model ready:', await page.textContent('#backend-badge'));

  // ---- one drop of every odd file, plus the model's own weights file ----
  const dropped = Object.entries(expect).filter(([, e]) => e.add !== null)
    .map(([name]) => ({ name, mimeType: 'application/octet-stream', buffer: fs.readFileSync(path.join(dir, name)) }));
  dropped.push({ name: 'model-weights.bpk', mimeType: 'application/octet-stream', buffer: fs.readFileSync(path.join(root, 'weights/scl.bpk')) });
  expect['model-weights.bpk'] = { add: false, message: 'weights file.*Import weights' };
  const t0 = Date.now();
  await page.setInputFiles('#file-input', dropped);
  await page.waitForFunction(() => /could not be used/.test(document.getElementById('messages').textContent), null, { timeout: 300_000 });
  const lines = await page.$$eval('#messages li', (li) => li.map((x) => x.textContent));
  log(`${dropped.length} files dropped, report after ${((Date.now() - t0) / 1000).toFixed(1)} s:`);
  for (const l of lines) console.log('   ', l);
  const added = [];
  for (const { name } of dropped) {
    const e = expect[name];
    const line = lines.find((l) => l.startsWith(`${name}: `));
    if (!line) { check(false, `${name} is not named in the report`); continue; }
    const verdict = line.slice(name.length + 2);
    check(verdict.startsWith(e.add ? 'added' : 'not added'), `${name}: expected ${e.add ? 'added' : 'refused'}, got "${verdict}"`);
    check(new RegExp(e.message).test(verdict), `${name}: "${verdict}" does not match /${e.message}/`);
    if (e.add) added.push(name);
  }
  const thumbs = await page.$$eval('#gallery .thumb', (t) => t.map((x) => x.title));
  check(JSON.stringify(thumbs) === JSON.stringify(added), `gallery holds ${thumbs.length} images, expected the ${added.length} added ones`);

  // ---- every added image segments ----
  const t1 = Date.now();
  for (let i = 0; i < thumbs.length; i++) {
    await page.click(`#gallery .thumb:nth-child(${i + 1})`);
    const error = await segmented(thumbs[i]);
    check(error === null, `${thumbs[i]} did not segment: ${error}`);
  }
  log(`${thumbs.length} added images segmented in ${((Date.now() - t1) / 1000).toFixed(1)} s`);

  // ---- a mask of another size than its image ----
  const im64 = thumbs.indexOf('photo.bmp');
  await page.click(`#gallery .thumb:nth-child(${im64 + 1})`);
  await segmented('photo.bmp');
  const maskName = 'mask-wrong-size_mask.png';
  await page.setInputFiles('#gt-input', { name: maskName, mimeType: 'image/png', buffer: fs.readFileSync(path.join(dir, maskName)) });
  await page.waitForFunction((n) => document.getElementById('messages').textContent.includes(n), maskName, { timeout: 60_000 });
  const maskMsg = (await messages()).match(new RegExp(`ground truth ${escape(maskName)}: [^×]*`))?.[0] ?? '';
  log('mask:', maskMsg);
  check(new RegExp(expect[maskName].message).test(maskMsg), `mask of the wrong size: "${maskMsg}"`);

  // ---- an image given as weights, and truncated weights: refused, the model stays ----
  const weights = fs.readFileSync(path.join(root, 'weights/scl.bpk'));
  for (const [name, buffer, pattern] of [
    ['photo-as-weights.bpk', fs.readFileSync(path.join(dir, 'photo.bmp')), /Bmp image, not a weights file/],
    ['cut-short.bpk', weights.subarray(0, 200_000), /truncated|corrupt|cut short|missing/i],
  ]) {
    await page.setInputFiles('#import', { name, mimeType: 'application/octet-stream', buffer });
    await page.waitForFunction((n) => document.getElementById('messages').textContent.includes(`${n}:`), name, { timeout: 60_000 });
    const text = (await messages()).match(new RegExp(`${escape(name)}: [^×]*`))?.[0] ?? '';
    log('import:', text);
    check(pattern.test(text), `importing ${name}: "${text}" does not match ${pattern}`);
  }

  // ---- a good image afterwards is segmented as natively (tests/fixtures/forward_64.f32) ----
  await page.setInputFiles('#file-input', { name: 'good-after.png', mimeType: 'image/png', buffer: syntheticPng(64, 64) });
  await page.waitForFunction(() => [...document.querySelectorAll('#gallery .thumb')].some((t) => t.title === 'good-after.png'), null, { timeout: 60_000 });
  await page.click('#gallery .thumb:last-child');
  check(await segmented('good-after.png') === null, 'the good image did not segment');
  const nativeFine = nativeFineMask();
  const agree = await page.evaluate((nativeFine) => {
    const f = document.querySelector('figure[data-stage="fine"] canvas');
    const d = f.getContext('2d').getImageData(0, 0, f.width, f.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) n += (d[i] > 127) === nativeFine[i / 4];
    return n / (d.length / 4);
  }, nativeFine);
  log(`good image afterwards: mask agrees with the native one on ${(100 * agree).toFixed(1)}% of pixels`);
  check(agree >= 0.98, `the good image's mask agrees with the native one on only ${(100 * agree).toFixed(1)}%`);

  check(uncaught.length === 0, `uncaught errors on the console:\n  ${uncaught.join('\n  ')}`);
  if (failures.length) fail(`\n  ${failures.join('\n  ')}`);
  console.log(`hostile-file page test passed: ${dropped.length} files in one drop (${added.length} added, ${dropped.length - added.length} refused), 2 bad weights files, 1 wrong-size mask`);
} catch (e) {
  console.error(uncaught.slice(-20).join('\n'));
  fail(e.stack || e.message);
} finally {
  await browser.close();
  server.close();
}
