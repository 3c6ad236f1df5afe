// The page's offline copy (issue 11): a service worker that keeps the files of one build in a
// cache named after that build, and answers from it first. A second visit then loads nothing
// over the network, and the page works offline after the first load. scripts/sw_manifest.py
// fills in BUILD (a hash of the built files), FILES (what every visit needs: the page, the
// worker, the weights; precached) and MODULES (the files of each WebAssembly module: the page
// loads one, pkg/ with WebGPU or pkg-mt/ multi-threaded, and asks to keep that one, so that a
// visit downloads only the module it runs). A new build installs a new cache and deletes the
// old one, so the JS glue and the wasm always come from the same build. Only same-origin GET
// requests are answered.
const BUILD = '__BUILD__';
const FILES = __FILES__;
const MODULES = __MODULES__;
const CACHE = `scl-${BUILD}`;

self.addEventListener('install', (event) => {
  // Fetched again (not from the HTTP cache), so that the cache holds exactly this build.
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'reload' }))))
    .then(() => self.skipWaiting()));
});

// {keep: 'pkg' | 'pkg-mt'} from the page once its worker has loaded that module.
self.addEventListener('message', (event) => {
  const files = MODULES[event.data && event.data.keep];
  if (!files) return;
  event.waitUntil(caches.open(CACHE).then(async (cache) => {
    const missing = [];
    for (const f of files) if (!(await cache.match(f))) missing.push(f);
    // The worker has just fetched them: from the HTTP cache when it still has them.
    await cache.addAll(missing.map((f) => new Request(f, { cache: 'force-cache' })));
  }));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) =>
    Promise.all(keys.filter((k) => k.startsWith('scl-') && k !== CACHE).map((k) => caches.delete(k)))));
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // The page's URL carries options (?backend=flex&size=160): the cached page serves them all.
    const hit = await cache.match(req, { ignoreSearch: url.pathname.endsWith('/') || url.pathname.endsWith('.html') });
    return hit || fetch(req);
  })());
});
