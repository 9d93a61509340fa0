// The on-site page's service worker (served at /onsite/sw.js, scope /onsite/): it keeps the
// page shell so the page opens without a network. The inspection's checklist and the queue
// live in the page's IndexedDB, not here. API requests are never intercepted: what the server
// answers is never served stale, and an offline request fails as it should.

const CACHE = 'inspector-onsite-v1';
const SHELL = [
  '/onsite/',
  '/assets/onsite.js',
  '/assets/onsite-queue.js',
  '/assets/api.js',
  '/assets/i18n.js',
  '/assets/errors.js',
  '/assets/checklist.js',
  '/assets/state.js',
  '/assets/icons.js',
  '/assets/evidence.js',
  '/assets/style.css',
  '/assets/onsite.webmanifest',
  '/assets/onsite-icon.svg',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  // The cached copy at once, refreshed in the background for the next load.
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(url.pathname);
    const fresh = fetch(req).then((res) => {
      if (res.ok) cache.put(url.pathname, res.clone());
      return res;
    });
    if (cached) {
      event.waitUntil(fresh.catch(() => undefined));
      return cached;
    }
    return fresh;
  })());
});
