// Web Push subscription for the business page and the console: the service worker
// (/assets/sw.js) shows the server's notices and reminders; the subscription is sent to the
// server, which keeps it as the participant's contact.
import * as api from './api.js';

/** Whether this browser can receive pushes here (a secure context with a push manager). */
export function pushSupported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** How long the browser's push service may take to give a subscription. */
const SUBSCRIBE_TIMEOUT_MS = 15000;

function keyBytes(b64) {
  const s = b64.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(s + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** Resolves once the registration has an active worker (at most 10 s). */
function activated(reg) {
  if (reg.active) return Promise.resolve();
  const worker = reg.installing || reg.waiting;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('service worker did not activate')), 10000);
    worker?.addEventListener('statechange', () => {
      if (worker.state === 'activated') { clearTimeout(timer); resolve(); }
    });
  });
}

/**
 * Asks for permission, subscribes and registers the subscription at `path` (POST). Resolves
 * to 'subscribed', or 'denied' when the user refused notifications.
 */
export async function subscribePush(path) {
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') return 'denied';
  const reg = await navigator.serviceWorker.register('/assets/sw.js', { scope: '/assets/' });
  // Not `navigator.serviceWorker.ready`: it waits for a worker controlling this page, and the
  // pages (/b/, /) are outside the worker's scope, so it would never resolve.
  await activated(reg);
  const { public_key: key } = await api.get('/api/push/key');
  // subscribe() waits for the browser's push service (Chrome: Google's); where it cannot be
  // reached it never settles, so the page gives up and says so instead of hanging.
  const sub = (await reg.pushManager.getSubscription())
    || await Promise.race([
      reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }),
      new Promise((_, reject) => setTimeout(() => reject(new api.ApiError(0, 'push_unavailable', 'the push service did not answer')), SUBSCRIBE_TIMEOUT_MS)),
    ]).catch((e) => {
      throw e instanceof api.ApiError ? e : new api.ApiError(0, 'push_unavailable', e.message);
    });
  await api.post(path, { subscription: sub.toJSON() });
  return 'subscribed';
}
