// Adaptation in the page on real images, as a clinician would do it (issue 10; needs ../shared,
// not part of scripts/test.sh): serves dist/ (cross-origin isolated, so the CPU path runs on
// every core), opens the page at the adaptation study's working size, adds CVC-ClinicDB's
// `adapt` frames through the file picker (no masks), runs the panel's default objective with
// its default settings, and exports the adapted weights (f32) for `scl eval`
// (scripts/page-adapt-study.sh scores them on the `test` frames and compares with `scl adapt`).
//
//   node tests/page/adapt-cvc.mjs DATA OUT.bpk [SIZE] [OBJECTIVE]
import fs from 'node:fs';
import path from 'node:path';
import { serveDist, launchChromium } from './serve.mjs';

function fail(msg) { console.error(`page adaptation FAILED: ${msg}`); process.exit(1); }
const log = (...a) => console.log('[page-adapt]', ...a);

const [data, out, size = '160', objective = ''] = process.argv.slice(2);
if (!data || !out) fail('usage: node tests/page/adapt-cvc.mjs DATA OUT.bpk [SIZE] [OBJECTIVE]');
const split = JSON.parse(fs.readFileSync(path.join(data, 'split.json'), 'utf8'));
const names = fs.readdirSync(path.join(data, 'images'));
const files = split.adapt.map((stem) => {
  const f = names.find((n) => n.slice(0, n.lastIndexOf('.')) === stem);
  if (!f) fail(`no image for ${stem}`);
  return path.join(data, 'images', f);
});

const server = await serveDist({ isolated: true });
const browser = await launchChromium();
const context = await browser.newContext({ acceptDownloads: true });
const page = await context.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
try {
  await page.goto(`${server.origin}/index.html?size=${size}`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  log('backend:', await page.textContent('#backend-badge'));
  const t0 = Date.now();
  await page.setInputFiles('#file-input', files);
  await page.waitForFunction((n) => document.querySelectorAll('#gallery .thumb').length === n, files.length, { timeout: 600_000 });
  log(`${files.length} images added in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (objective) await page.selectOption('#tune-objective', objective);
  const chosen = await page.inputValue('#tune-objective');
  await page.waitForFunction((o) => document.getElementById('tune-desc').textContent.startsWith(`${o}:`), chosen, { timeout: 120_000 });
  log('objective:', await page.textContent('#tune-desc'));
  const settings = await page.evaluate(() => ['tune-steps', 'tune-lr', 'tune-batch', 'tune-crop'].map((id) => `${id.slice(5)} ${document.getElementById(id).value}`).join(', '));
  log('settings:', settings);
  const tt = Date.now();
  await page.click('#tune-start');
  await page.waitForFunction(() => /done|stopped/.test(document.getElementById('tune-text').textContent), null, { timeout: 1_800_000 });
  const seconds = (Date.now() - tt) / 1000;
  const text = await page.textContent('#tune-text');
  log('adaptation:', text, `(${seconds.toFixed(1)} s from the click)`);
  if (/stopped/.test(text)) fail('the collapse guard stopped the run');
  await page.uncheck('#export-f16');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 600_000 }), page.click('#export')]);
  fs.copyFileSync(await download.path(), out);
  log(`exported ${out}: ${fs.statSync(out).size} bytes`);
  fs.writeFileSync(`${out}.json`, JSON.stringify({ objective: chosen, settings, seconds, text, images: files.length, size: Number(size) }, null, 1));
  console.log('page adaptation done');
} catch (e) {
  console.error(consoleLines.slice(-30).join('\n'));
  fail(e.stack || e.message);
} finally {
  await browser.close();
  server.close();
}
