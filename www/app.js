// The page: UI only. The model runs in worker.js (the Rust library compiled to WebAssembly).

const $ = (id) => document.getElementById(id);

// What each stage shows, in a sentence an educator can read aloud.
const STAGES = [
  ['input', 'Input', 'The image, resized to the network\'s working size.'],
  ['coarse', 'Coarse mask (stage 1)', 'The first guess: the segmentation decoder on the encoder\'s features; white = lesion probability.'],
  ['masked', 'Masked input', 'The image with the coarse lesion erased (set to black): what the network must explain again.'],
  ['gate1', 'GFF gate, level 1', 'Gated feature fusion, finest level: bright (yellow) where the fused feature takes the new mix of image and erased-image features, dark (blue) where it keeps the first-pass features.'],
  ['gate2', 'GFF gate, level 2', 'The same select gate at 1/4 resolution.'],
  ['gate3', 'GFF gate, level 3', 'The same select gate at 1/8 resolution.'],
  ['gate4', 'GFF gate, level 4', 'The same select gate at 1/16 resolution.'],
  ['gate5', 'GFF gate, level 5', 'The coarsest level (1/32): global context.'],
  ['inpainted', 'Inpainting', 'The inpainting decoder\'s reconstruction of the whole image from the fused features.'],
  ['composite', 'Composite', 'Inpainted pixels inside the fine mask, the original outside: the lesion "removed".'],
  ['correction', 'Self-correction', 'What stage 2 changed in the coarse mask: sky blue = lesion it added, orange = lesion it removed, grey = kept. Self-correction: the network erases its own first guess, looks again, and fixes it.'],
  ['fine', 'Fine mask (stage 2)', 'The corrected segmentation, from features fused across both branches.'],
];

const state = {
  worker: null,
  nextId: 1,
  pending: new Map(),
  images: [],          // {file, url, name, result, gt}
  selected: -1,
  backend: 'auto',
  threads: 0,          // ?threads=N for the CPU backend; 0: as many as the machine has
  model: 'scl',
  size: 320,
  manifest: null,
  tuning: false,
  losses: [],
  ready: false,
  generation: 0,      // of the worker: a restart makes a new one
  testHooks: false,   // ?test-hooks: fault injection for the page tests
  objectives: null,   // [{name, description, gradient}] from the engine
};

// A dismissible message; `details` (lines, or [text, kind] pairs) go in a list under it.
function message(text, kind = 'info', details = null) {
  const div = document.createElement('div');
  div.className = `msg ${kind}`;
  const close = document.createElement('button');
  close.textContent = '×';
  close.title = 'dismiss';
  close.onclick = () => div.remove();
  if (details && details.length) {
    const box = document.createElement('details');
    box.open = kind === 'error';
    const summary = document.createElement('summary');
    summary.textContent = text;
    const ul = document.createElement('ul');
    for (const d of details) {
      const [line, k] = Array.isArray(d) ? d : [d, ''];
      const li = document.createElement('li');
      li.textContent = line;
      if (k) li.className = k;
      ul.appendChild(li);
    }
    box.append(summary, ul);
    div.appendChild(box);
  } else {
    div.textContent = text;
  }
  div.appendChild(close);
  $('messages').prepend(div);
  while ($('messages').children.length > 6) $('messages').lastChild.remove();
}

// An error message that names its file once (the engine's messages already start with it).
function named(name, msg) { return msg.startsWith(`${name}: `) ? msg : `${name}: ${msg}`; }

function call(cmd, args = {}, transfer = []) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject, cmd });
    state.worker.postMessage({ id, cmd, ...args }, transfer);
  });
}

function onWorkerMessage(ev) {
  const m = ev.data;
  if (m.id !== undefined) {
    const p = state.pending.get(m.id);
    state.pending.delete(m.id);
    if (!p) return;
    if (m.ok) p.resolve(m.result);
    else {
      const e = new Error(m.error);
      e.fatal = m.fatal;
      p.reject(e);
      if (m.fatal) recover(m.error);
    }
    return;
  }
  switch (m.type) {
    case 'progress':
      $('load-text').textContent = m.text;
      $('load-progress').value = m.fraction;
      break;
    case 'tune': onTuneStep(m); break;
    case 'tune-before': onTuneBefore(m); break;
    case 'tune-adabn':
      $('tune-progress').value = m.done / m.of;
      $('tune-text').textContent = `AdaBN: statistics of ${m.done}/${m.of} images`;
      break;
    case 'tune-prior':
      $('tune-progress').value = m.done / m.of;
      $('tune-text').textContent = `Lesion-size prior, round ${m.round}: ${m.done}/${m.of} images`;
      break;
    case 'tune-end': onTuneEnd(m); break;
    case 'error': message(m.error, 'error'); setTuning(false); break;
    case 'fatal': recover(m.error); break;
  }
}

// A panic, a lost GPU device or a worker that died: restart the worker (on the CPU after a
// GPU failure). The loaded images and their masks stay; fine-tuned weights are lost.
async function recover(error) {
  if (state.recovering) return;
  state.recovering = true;
  const wasGpu = $('backend-badge').dataset.backend === 'webgpu';
  if (wasGpu) {
    state.backend = 'flex';
    $('backend-select').value = 'flex';
  }
  const n = state.images.length;
  message(`The model stopped (${error}). ${wasGpu ? 'Switching to the CPU backend' : 'Restarting it'}; `
    + `${n ? `your ${n} image(s) are kept, ` : ''}fine-tuning progress is lost.`, 'error');
  setTuning(false);
  for (const im of state.images) im.result = null;
  await boot(state.backend);
  state.recovering = false;
}

// A worker can die without a word (out of memory, a crashed GPU process, or a test hook): it
// holds a Web Lock named after its generation for as long as it lives, so the page's request
// for the same lock is granted exactly when it dies.
function watchWorker(gen) {
  if (!navigator.locks) return;
  navigator.locks.request(`scl-worker-${gen}`, () => {
    if (gen === state.generation && !state.recovering) recover('the worker stopped unexpectedly');
  });
}

async function boot(backend) {
  state.ready = false;
  const gen = ++state.generation;
  $('loading').hidden = false;
  $('load-progress').value = 0;
  if (state.worker) state.worker.terminate();
  for (const p of state.pending.values()) p.reject(new Error('the worker restarted'));
  state.pending.clear();
  state.worker = new Worker('worker.js', { type: 'module' });
  state.worker.onmessage = onWorkerMessage;
  state.worker.onerror = (e) => {
    $('load-text').textContent = `The worker failed: ${e.message || 'could not load (does this browser support module workers and WebAssembly SIMD?)'}`;
  };
  try {
    const info = await call('start', {
      backend,
      threads: state.threads,
      model: state.model,
      size: state.size,
      modelUrls: Object.fromEntries(Object.entries(state.manifest.models).map(([k, v]) => [k, `weights/${v.file}`])),
      lock: `scl-worker-${gen}`,
      testHooks: state.testHooks,
    });
    watchWorker(gen);
    showBackend(info);
    keepModule(info.module);
    showObjectives(info.objectives);
    if (info.note) message(info.note, 'info');
    $('loading').hidden = true;
    state.ready = true;
    updateButtons();
    if (state.selected >= 0) await segmentSelected();
  } catch (e) {
    if (gen !== state.generation) return;
    $('load-text').textContent = `Could not start the model: ${e.message}`;
    message(`Could not start the model: ${e.message}`, 'error');
  }
}

function showBackend(info) {
  const badge = $('backend-badge');
  badge.dataset.backend = info.backend;
  badge.textContent = info.backend === 'webgpu' ? 'GPU · WebGPU'
    : `CPU · Flex (WASM SIMD, ${info.threads > 1 ? `${info.threads} threads` : '1 thread'})`;
  $('adapter').textContent = (info.backend === 'webgpu'
    ? `adapter: ${info.adapter}${info.fallbackAdapter ? ' (software fallback)' : ''}`
    : (info.fallbackAdapter ? 'a software WebGPU adapter exists but the CPU is faster' : 'no hardware WebGPU adapter'))
    + (info.backend !== 'webgpu' && info.threadsWhy ? ` · one thread: ${info.threadsWhy}` : '')
    + ` · warm-up ${info.warmMs.toFixed(0)} ms · ${info.describe}`;
  state.twoStage = info.twoStage;
}

// ---------- images ----------

// Every dropped file is decoded once in the worker before it joins the gallery: a file that
// cannot be segmented is reported at once, with its reason, and never added. One report per
// drop lists each file: added (size, format, notes) or refused (why).
async function addFiles(files) {
  const list = [...files];
  if (!list.length) return;
  const report = [];
  let added = 0;
  for (const file of list) {
    try {
      if (file.size === 0) throw new Error(`${file.name}: the file is empty`);
      if (!state.worker) throw new Error('the model is not running');
      const info = await call('inspect', { file });
      state.images.push({ file, name: file.name, url: URL.createObjectURL(file), result: null, gt: null, info });
      added++;
      const notes = info.notes.length ? ` · ${info.notes.join(' · ')}` : '';
      report.push([`${file.name}: added (${info.width}x${info.height} ${info.format})${notes}`, info.notes.length ? 'note' : 'ok']);
      if (added === 1 || added % 16 === 0) {
        renderGallery();
        if (state.selected < 0) select(state.images.length - 1);
      }
    } catch (e) {
      let why = e.message.startsWith(`${file.name}: `) ? e.message.slice(file.name.length + 2) : e.message;
      if (/weights file \(\.bpk\)/.test(why)) why += ': load it with “Import weights”';
      report.push([`${file.name}: not added: ${why}`, 'refused']);
    }
  }
  renderGallery();
  if (state.selected < 0 && state.images.length) select(0);
  updateButtons();
  const refused = list.length - added;
  if (list.length === 1 && refused === 0 && !state.images.at(-1).info.notes.length) return;
  message(refused
    ? `${refused} of ${list.length} file(s) could not be used${added ? `; ${added} added` : ''}`
    : `${added} image(s) added`, refused ? 'error' : 'info', report);
}

function renderGallery() {
  const g = $('gallery');
  g.replaceChildren();
  state.images.forEach((im, i) => {
    const b = document.createElement('button');
    b.className = 'thumb' + (i === state.selected ? ' selected' : '');
    b.title = im.name;
    const img = document.createElement('img');
    img.src = im.url;
    img.alt = im.name;
    img.onerror = () => img.replaceWith(Object.assign(document.createElement('span'), { textContent: '?' }));
    b.appendChild(img);
    b.onclick = () => select(i);
    g.appendChild(b);
  });
  const watch = $('tune-watch');
  const keep = watch.value;
  watch.replaceChildren(...state.images.map((im, i) => new Option(im.name, i)));
  if (keep) watch.value = keep;
}

async function select(i) {
  state.selected = i;
  renderGallery();
  $('image-name').textContent = state.images[i].name;
  $('scores').textContent = '';
  if (state.images[i].result) showResult(state.images[i].result);
  else await segmentSelected();
}

async function segmentSelected() {
  const im = state.images[state.selected];
  if (!im || !state.ready) return;
  if (state.tuning) { message('Stop fine-tuning before segmenting another image.', 'info'); return; }
  $('stages').classList.add('busy');
  try {
    const r = await call('segment', { file: im.file, size: state.size });
    im.result = r;
    if (state.images[state.selected] === im) showResult(r);
    if (im.gt) await scoreImage(im);
  } catch (e) {
    im.result = null;
    clearStages();
    message(named(im.name, e.message), 'error');
  } finally {
    $('stages').classList.remove('busy');
    updateButtons();
  }
}

function toImageData(pic) {
  return new ImageData(new Uint8ClampedArray(pic.rgba.buffer, pic.rgba.byteOffset, pic.rgba.byteLength), pic.width, pic.height);
}

function drawPicture(canvas, pic) {
  canvas.width = pic.width;
  canvas.height = pic.height;
  canvas.getContext('2d').putImageData(toImageData(pic), 0, 0);
}

function drawMask(canvas, result) {
  const tmp = document.createElement('canvas');
  drawPicture(tmp, result.stages.fine);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function clearStages() {
  $('stages').replaceChildren();
  $('timings').textContent = '';
  const o = $('overlay');
  o.getContext('2d').clearRect(0, 0, o.width, o.height);
}

function showResult(r) {
  const box = $('stages');
  box.replaceChildren();
  for (const [key, title, text] of STAGES) {
    const pic = r.stages[key];
    if (!pic) continue;
    const fig = document.createElement('figure');
    fig.className = 'stage';
    fig.dataset.stage = key;
    const cap = document.createElement('figcaption');
    const t = document.createElement('b');
    t.textContent = title;
    const p = document.createElement('span');
    p.className = 'small';
    p.textContent = text;
    cap.append(t, document.createElement('br'), p);
    if (key === 'correction') cap.append(document.createElement('br'), legend());
    const c = document.createElement('canvas');
    drawPicture(c, pic);
    fig.append(c, cap);
    box.appendChild(fig);
  }
  if (!r.stages.masked) {
    const note = document.createElement('p');
    note.className = 'small';
    note.textContent = 'This is the single-stage supervised baseline: it has no masking, fusion or inpainting stage.';
    box.appendChild(note);
  }
  drawOverlay();
  const t = r.timings;
  const parts = [['decode + resize', t.decode], ['stage 1: encoder + coarse mask', t.coarse], ['stage 2: encode masked image + GFF', t.fusion],
    ['fine segmentation', t.segment], ['inpainting + composite', t.inpaint], ['pictures', t.pictures]];
  $('timings').textContent = `${r.backend === 'webgpu' ? 'WebGPU' : 'CPU'} · ${parts.map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(' · ')} · total ${t.total.toFixed(0)} ms`
    + ` · coarse area ${(100 * r.coarseArea).toFixed(1)}% → fine area ${(100 * r.fineArea).toFixed(1)}%`
    + (r.addedArea === undefined ? '' : ` (stage 2 added ${(100 * r.addedArea).toFixed(1)}%, removed ${(100 * r.removedArea).toFixed(1)}% of the image)`);
}

// The correction card's legend (colours of imageio::ADDED and imageio::REMOVED).
function legend() {
  const l = document.createElement('span');
  l.className = 'legend small';
  for (const [rgb, text] of [['86,180,233', 'added by stage 2'], ['230,159,0', 'removed by stage 2'], ['172,172,172', 'kept']]) {
    const sw = document.createElement('i');
    sw.className = 'swatch';
    sw.style.background = `rgb(${rgb})`;
    l.append(sw, ` ${text} `);
  }
  return l;
}

function drawOverlay() {
  const im = state.images[state.selected];
  if (!im || !im.result) return;
  const r = im.result;
  const c = $('overlay');
  c.width = r.width;
  c.height = r.height;
  const ctx = c.getContext('2d');
  const base = toImageData(r.stages.input);
  const mask = r.stages.fine.rgba;
  const a = Number($('opacity').value);
  const out = ctx.createImageData(r.width, r.height);
  for (let i = 0; i < base.data.length; i += 4) {
    const m = mask[i] > 127 ? a : 0;
    out.data[i] = base.data[i] * (1 - m) + 255 * m;
    out.data[i + 1] = base.data[i + 1] * (1 - m) + 40 * m;
    out.data[i + 2] = base.data[i + 2] * (1 - m) + 40 * m;
    out.data[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

async function scoreImage(im) {
  if (!im.result || !im.gt) return;
  try {
    const r = im.result;
    const s = await call('score', { prob: r.fineProb.slice(), width: r.width, height: r.height, origWidth: r.origWidth, origHeight: r.origHeight, file: im.gt });
    const pct = (v) => (100 * v).toFixed(1);
    $('scores').textContent = `vs ${im.gt.name}: Dice ${pct(s.dice)} · IoU ${pct(s.iou)} · Recall ${pct(s.recall)} · Specificity ${pct(s.specificity)} · Precision ${pct(s.precision)} · Accuracy ${pct(s.accuracy)} (%)`;
  } catch (e) {
    $('scores').textContent = '';
    message(`ground truth ${named(im.gt.name, e.message)}`, 'error');
  }
}

function download(bytes, name, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function stem(name) { return name.replace(/\.[^.]*$/, ''); }

// ---------- fine-tuning ----------

function setTuning(on) {
  state.tuning = on;
  updateButtons();
}

const pct = (v) => (100 * v).toFixed(1);

function onTuneBefore(m) {
  if (m.before) drawMask($('tune-before'), m.before);
  $('tune-dice').textContent = m.diceBefore === null
    ? 'Drop ground-truth masks for a few images (they are then left out of adaptation) to see the Dice before and after.'
    : `Mean Dice on the ${m.scored} image(s) with masks, before: ${pct(m.diceBefore)}%`;
}

function onTuneStep(m) {
  state.losses.push(m.loss);
  $('tune-progress').value = m.step / m.steps;
  $('tune-text').textContent = `step ${m.step}/${m.steps} · loss ${m.loss.toFixed(4)} · predicted lesion ${pct(m.foreground)}% of pixels · ${(m.ms / 1000).toFixed(2)} s/step`;
  if (m.stopped) message(`adaptation stopped: ${m.stopped}`, 'error');
  drawLossCurve();
}

function onTuneEnd(m) {
  setTuning(false);
  $('tune-text').textContent += m.stopped ? ' · stopped by the collapse guard (weights reverted to the last healthy step)'
    : m.finished ? ` · done in ${m.seconds.toFixed(1)} s` : ' · paused';
  const last = m.prior && m.prior[m.prior.length - 1];
  if (m.finished && last) {
    $('tune-text').textContent += ` · output bias ${last.offset >= 0 ? '+' : ''}${last.offset.toFixed(2)}, predicted lesion ${pct(last.foreground)}% of the pixels (${m.prior.length} round${m.prior.length > 1 ? 's' : ''})`;
  }
  if (m.after) drawMask($('tune-after'), m.after);
  if (m.diceAfter !== null && m.diceBefore !== null) {
    const d = 100 * (m.diceAfter - m.diceBefore);
    $('tune-dice').textContent = `Mean Dice on the ${m.scored} image(s) with masks: before ${pct(m.diceBefore)}%, after ${pct(m.diceAfter)}% (${d >= 0 ? '+' : ''}${d.toFixed(1)} points)`;
  }
  // Cached results came from the old weights.
  for (const im of state.images) im.result = null;
  $('tune-resume').disabled = m.finished;
}

// The objectives come from the engine (crate::adapt), the page's default first; choosing one
// fills in the defaults `scl adapt` uses for it.
function showObjectives(list) {
  if (list && !state.objectives) {
    state.objectives = list;
    $('tune-objective').replaceChildren(...list.map((o) => new Option(o.name, o.name)));
  }
  if (!state.objectives) return;
  // A single-stage network has no inpainting decoder: those objectives are greyed out.
  const sel = $('tune-objective');
  for (const opt of sel.options) {
    const o = state.objectives.find((x) => x.name === opt.value);
    opt.disabled = !state.twoStage && o.inpainting;
  }
  const usable = state.objectives.filter((o) => state.twoStage || !o.inpainting);
  const keep = usable.some((o) => o.name === sel.value) ? sel.value : usable[0].name;
  sel.value = keep;
  setObjective(keep);
}

async function setObjective(name) {
  const o = state.objectives.find((x) => x.name === name);
  $('tune-desc').textContent = '';
  for (const id of ['tune-steps', 'tune-lr', 'tune-crop', 'tune-parts']) $(id).disabled = !(o && o.gradient);
  try {
    const d = await call('adapt-defaults', { objective: name, size: state.size });
    $('tune-steps').value = d.steps;
    $('tune-lr').value = d.lr;
    $('tune-batch').value = d.batch;
    $('tune-crop').value = String(d.crop);
    $('tune-parts').value = '';
  } catch (e) { message(`adaptation defaults: ${e.message}`, 'error'); }
  // Set last: the page test waits for it before changing the defaults.
  $('tune-desc').textContent = o ? `${name}: ${o.description}.` : '';
}

function drawLossCurve() {
  const c = $('loss-curve');
  const ctx = c.getContext('2d');
  ctx.clearRect(0, 0, c.width, c.height);
  const v = state.losses;
  if (!v.length) return;
  const lo = Math.min(...v), hi = Math.max(...v);
  const pad = 24;
  ctx.strokeStyle = '#888';
  ctx.strokeRect(pad, 4, c.width - pad - 4, c.height - pad);
  ctx.fillStyle = '#444';
  ctx.font = '11px sans-serif';
  ctx.fillText(hi.toFixed(3), 2, 12);
  ctx.fillText(lo.toFixed(3), 2, c.height - pad);
  ctx.fillText(`step ${v.length}`, c.width - 60, c.height - 6);
  ctx.strokeStyle = '#c33';
  ctx.beginPath();
  v.forEach((y, i) => {
    const px = pad + (c.width - pad - 8) * (v.length > 1 ? i / (v.length - 1) : 0.5);
    const py = 6 + (c.height - pad - 6) * (hi > lo ? (hi - y) / (hi - lo) : 0.5);
    i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
  });
  ctx.stroke();
}

function updateButtons() {
  const has = state.selected >= 0 && !!state.images[state.selected]?.result;
  $('download-mask').disabled = !has;
  $('download-stages').disabled = !has;
  $('compare-run').disabled = !has || state.tuning;
  $('tune-start').disabled = !state.ready || state.tuning || !state.images.length;
  $('tune-stop').disabled = !state.tuning;
  $('export').disabled = !state.ready || state.tuning;
}

// ---------- wiring ----------

function wire() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); addFiles(e.dataTransfer.files); });
  // Dropping outside the zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('file-input').addEventListener('change', (e) => { addFiles(e.target.files); e.target.value = ''; });
  $('opacity').addEventListener('input', drawOverlay);
  $('gt-input').addEventListener('change', async (e) => {
    const im = state.images[state.selected];
    const f = e.target.files[0];
    e.target.value = '';
    if (!im) { message('Select an image first, then its ground-truth mask.', 'info'); return; }
    if (!f) return;
    im.gt = f;
    await scoreImage(im);
  });
  $('download-mask').onclick = async () => {
    const im = state.images[state.selected];
    download(im.result.maskPng, `${stem(im.name)}_mask.png`, 'image/png');
  };
  $('download-stages').onclick = async () => {
    const im = state.images[state.selected];
    for (const fig of $('stages').querySelectorAll('figure')) {
      const blob = await new Promise((r) => fig.querySelector('canvas').toBlob(r, 'image/png'));
      download(blob, `${stem(im.name)}_${fig.dataset.stage}.png`, 'image/png');
    }
  };
  $('compare-run').onclick = async () => {
    const im = state.images[state.selected];
    $('compare-text').textContent = 'running…';
    try {
      const r = await call('segment', { file: im.file, size: state.size, which: 'other' });
      drawPicture($('compare'), r.stages.fine);
      const mine = im.result.stages.fine.rgba, theirs = r.stages.fine.rgba;
      let diff = 0;
      for (let i = 0; i < mine.length; i += 4) diff += (mine[i] > 127) !== (theirs[i] > 127);
      $('compare-text').textContent = `${r.model}: fine area ${(100 * r.fineArea).toFixed(1)}% (this model ${(100 * im.result.fineArea).toFixed(1)}%), masks differ on ${(100 * diff / (mine.length / 4)).toFixed(1)}% of pixels, ${r.timings.total.toFixed(0)} ms`;
    } catch (e) {
      $('compare-text').textContent = '';
      message(`comparison: ${e.message}`, 'error');
    }
  };
  $('backend-select').onchange = (e) => { state.backend = e.target.value; boot(state.backend); };
  $('model-select').onchange = async (e) => {
    state.model = e.target.value;
    try {
      const info = await call('switch-model', { model: state.model, size: state.size });
      state.twoStage = info.twoStage;
      showObjectives();
      message(`Model: ${info.describe}`, 'info');
      for (const im of state.images) im.result = null;
      await segmentSelected();
    } catch (err) { message(err.message, 'error'); }
  };
  $('tune-objective').onchange = () => setObjective($('tune-objective').value);
  $('tune-start').onclick = async () => {
    const watch = state.images[Number($('tune-watch').value)] || state.images[0];
    const steps = Math.max(1, Math.min(100000, Number($('tune-steps').value) | 0));
    const lr = Number($('tune-lr').value);
    const batch = Math.max(1, Math.min(16, Number($('tune-batch').value) | 0));
    state.losses = [];
    drawLossCurve();
    setTuning(true);
    try {
      await call('tune-start', {
        files: state.images.filter((im) => !im.gt).map((im) => im.file),
        scored: state.images.filter((im) => im.gt).map((im) => ({ file: im.file, gt: im.gt })),
        objective: $('tune-objective').value, steps, lr, batch,
        crop: Number($('tune-crop').value), size: state.size,
        scope: $('tune-parts').value, watch: watch.file,
      });
    } catch (e) { setTuning(false); message(`adaptation: ${e.message}`, 'error'); }
  };
  $('tune-stop').onclick = () => call('tune-stop');
  $('tune-resume').onclick = async () => {
    setTuning(true);
    try { await call('tune-resume'); } catch (e) { setTuning(false); message(e.message, 'error'); }
  };
  $('export').onclick = async () => {
    try {
      const { bytes } = await call('export', { f16: $('export-f16').checked });
      download(bytes, `scl-adapted${$('export-f16').checked ? '-f16' : ''}.bpk`, 'application/octet-stream');
      message(`Exported ${(bytes.length / 1e6).toFixed(2)} MB of weights.`, 'info');
    } catch (e) { message(`export: ${e.message}`, 'error'); }
  };
  $('import').onchange = async (e) => {
    const f = e.target.files[0];
    e.target.value = '';
    if (!f) return;
    try {
      const info = await call('import', { file: f });
      state.twoStage = info.twoStage;
      showObjectives();
      message(`Loaded ${f.name}: ${info.describe}`, 'info');
      for (const im of state.images) im.result = null;
      await segmentSelected();
    } catch (err) { message(`${named(f.name, err.message)} (the current model is kept)`, 'error'); }
  };
}

// The offline copy (sw.js): from the second visit on, the page, the wasm and the weights come
// from the browser's cache, and the page works without a network. Not on file:// or in a
// browser without service workers (the page works the same, from the network).
const offlineCapable = () => 'serviceWorker' in navigator && /^https?:$/.test(location.protocol);
function registerOffline() {
  if (!offlineCapable()) return;
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn(`offline copy unavailable: ${e.message}`));
}

// The worker loaded one of the two WebAssembly modules: the service worker keeps that one.
function keepModule(module) {
  if (!offlineCapable() || !module) return;
  navigator.serviceWorker.ready.then((reg) => reg.active && reg.active.postMessage({ keep: module }))
    .catch((e) => console.warn(`offline copy of ${module}/ unavailable: ${e.message}`));
}

async function main() {
  wire();
  registerOffline();
  const q = new URLSearchParams(location.search);
  state.backend = q.get('backend') || 'auto';
  state.threads = Math.max(0, Number(q.get('threads')) || 0);
  // Fault injection for tests/page/faults.test.mjs; off unless the URL asks for it.
  if (q.has('test-hooks')) {
    state.testHooks = true;
    window.sclTest = { fault: (kind) => call('test-fault', { kind }), memory: () => call('memory'),
      forget: () => { for (const im of state.images) im.result = null; } };
  }
  $('backend-select').value = state.backend;
  try {
    const res = await fetch('weights/models.json');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    state.manifest = await res.json();
  } catch (e) {
    $('load-text').textContent = `Could not read weights/models.json (${e.message}).`;
    return;
  }
  state.size = Number(q.get('size')) || state.manifest.size || 320;
  // Fine-tuning crops: multiples of 32 up to the working size; SPEC.md crops 256 of 320 (0.8).
  const crops = [];
  for (let c = 32; c <= state.size; c += 32) crops.push(c);
  $('tune-crop').replaceChildren(...crops.map((c) => new Option(c, c)));
  $('tune-crop').value = String(crops.reduce((best, c) => (Math.abs(c - 0.8 * state.size) < Math.abs(best - 0.8 * state.size) ? c : best), crops[0]));
  const sel = $('model-select');
  for (const opt of [...sel.options]) {
    const m = state.manifest.models[opt.value];
    if (!m) opt.remove(); else opt.textContent = m.label;
  }
  state.model = sel.value;
  await boot(state.backend);
}

main();
