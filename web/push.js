// Web Push subscription for the business page and the console: the service worker
// (/assets/sw.js) shows the server's notices and reminders; the subscription is sent to the
// server, which keeps it as the participant's contact.
import * as api from './api.js';

/** Whether this browser can receive pushes here (a secure context with a push manager). */
export function pushSupported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function keyBytes(b64) {
  const s = b64.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(s + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/**
 * Asks for permission, subscribes and registers the subscription at `path` (POST). Resolves
 * to 'subscribed', or 'denied' when the user refused notifications.
 */
export async function subscribePush(path) {
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') return 'denied';
  const reg = await navigator.serviceWorker.register('/assets/sw.js', { scope: '/assets/' });
  await navigator.serviceWorker.ready;
  const { public_key: key } = await api.get('/api/push/key');
  const sub = (await reg.pushManager.getSubscription())
    || await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  await api.post(path, { subscription: sub.toJSON() });
  return 'subscribed';
}
