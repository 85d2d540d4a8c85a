// The phone's service worker: keeps the app shell so /mobile opens without a network.
// API requests are NOT intercepted: they fail offline in the page, whose queue (IndexedDB) keeps them.
const SHELL = "onemap-field-v2";
const FILES = ["/mobile", "/static/mobile.js", "/static/filepick.js", "/static/mobile.css", "/static/mobile.webmanifest",
  "/static/icons/field-192.png", "/static/icons/field-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !FILES.includes(url.pathname)) {
    return; // the network, untouched
  }
  // network first (updates land at once), the cached shell when offline
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(SHELL).then((cache) => cache.put(url.pathname, copy));
    }
    return response;
  }).catch(() => caches.match(url.pathname)));
});
