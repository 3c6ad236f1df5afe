// The model's Web Worker: owns the WebAssembly module (the Rust library) and runs every pass,
// so the page never freezes. Messages: {id, cmd, ...} in; {id, ok, result | error} out, plus
// {type: 'progress' | 'tune' | 'fatal'} notifications.

let engine = null;        // the selected model
let other = null;         // the other model, for comparisons (lazily loaded)
let models = {};          // name -> url
let current = 'scl';
let tune = null;          // fine-tuning session state
const weightsCache = {};  // name -> Uint8Array (the original weights, kept to switch back)
let hooks = false;        // test-only fault injection (the page's ?test-hooks)
const faults = new Set(); // armed faults: 'die-in-segment', 'die-in-tune', 'device-lost'

// A test hook: the worker stops dead in the middle of a call, as an out-of-memory kill would
// (no reply, no error event); the page notices through its Web Lock.
async function dieIf(fault) {
  if (!faults.has(fault)) return;
  self.close();
  await new Promise(() => {});
}

// Two builds of the library: pkg/ (one thread; WebGPU and the Flex CPU backend) and pkg-mt/
// (Flex only, its kernels on a pool of Web Workers sharing the module's memory: wasm threads
// need SharedArrayBuffer, which browsers give only to cross-origin isolated pages, and wgpu's
// WebGPU backend does not build with them). `start` picks one before anything else runs;
// a dropped file may be checked before that, and then waits for the same module.
let Engine = null;
let wasmReady = null;
let build = { name: 'pkg', threads: 1, why: '' };
const MAX_THREADS = 16;

// Imports and instantiates one build; with `threads` > 1, starts its pool and returns the
// pool's size.
async function loadBuild(dir, threads) {
  const mod = await import(`./${dir}/scl.js`);
  const wasm = await mod.default();
  if (threads > 1) await mod.initThreadPool(threads);
  Engine = mod.Engine;
  return { wasm, threads: threads > 1 ? mod.cpu_threads() : 1 };
}

// The backend the page asked for ('auto' | 'webgpu' | 'flex') given the adapter found, and
// what to tell the user when it is not the one asked for.
function chooseBackend(backend, gpu) {
  if (backend === 'auto') return { chosen: gpu.gpu ? 'webgpu' : 'flex', note: gpu.gpu ? '' : `CPU chosen: ${gpu.reason}.` };
  if (backend === 'webgpu' && !gpu.adapter) return { chosen: 'flex', note: `WebGPU unavailable (${gpu.reason}); running on the CPU instead.` };
  return { chosen: backend, note: '' };
}

// Why the CPU backend runs one thread ('' when the multi-threaded build can run): `threads` is
// what the page asks for (0: as many as the machine has), `cores` what that comes to.
function oneThreadReason(threads, cores) {
  if (cores < 2) return threads === 1 ? 'one thread asked for' : 'this machine reports one core';
  if (!self.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined') {
    return 'the page is not cross-origin isolated (its server sends no COOP/COEP headers), so there is no shared memory for threads';
  }
  return '';
}

// The backend, then the build: pkg-mt/ for the CPU backend when it can run, else pkg/.
async function pickBuild(backend, threads) {
  const gpu = await detectGpu();
  const choice = chooseBackend(backend, gpu);
  const cores = Math.max(1, Math.min(MAX_THREADS, threads || navigator.hardwareConcurrency || 1));
  let why = choice.chosen === 'webgpu' ? '' : oneThreadReason(threads, cores);
  if (choice.chosen !== 'webgpu' && !why) {
    try {
      const { wasm, threads: n } = await loadBuild('pkg-mt', cores);
      build = { name: 'pkg-mt', threads: n, why: '' };
      return { gpu, ...choice, wasm };
    } catch (e) {
      why = `the multi-threaded build did not load (${e.message || e})`;
    }
  }
  build = { name: 'pkg', threads: 1, why };
  return { gpu, ...choice, wasm: (await loadBuild('pkg', 1)).wasm };
}

const initWasm = () => (wasmReady ??= pickBuild('auto', 0)).then((r) => r.wasm);

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
const progress = (text, fraction) => post({ type: 'progress', text, fraction });

async function detectGpu() {
  if (!('gpu' in navigator) || !navigator.gpu) {
    return { gpu: false, adapter: null, reason: 'this browser has no WebGPU (navigator.gpu is missing)' };
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { gpu: false, adapter: null, reason: `requesting a WebGPU adapter failed: ${e.message || e}` };
  }
  if (!adapter) return { gpu: false, adapter: null, reason: 'WebGPU is present but offers no adapter' };
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.device, info.description]
    .filter(Boolean).join(' ') || 'unnamed adapter';
  const fallback = !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return {
    gpu: !fallback,
    fallback,
    adapter: name,
    reason: fallback ? `the only WebGPU adapter is a software one (${name}), slower than the CPU path` : '',
  };
}

async function fetchWeights(name) {
  if (weightsCache[name]) return weightsCache[name];
  const url = models[name];
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load the ${name} weights (${url}: HTTP ${res.status})`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    progress(`Loading ${name} weights: ${(got / 1e6).toFixed(1)} MB${total ? ` of ${(total / 1e6).toFixed(1)} MB` : ''}`,
      total ? 0.1 + 0.6 * got / total : 0.4);
  }
  const bytes = new Uint8Array(got);
  let off = 0;
  for (const c of chunks) { bytes.set(c, off); off += c.length; }
  weightsCache[name] = bytes;
  return bytes;
}

async function start({ backend, threads, modelUrls, model, size, lock, testHooks }) {
  // Synchronously first, so that a message handled while this one waits gets the same module.
  wasmReady ??= pickBuild(backend, threads);
  // Held until this worker dies: the page's request for the same lock then goes through.
  if (lock && navigator.locks) navigator.locks.request(lock, () => new Promise(() => {}));
  hooks = !!testHooks;
  models = modelUrls;
  current = model || 'scl';
  progress('Loading the WebAssembly module…', 0.02);
  let { gpu, chosen, note } = await wasmReady;
  const bytes = await fetchWeights(current);
  progress(`Initialising ${chosen === 'webgpu' ? 'WebGPU' : 'the CPU backend'}…`, 0.75);
  try {
    engine = await Engine.create(chosen, bytes, `${current}.bpk`);
  } catch (e) {
    if (chosen !== 'webgpu') throw e;
    note = `WebGPU failed to start (${e.message || e}); running on the CPU instead.`;
    chosen = 'flex';
    engine = await Engine.create(chosen, bytes, `${current}.bpk`);
  }
  other = null;
  progress('Warming up (first pass compiles kernels and allocates memory)…', 0.85);
  const warmMs = await engine.warm_up(size);
  progress('Ready', 1);
  return {
    backend: engine.backend(),
    module: build.name,
    threads: build.threads,
    threadsWhy: build.why,
    adapter: chosen === 'webgpu' ? gpu.adapter : null,
    fallbackAdapter: !!gpu.fallback,
    note,
    describe: engine.describe(),
    twoStage: engine.two_stage(),
    objectives: Engine.adapt_objectives(),
    warmMs,
  };
}

function transferables(result) {
  const list = [];
  for (const st of Object.values(result.stages || {})) list.push(st.rgba.buffer);
  if (result.fineProb) list.push(result.fineProb.buffer);
  if (result.maskPng) list.push(result.maskPng.buffer);
  return list;
}

async function segmentWith(eng, file, size) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  await dieIf('die-in-segment');
  if (faults.has('device-lost')) throw new Error('GPUDevice was lost (test hook)');
  return eng.segment(bytes, file.name, size);
}

async function otherEngine() {
  const name = current === 'scl' ? 'supervised' : 'scl';
  if (!other) {
    const bytes = await fetchWeights(name);
    other = { name, engine: await Engine.create(engine.backend(), bytes, `${name}.bpk`) };
  }
  return other;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Adaptation (crate::adapt, the code `scl adapt` runs): an AdaBN pass over every training
// image, then gradient steps on the batches the engine picks, then prior-matching rounds over
// every image. Images with a ground-truth mask are never trained on: they measure Dice before
// and after.
async function bytesOf(files) {
  return Promise.all(files.map((f) => f.arrayBuffer().then((b) => new Uint8Array(b))));
}

async function scoredDice(scored, size) {
  if (!scored.length) return null;
  let sum = 0;
  for (const { file, gt } of scored) {
    const r = await segmentWith(engine, file, size);
    const s = await engine.score(r.fineProb, r.width, r.height, r.origWidth, r.origHeight, new Uint8Array(await gt.arrayBuffer()), gt.name);
    sum += s.dice;
  }
  return sum / scored.length;
}

// Every training image once, a batch at a time while the run is not stopped: `each(bytes,
// names)`, then the progress message `message` with the images done.
async function eachBatch(t, each, message) {
  for (let i = 0; i < t.files.length && t.running; i += t.batch) {
    const batch = t.files.slice(i, i + t.batch);
    await each(await bytesOf(batch), batch.map((f) => f.name));
    post({ ...message, done: Math.min(i + t.batch, t.files.length), of: t.files.length });
    await sleep(0);
  }
}

async function adabnPass(t) {
  await eachBatch(t, (bytes, names) => engine.adapt_adabn(bytes, names), { type: 'tune-adabn' });
  t.adabnDone = true;
}

// Prior matching (crate::adapt::prior): rounds over every image until the engine says the
// predicted lesion fraction matches the training set's.
async function priorRounds(t) {
  for (let round = t.priorRounds.length + 1; t.running; round++) {
    engine.adapt_prior_round();
    await eachBatch(t, (bytes, names) => engine.adapt_prior(bytes, names), { type: 'tune-prior', round });
    if (!t.running) return;
    const r = engine.adapt_prior_end();
    t.priorRounds.push({ offset: r.offset, foreground: r.foreground });
    if (!r.again) break;
  }
  t.priorDone = true;
}

async function tuneLoop() {
  const t = tune;
  if (t.adabn && !t.adabnDone) await adabnPass(t);
  while (t.running && t.gradient && t.done < t.steps && !t.stopped) {
    const idx = Array.from(engine.adapt_next_batch(t.files.length));
    const batch = idx.map((i) => t.files[i]);
    const t0 = performance.now();
    const r = await engine.adapt_step(await bytesOf(batch), batch.map((f) => f.name));
    t.done = engine.adapt_steps();
    if (r.stopped) t.stopped = r.stopped;
    post({ type: 'tune', step: t.done, steps: t.steps, loss: r.loss, foreground: r.foreground, stopped: r.stopped, ms: performance.now() - t0 });
    await dieIf('die-in-tune');
    await sleep(0); // let a stop message in
  }
  const gradientDone = !t.gradient || t.done >= t.steps || !!t.stopped;
  if (t.running && t.adabnDone && gradientDone && !t.priorDone) await priorRounds(t);
  const finished = t.adabnDone && gradientDone && t.priorDone;
  t.running = false;
  const after = t.watch ? await segmentWith(engine, t.watch, t.size) : null;
  const diceAfter = finished ? await scoredDice(t.scored, t.size) : null;
  post({ type: 'tune-end', step: t.done, steps: t.steps, finished, stopped: t.stopped, seconds: (performance.now() - t.t0) / 1000, prior: t.priorRounds, after, diceBefore: t.diceBefore, diceAfter, scored: t.scored.length }, after ? transferables(after) : []);
}

const handlers = {
  start,
  async segment({ file, size, which }) {
    const eng = which === 'other' ? (await otherEngine()).engine : engine;
    const r = await segmentWith(eng, file, size);
    if (which === 'other') r.model = other.name;
    return r;
  },
  async score({ prob, width, height, origWidth, origHeight, file }) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    return engine.score(prob, width, height, origWidth, origHeight, bytes, file.name);
  },
  // Memory in use, for the soak script (tests/page/soak.mjs): the module's linear memory and
  // this worker's JS heap (Chromium only).
  async memory() {
    const wasm = await initWasm();
    return { wasmBytes: wasm.memory.buffer.byteLength, jsHeap: performance.memory ? performance.memory.usedJSHeapSize : null };
  },
  async 'test-fault'({ kind }) {
    if (!hooks) throw new Error('test hooks are off (open the page with ?test-hooks)');
    faults.add(kind);
    return { armed: kind };
  },
  // Decodes a dropped file without running the network: its size and notes, or why not.
  async inspect({ file }) {
    await initWasm();
    return Engine.inspect(new Uint8Array(await file.arrayBuffer()), file.name);
  },
  async 'switch-model'({ model, size }) {
    const bytes = await fetchWeights(model);
    const describe = await engine.load_weights(bytes, `${model}.bpk`);
    current = model;
    other = null;
    tune = null;
    await engine.warm_up(size);
    return { describe, twoStage: engine.two_stage() };
  },
  async 'adapt-defaults'({ objective, size }) {
    return Engine.adapt_defaults(objective, size);
  },
  async 'tune-start'({ files, scored, objective, steps, lr, batch, crop, size, scope, watch }) {
    if (!files.length) {
      throw new Error(scored.length
        ? 'every loaded image has a ground-truth mask, and those are only used to measure: load some images without masks to adapt to'
        : 'load some images first: adaptation learns from them');
    }
    engine.adapt_begin(objective, steps, lr, batch, size, crop, scope || '', BigInt(Date.now()));
    // adapt_begin refused an unknown objective: this one is in the engine's list.
    const { adabn, gradient, prior } = Engine.adapt_objectives().find((o) => o.name === objective);
    tune = {
      files, scored, steps, batch, size, watch, done: 0, running: true, t0: performance.now(),
      adabn, adabnDone: !adabn, gradient, stopped: null, diceBefore: null,
      priorDone: !prior, priorRounds: [],
    };
    const before = watch ? await segmentWith(engine, watch, size) : null;
    tune.diceBefore = await scoredDice(scored, size);
    post({ type: 'tune-before', before, diceBefore: tune.diceBefore, scored: scored.length }, before ? transferables(before) : []);
    tuneLoop().catch(fail);
    return { started: true };
  },
  async 'tune-stop'() {
    if (tune) tune.running = false;
    return { stopped: true };
  },
  async 'tune-resume'() {
    if (!tune) throw new Error('no fine-tuning session to resume');
    if (tune.running) return { running: true };
    if (tune.stopped || (tune.adabnDone && (!tune.gradient || tune.done >= tune.steps) && tune.priorDone)) {
      throw new Error('this adaptation has finished; start a new one');
    }
    tune.running = true;
    tuneLoop().catch(fail);
    return { resumed: true };
  },
  async export({ f16 }) {
    const bytes = await engine.export_weights(f16);
    return { bytes };
  },
  async import({ file }) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const describe = await engine.load_weights(bytes, file.name);
    tune = null;
    other = null;
    return { describe, twoStage: engine.two_stage() };
  },
};

// A Rust panic or a lost GPU device surfaces as a RuntimeError (or a wgpu error): the
// module's state cannot be trusted any more, so the page restarts the worker on the CPU.
const isFatal = (e) => e instanceof WebAssembly.RuntimeError || /device.*lost|lost.*device|GPUDevice/i.test(String(e && e.message));

function fail(e) {
  if (tune) tune.running = false;
  post({ type: isFatal(e) ? 'fatal' : 'error', error: (e && e.message) || String(e) });
}

self.onmessage = async (ev) => {
  const { id, cmd, ...args } = ev.data;
  const h = handlers[cmd];
  if (!h) return post({ id, ok: false, error: `unknown command ${cmd}` });
  try {
    const result = await h(args);
    const transfer = result && result.stages ? transferables(result) : result && result.bytes ? [result.bytes.buffer] : [];
    post({ id, ok: true, result }, transfer);
  } catch (e) {
    post({ id, ok: false, fatal: isFatal(e), error: (e && e.message) || String(e) });
  }
};
