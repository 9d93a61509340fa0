// The service worker of Inspector's pages: it only shows the server's push messages (notices,
// reminders) and opens their link when tapped. It caches nothing.
self.addEventListener('push', (ev) => {
  let data = {};
  try { data = ev.data ? ev.data.json() : {}; } catch (_) { data = { body: ev.data ? ev.data.text() : '' }; }
  ev.waitUntil(self.registration.showNotification(data.title || 'Inspector', {
    body: data.body || '', data: { url: data.url || '' }, tag: data.url || undefined,
  }));
});

self.addEventListener('notificationclick', (ev) => {
  ev.notification.close();
  const url = ev.notification.data && ev.notification.data.url;
  if (url) ev.waitUntil(self.clients.openWindow(url));
});
