// Page benchmark: cold load to first mask and per-stage times of the built page (dist/), on the
// CPU path (Flex) and on WebGPU (headless Chromium's SwiftShader adapter, --enable-unsafe-webgpu),
// and the time of fine-tuning steps. Prints numbers; asserts nothing.
//   node tests/page/bench.mjs [IMAGE] [--runs N]
import fs from 'node:fs';
import path from 'node:path';
import { serveDist, launchChromium } from './serve.mjs';

const args = process.argv.slice(2);
const runs = Number(args.includes('--runs') ? args[args.indexOf('--runs') + 1] : 3);
const image = args.find((a) => !a.startsWith('--') && a !== String(runs))
  || (fs.existsSync('../shared/data/kvasir-seg/images') ? path.join('../shared/data/kvasir-seg/images', fs.readdirSync('../shared/data/kvasir-seg/images').sort()[0]) : null);
if (!image) { console.error('give an image path'); process.exit(2); }
const server = await serveDist();
const { origin } = server;
const bytes = [...fs.readFileSync(image)];
console.log(`image ${image}`);

for (const backend of ['flex', 'webgpu']) {
  const browser = await launchChromium({ webgpu: backend === 'webgpu' });

  const page = await browser.newPage();
  const t0 = Date.now();
  await page.goto(`${origin}/index.html?backend=${backend}`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 900_000 });
  const ready = Date.now();
  await page.evaluate(async ({ bytes, name }) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], name));
    document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { bytes, name: path.basename(image) });
  await page.waitForSelector('figure[data-stage="fine"] canvas', { timeout: 900_000 });
  const first = Date.now();
  console.log(`\n[${backend}] ${await page.textContent('#backend-badge')} | ${await page.textContent('#adapter')}`);
  console.log(`  model ready ${((ready - t0) / 1000).toFixed(1)} s, first mask ${((first - t0) / 1000).toFixed(1)} s after opening the page`);
  console.log(`  first:  ${await page.textContent('#timings')}`);
  for (let i = 0; i < runs; i++) {
    // Re-run the selected image (the model select re-segments it).
    await page.evaluate(() => { document.querySelector('#stages').replaceChildren(); });
    await page.selectOption('#model-select', 'scl');
    await page.dispatchEvent('#model-select', 'change');
    await page.waitForSelector('figure[data-stage="fine"] canvas', { timeout: 900_000 });
    console.log(`  run ${i + 1}:  ${await page.textContent('#timings')}`);
  }
  await page.fill('#tune-steps', '3');
  await page.fill('#tune-batch', '2');
  const tt = Date.now();
  await page.click('#tune-start');
  await page.waitForFunction(() => /done/.test(document.getElementById('tune-text').textContent), null, { timeout: 900_000 });
  console.log(`  adaptation (page default: AdaBN + 3 inpainting steps, batch 2): ${((Date.now() - tt) / 1000).toFixed(1)} s including before/after masks | ${await page.textContent('#tune-text')}`);
  if (backend === 'flex') await page.screenshot({ path: '/tmp/scl-page.png', fullPage: true });
  await browser.close();
}
server.close();
