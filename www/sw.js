// The page's offline copy (issue 11): a service worker that keeps every file of one build (the
// page, the worker, the wasm, the weights) in a cache named after that build, and answers from
// it first. A second visit then loads nothing over the network, and the page works offline
// after the first load. scripts/web.sh fills in BUILD (a hash of the built files) and FILES
// (their paths); a new build installs a new cache and deletes the old one, so the JS glue and
// the wasm always come from the same build. Only same-origin GET requests are answered.
const BUILD = '__BUILD__';
const FILES = __FILES__;
const CACHE = `scl-${BUILD}`;

self.addEventListener('install', (event) => {
  // Fetched again (not from the HTTP cache), so that the cache holds exactly this build.
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'reload' }))))
    .then(() => self.skipWaiting()));
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
