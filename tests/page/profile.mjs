// Where the page's CPU path spends its time, per thread (issue 11: the multi-threaded page's
// scaling): opens the built page (dist/) on Flex at SIZE with THREADS threads, segments one
// image WARMUP times, then samples every worker of the page (the module worker and, on the
// multi-threaded build, the pool's workers) with V8's CPU profiler over RUNS segmentations,
// and prints each thread's busiest functions (self time). Build the module with symbols for
// readable names (RUSTFLAGS without `-C strip=symbols`); prints numbers, asserts nothing.
//   node tests/page/profile.mjs [SIZE] [RUNS] [WARMUP] [THREADS] [TOP]
import { serveDist, launchChromium, syntheticPng, fineMaskShown } from './serve.mjs';
import { createRequire } from 'node:module';

const { ws: WebSocket } = createRequire(import.meta.url)('playwright-core/lib/utilsBundle');
const [size, runs, warmup, threads, top] = [224, 10, 3, 2, 12].map((d, i) => Number(process.argv[i + 2] || d));
const port = 9300 + Math.floor(Math.random() * 500);
const server = await serveDist();
const browser = await launchChromium({ args: [`--remote-debugging-port=${port}`] });

// The browser's CDP endpoint, flat sessions: every worker is attached with its own sessionId.
const version = await (await fetch(`http://127.0.0.1:${port}/json/version`)).json();
const cdp = new WebSocket(version.webSocketDebuggerUrl);
await new Promise((ok) => cdp.on('open', ok));
let nextId = 1;
const pending = new Map();
const workers = new Map(); // sessionId -> title
const send = (method, params = {}, sessionId) => new Promise((ok, fail) => {
  const id = nextId++;
  pending.set(id, { ok, fail });
  cdp.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
});
const attach = { autoAttach: true, waitForDebuggerOnStart: false, flatten: true };
cdp.on('message', (raw) => {
  const msg = JSON.parse(raw.toString());
  if (msg.id && pending.has(msg.id)) {
    const { ok, fail } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) fail(new Error(msg.error.message)); else ok(msg.result);
  } else if (msg.method === 'Target.attachedToTarget') {
    const { sessionId, targetInfo } = msg.params;
    send('Target.setAutoAttach', attach, sessionId).catch(() => {});
    if (targetInfo.type === 'worker') {
      workers.set(sessionId, `${targetInfo.type} ${workers.size} ${targetInfo.url.split('/').pop()}`);
      send('Profiler.enable', {}, sessionId).then(() => send('Profiler.setSamplingInterval', { interval: 100 }, sessionId)).catch(() => {});
    }
  }
});
await send('Target.setAutoAttach', attach);

try {
  const page = await browser.newPage();
  await page.goto(`${server.origin}/index.html?backend=flex&size=${size}&threads=${threads}`);
  await page.waitForSelector('#loading', { state: 'hidden', timeout: 600_000 });
  console.log(`${await page.textContent('#backend-badge')}; ${workers.size} workers`);
  // Each round re-selects the model, as tests/page/speed.mjs does: the worker reloads the
  // weights and runs its warm-up pass (the same staged passes), then segments the image, so a
  // round holds two forward passes.
  await page.setInputFiles('#file-input', { name: 'profile.png', mimeType: 'image/png', buffer: syntheticPng(size, size) });
  let first = true;
  const segment = async () => {
    if (!first) {
      await page.evaluate(() => { document.querySelector('#stages').replaceChildren(); });
      await page.dispatchEvent('#model-select', 'change');
    }
    first = false;
    await fineMaskShown(page);
  };
  for (let i = 0; i < warmup; i++) await segment();
  const sessions = [...workers.keys()];
  await Promise.all(sessions.map((s) => send('Profiler.start', {}, s)));
  const t0 = Date.now();
  for (let i = 0; i < runs; i++) await segment();
  const wall = Date.now() - t0;
  const profiles = await Promise.all(sessions.map((s) => send('Profiler.stop', {}, s)));
  console.log(`${runs} segmentations in ${wall} ms (page round trips included)`);
  profiles.forEach(({ profile }, i) => report(workers.get(sessions[i]), profile));
} finally {
  cdp.close();
  await browser.close();
  server.close();
}

// Self time per function name (ms), the thread's total sampled time and its busiest functions.
function report(title, profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, k) => {
    const f = byId.get(id).callFrame.functionName || '(anonymous)';
    self.set(f, (self.get(f) || 0) + profile.timeDeltas[k] / 1000);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = ['(idle)', '(program)', '(garbage collector)'].reduce((a, f) => a + (self.get(f) || 0), 0);
  console.log(`\n== ${title}: ${total.toFixed(0)} ms sampled, ${(total - idle).toFixed(0)} ms in code`);
  [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .forEach(([f, ms]) => console.log(`${ms.toFixed(1).padStart(8)} ms  ${f.slice(0, 140)}`));
}
