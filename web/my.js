// "My prescriptions" on the business's phone: sign in by the one-time link (#s=…) or by INN
// and code, see every prescription of the organisation, and prove each fix with the live
// camera (a photo from the video, or a 5-second clip) while the position is sampled. The
// server hashes the proof, judges the trace and marks far or spoofed proofs for the inspector.

import { t, applyI18n, bindLangSwitch } from './i18n.js';
import * as api from './api.js';
import { el } from './checklist.js';
import { errorText } from './errors.js';
import { capturePhoto } from './evidence.js';
import { itemCard, outcome, prescPill, summaryLine } from './prescription.js';

const $ = (id) => document.getElementById(id);
const MAX_SAMPLES = 20;
let me = null;

function show(name) {
  for (const v of ['signin', 'list', 'detail', 'camera']) $(`view-${v}`).hidden = v !== name;
}

function fail(err) {
  $('my-error-text').textContent = errorText(err);
  $('my-error').hidden = false;
}

function clearError() { $('my-error').hidden = true; }

async function signInWith(body) {
  clearError();
  const res = await api.post('/api/business/sign-in', body);
  me = res.business;
}

async function whoAmI() {
  try {
    const res = await api.get('/api/auth/me');
    me = res.business || null;
  } catch (_) {
    me = null;
  }
}

async function route() {
  stopCamera();
  const h = location.hash || '#/';
  if (!me) { show('signin'); return; }
  $('my-who').textContent = t('my.who', { name: me.name, inn: me.inn });
  const cam = h.match(/^#\/p\/([\w-]+)\/item\/([\w-]+)/);
  if (cam) return openCamera(cam[1], cam[2]);
  const d = h.match(/^#\/p\/([\w-]+)/);
  if (d) return openDetail(d[1]);
  return openList();
}

async function openList() {
  show('list');
  let data;
  try { data = await api.get('/api/prescriptions'); } catch (e) { fail(e); return; }
  const list = $('my-list');
  list.replaceChildren(...data.prescriptions.map((p) => el('li', { class: 'presc-card', 'data-prescription-id': p.id },
    el('a', { href: `#/p/${p.id}` },
      el('strong', { text: p.inspection_title }), ' ', prescPill('status', p.status),
      el('div', { class: 'muted', text: summaryLine(p) })))));
  $('my-empty').hidden = data.prescriptions.length > 0;
  await listRatings();
}

// The newest finished inspections shown with their rating link (each asks the server what
// this business may still do: rate, change, or only see its final rating).
const RATE_SHOWN = 20;

async function listRatings() {
  let rows;
  try {
    const list = await api.get('/api/inspections?status=finished');
    rows = await Promise.all(list.inspections.slice(0, RATE_SHOWN).map(async (i) => ({
      i, v: await api.get(`/api/inspections/${i.id}/rating`),
    })));
  } catch (e) { fail(e); return; }
  const shown = rows.filter(({ v }) => v.finished && (v.can_rate || v.rating));
  $('my-rate-list').replaceChildren(...shown.map(({ i, v }) => {
    const label = v.can_rate ? 'my.rate.give' : (v.can_change ? 'my.rate.change' : 'my.rate.view');
    return el('li', { class: 'presc-card', 'data-inspection-id': i.id, 'data-rate': label.slice(8) },
      el('strong', { text: i.title }), ' ',
      el('a', { class: 'btn btn-small', href: `/rate/#i=${i.id}`, text: t(label) }));
  }));
  $('my-rate').hidden = shown.length === 0;
}

async function openDetail(id) {
  show('detail');
  let p;
  try { p = await api.get(`/api/prescriptions/${id}`); } catch (e) { fail(e); return; }
  $('detail-title').textContent = p.inspection_title;
  $('detail-meta').replaceChildren(prescPill('status', p.status), ' ', summaryLine(p));
  outcome($('detail-outcome'), p);
  $('detail-pdf').href = `/api/prescriptions/${id}/document.pdf`;
  $('detail-items').replaceChildren(...p.items.map((item) => itemCard(item, id, (it) => (
    p.can_prove && it.status !== 'closed'
      ? el('a', { class: 'btn btn-primary big prove-btn', href: `#/p/${id}/item/${it.id}`, text: t(it.proofs.length ? 'my.prove_again' : 'my.prove') })
      : null))));
}

// ---------- Camera ----------

let cam = null; // {stream, watch, samples, id, item}

function stopCamera() {
  if (!cam) return;
  for (const tr of cam.stream?.getTracks() || []) tr.stop();
  if (cam.watch !== undefined) navigator.geolocation.clearWatch(cam.watch);
  cam = null;
  // A stopped stream left on the element keeps its size: the next item's view would look
  // ready before its own camera is.
  $('camera-video').srcObject = null;
}

async function openCamera(id, item) {
  show('camera');
  $('camera-item').textContent = t('my.camera.item', { item });
  $('camera-status').textContent = '';
  $('camera-geo').textContent = t('my.camera.geo_wait');
  // Nothing to shoot until this item's camera is on.
  for (const b of ['camera-shoot', 'camera-record']) $(b).disabled = true;
  const state = { id, item, samples: [], stream: null, watch: undefined };
  cam = state;
  if (navigator.geolocation) {
    state.watch = navigator.geolocation.watchPosition((pos) => {
      const c = pos.coords;
      state.samples.push({ lat: c.latitude, lon: c.longitude, accuracy: c.accuracy, device_ts: Math.round(pos.timestamp) });
      if (state.samples.length > MAX_SAMPLES) state.samples.shift();
      $('camera-geo').textContent = t('my.camera.geo', { lat: c.latitude.toFixed(5), lon: c.longitude.toFixed(5), acc: Math.round(c.accuracy) });
    }, () => { $('camera-geo').textContent = t('my.camera.geo_none'); }, { enableHighAccuracy: true, maximumAge: 0, timeout: 20000 });
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (e) {
    fail({ code: 'camera_denied' });
    return;
  }
  if (cam !== state) { for (const tr of state.stream.getTracks()) tr.stop(); return; }
  $('camera-video').srcObject = state.stream;
  $('camera-record').hidden = typeof window.MediaRecorder !== 'function';
  for (const b of ['camera-shoot', 'camera-record']) $(b).disabled = false;
}

function traceHeader(state) {
  if (!state.samples.length) return {};
  let zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (_) { zone = undefined; }
  return { 'X-Proof-Location': JSON.stringify({ samples: state.samples, timezone: zone }) };
}

async function send(state, blob, capturedAt) {
  $('camera-status').textContent = t('my.camera.sending');
  for (const b of ['camera-shoot', 'camera-record']) $(b).disabled = true;
  try {
    const q = new URLSearchParams({ captured_at: String(Math.round(capturedAt)) });
    await api.postBytes(`/api/prescriptions/${state.id}/items/${state.item}/proofs?${q}`, blob, {
      'Content-Type': blob.type || 'application/octet-stream', ...traceHeader(state),
    });
    location.hash = `#/p/${state.id}`;
  } catch (e) {
    $('camera-status').textContent = '';
    fail(e);
  } finally {
    for (const b of ['camera-shoot', 'camera-record']) $(b).disabled = false;
  }
}

$('camera-shoot').addEventListener('click', async () => {
  const state = cam;
  if (!state?.stream) return;
  clearError();
  try {
    const track = state.stream.getVideoTracks()[0];
    const { blob } = await capturePhoto(track, $('camera-video'));
    await send(state, blob, Date.now());
  } catch (e) {
    fail({ code: 'camera_frame' });
  }
});

$('camera-record').addEventListener('click', () => {
  const state = cam;
  if (!state?.stream) return;
  clearError();
  const chunks = [];
  const rec = new MediaRecorder(state.stream, { mimeType: MediaRecorder.isTypeSupported('video/webm') ? 'video/webm' : '' });
  const started = Date.now();
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  rec.onstop = () => send(state, new Blob(chunks, { type: rec.mimeType || 'video/webm' }), started);
  rec.start();
  $('camera-status').textContent = t('my.camera.recording');
  setTimeout(() => { if (rec.state !== 'inactive') rec.stop(); }, 5000);
});

$('camera-cancel').addEventListener('click', () => { history.back(); });

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('signin-submit').disabled = true;
  try {
    await signInWith({ inn: $('signin-inn').value.trim(), code: $('signin-code').value });
    location.hash = '#/';
    route();
  } catch (e) {
    fail(e);
  } finally {
    $('signin-submit').disabled = false;
  }
});

$('my-logout').addEventListener('click', async () => {
  try { await api.post('/api/auth/logout'); } catch (_) { /* Forgotten here anyway. */ }
  me = null;
  location.hash = '#/';
  route();
});

window.addEventListener('hashchange', route);

async function start() {
  applyI18n();
  bindLangSwitch($('lang'));
  const m = location.hash.match(/^#s=([\w-]+)/);
  if (m) {
    // The token is used once: forget it from the address bar and history at once.
    history.replaceState(null, '', '#/');
    try { await signInWith({ token: m[1] }); } catch (e) { fail(e); await whoAmI(); }
  } else {
    await whoAmI();
  }
  route();
}

start();
