// The inspector's phone page for an on-site inspection (/onsite/#<inspection id>): the
// checklist downloaded in advance and usable without a network (the service worker keeps the
// page, IndexedDB the checklist and the queue), results, violation descriptions, findings,
// photos of items and the movement track queued on the device with their op ids and device
// times, sent in order when the network is back. The server decides: after a resync the page
// shows the server's state and which of this phone's results were superseded.

import { t, applyI18n, bindLangSwitch, setTimeZone } from './i18n.js';
import * as api from './api.js';
import { el } from './checklist.js';
import { errorText } from './errors.js';
import { capturePhoto } from './evidence.js';
import * as q from './onsite-queue.js';

const $ = (id) => document.getElementById(id);
const RESULTS = ['compliant', 'violation', 'not_applicable'];
const RETRY_MS = 5000;

const page = {
  id: null,
  rec: null, // {id, inspection, state, seq}
  queued: [],
  sentList: [],
  syncing: false,
  lastFix: null, // the last position kept in the track
  position: null, // the latest fix, for photos and findings
  camera: null, // {stream, target}: the item or finding the photo is of
  points: 0,
};

function showError(err) {
  const box = $('os-error');
  if (!err) { box.hidden = true; return; }
  $('os-error-text').textContent = typeof err === 'string' ? err : errorText(err);
  box.hidden = false;
}

function online() {
  return navigator.onLine !== false;
}

/** The state shown: the server's, with this phone's queued ops on top (the server decides). */
function shownState() {
  const base = page.rec?.state || { lifecycle: { status: 'not_started' }, items: {} };
  const s = {
    status: base.lifecycle?.status || 'not_started',
    items: Object.fromEntries(Object.entries(base.items || {}).map(([k, v]) => [k, { result: v.result, violation: v.violation, photos: (v.evidence || []).length }])),
    findings: (base.findings || []).map((f) => ({ seq: f.seq, text: f.text, queued: false, photos: (f.evidence || []).length })),
  };
  for (const e of page.queued) {
    if (e.type === 'photo') {
      if (e.item_id == null) {
        // A finding named by its op id may be committed by now: its answer has the seq.
        const seq = e.finding_seq ?? page.sentList.find((x) => x.op_id === e.finding_op_id)?.answer?.seq;
        const f = s.findings.find((x) => (seq != null ? x.seq === seq : x.op_id === e.finding_op_id));
        if (f) f.photos += 1;
        continue;
      }
      const it = (s.items[e.item_id] ??= { result: null, photos: 0 });
      it.photos += 1;
      continue;
    }
    const op = e.op;
    if (op.kind === 'start' && s.status === 'not_started') s.status = 'live';
    else if (op.kind === 'finish' && s.status === 'live') s.status = 'finished';
    else if (op.kind === 'set_result') {
      const it = (s.items[op.item_id] ??= { result: null, photos: 0 });
      it.result = op.result === 'clear' ? null : op.result;
      it.violation = op.violation ?? null;
      it.queued = true;
    } else if (op.kind === 'finding') s.findings.push({ op_id: e.op_id, text: op.text, queued: true, photos: 0 });
  }
  return s;
}

function positionOf(p) {
  if (!p) return null;
  const c = p.coords;
  const loc = { lat: c.latitude, lon: c.longitude, accuracy: Number.isFinite(c.accuracy) ? c.accuracy : 0, device_ts: Math.round(p.timestamp) };
  for (const [k, v] of [['altitude', c.altitude], ['altitude_accuracy', c.altitudeAccuracy], ['heading', c.heading], ['speed', c.speed]]) {
    if (typeof v === 'number' && Number.isFinite(v)) loc[k] = v;
  }
  return loc;
}

async function refreshQueue() {
  page.queued = await q.pending(page.id);
  page.sentList = await q.sent(page.id);
}

async function enqueue(op) {
  await q.enqueueOp(page.id, op);
  await refreshQueue();
  render();
  sync();
}

function renderNet() {
  const n = page.queued.length;
  const net = $('os-net');
  const state = !online() ? 'offline' : page.syncing ? 'syncing' : 'open';
  net.dataset.state = state;
  net.textContent = t(`onsite.net.${state}`);
  const qb = $('os-queue');
  qb.dataset.count = String(n);
  qb.textContent = n ? t('onsite.queue', { n }) : t('onsite.queue.empty');
}

let itemsKey = null;

function renderItems(s) {
  const items = page.rec.inspection.items || [];
  // Rebuilt only when what it shows changed: a tap must not land on a replaced button.
  const key = JSON.stringify([items.length, s.status, s.items, document.documentElement.lang]);
  if (key === itemsKey) return;
  itemsKey = key;
  // Text being typed survives a re-render (a position fix or an answer can come meanwhile).
  const active = document.activeElement;
  const focused = active?.classList?.contains('violation-text') ? active.closest('.onsite-item')?.dataset.itemId : null;
  const typed = focused ? active.value : null;
  $('os-noitems').hidden = items.length > 0;
  const open = s.status === 'live';
  const list = items.map((item) => {
    const it = s.items[item.id] || {};
    const buttons = RESULTS.map((r) => el('button', {
      type: 'button', class: `btn btn-small result-btn result-${r}`, 'data-result': r,
      'aria-pressed': it.result === r ? 'true' : 'false', disabled: !open,
      text: t(`result.${r}`),
      onclick: () => {
        const op = { kind: 'set_result', item_id: item.id, result: it.result === r ? 'clear' : r };
        if (op.result === 'violation') {
          const text = document.querySelector(`.onsite-item[data-item-id="${CSS.escape(item.id)}"] .violation-text`)?.value.trim();
          if (text) op.violation = text;
        }
        enqueue(op);
      },
    }));
    const violation = el('textarea', {
      class: 'violation-text', rows: '2', maxlength: '4000', disabled: !open,
      placeholder: t('checklist.violation.placeholder'), 'aria-label': t('checklist.violation'),
      onchange: (ev) => {
        const text = ev.target.value.trim();
        if (shownState().items[item.id]?.result === 'violation' && text) {
          enqueue({ kind: 'set_result', item_id: item.id, result: 'violation', violation: text });
        }
      },
    });
    violation.value = item.id === focused ? typed : (it.violation || '');
    violation.hidden = it.result !== 'violation';
    const photo = el('button', {
      type: 'button', class: 'btn btn-small photo-btn', disabled: !open, text: t('onsite.photo'),
      onclick: () => openCamera({ item_id: item.id }),
    });
    return el('li', { class: 'onsite-item', 'data-item-id': item.id, 'data-result': it.result || '', 'data-queued': it.queued ? '1' : '0' },
      el('p', { class: 'onsite-q' }, el('b', { text: `${item.number} ` }), item.question),
      el('div', { class: 'onsite-results', role: 'group', 'aria-label': t('result.group', { n: item.number }) }, ...buttons),
      violation,
      el('div', { class: 'onsite-photos' }, photo, el('span', { class: 'muted photo-count', 'data-count': String(it.photos || 0), text: it.photos ? t('onsite.photos', { n: it.photos }) : '' })));
  });
  $('os-items').replaceChildren(...list);
  if (focused) document.querySelector(`.onsite-item[data-item-id="${CSS.escape(focused)}"] .violation-text`)?.focus();
}

function renderOutcome() {
  const sup = q.superseded(page.sentList, page.queued, page.rec?.state);
  const box = $('os-superseded');
  const items = page.rec.inspection.items || [];
  const number = (id) => items.find((i) => i.id === id)?.number || id;
  box.replaceChildren(...sup.map((x) => el('p', {
    class: 'superseded', 'data-item-id': x.item_id,
    text: t('onsite.superseded', { n: number(x.item_id), ours: t(`result.${x.ours}`), now: x.now ? t(`result.${x.now}`) : t('result.unanswered') }),
  })));
  box.hidden = sup.length === 0;
  const refused = page.sentList.filter((e) => e.answer?.status === 'refused');
  const rb = $('os-refused');
  rb.replaceChildren(...refused.map((e) => el('p', {
    class: 'refused', 'data-op-id': e.op_id, 'data-code': e.answer.error?.code || '',
    text: t('onsite.refused', { what: e.type === 'photo' ? t('onsite.photo') : t(`onsite.op.${e.op?.kind}`), why: errorText(e.answer.error || {}) }),
  })));
  rb.hidden = refused.length === 0;
}

function render() {
  if (!page.rec) return;
  const insp = page.rec.inspection;
  const s = shownState();
  $('os-view').hidden = false;
  $('os-name').textContent = insp.title || '';
  $('os-meta').textContent = [insp.business?.name, insp.business?.address].filter(Boolean).join(' · ');
  const status = $('os-status');
  status.dataset.status = s.status;
  status.textContent = t(`onsite.status.${s.status}`);
  $('os-start').hidden = s.status !== 'not_started';
  $('os-finish').hidden = s.status !== 'live';
  $('os-finding-add').disabled = s.status !== 'live';
  $('os-finding-text').disabled = s.status !== 'live';
  $('os-findings').replaceChildren(...s.findings.map((f) => {
    // A queued finding takes photos by its op id until the server gives it a seq.
    const target = f.seq != null ? { finding_seq: f.seq } : { finding_op_id: f.op_id };
    const photo = el('button', {
      type: 'button', class: 'btn btn-small photo-btn', disabled: s.status !== 'live', text: t('onsite.photo'),
      onclick: () => openCamera(target),
    });
    return el('li', { class: 'finding', 'data-queued': f.queued ? '1' : '0', 'data-seq': f.seq != null ? String(f.seq) : '' },
      el('span', { class: 'finding-text', text: f.text }),
      el('div', { class: 'onsite-photos' }, photo, el('span', { class: 'muted photo-count', 'data-count': String(f.photos || 0), text: f.photos ? t('onsite.photos', { n: f.photos }) : '' })));
  }));
  const geo = $('os-geo');
  geo.dataset.points = String(page.points);
  geo.textContent = page.position ? t('onsite.track', { n: page.points, acc: Math.round(page.position.accuracy) }) : t('onsite.track.none');
  renderNet();
  renderItems(s);
  renderOutcome();
}

/** Downloads the inspection and its state (online), keeping them for offline use. */
async function download() {
  const [inspection, st] = await Promise.all([api.get(`/api/inspections/${page.id}`), api.get(`/api/inspections/${page.id}/state`)]);
  page.rec = { id: page.id, inspection, state: st.state, seq: st.seq, at: Date.now() };
  await q.saveInspection(page.rec);
  if (inspection.time_zone) setTimeZone(inspection.time_zone);
}

async function uploadQueuedPhoto(entry) {
  const qs = new URLSearchParams({ captured_at: String(Math.round(entry.device_time)), op_id: entry.op_id });
  if (entry.item_id != null) qs.set('item_id', entry.item_id);
  else if (entry.finding_seq != null) qs.set('finding_seq', String(entry.finding_seq));
  else qs.set('finding_op_id', entry.finding_op_id);
  if (entry.duration_ms != null) qs.set('duration_ms', String(entry.duration_ms));
  const p = entry.position;
  if (p) {
    for (const [k, v] of Object.entries(p)) qs.set(k, String(v));
  }
  const headers = { 'Content-Type': entry.blob.type || 'application/octet-stream' };
  return api.postBytes(`/api/inspections/${page.id}/evidence?${qs}`, entry.blob, headers);
}

let retry = null;

/** Sends the queue when online, then downloads the server's state (the server decides). */
async function sync() {
  if (page.syncing || !page.id) return;
  if (!online()) { renderNet(); schedule(); return; }
  page.syncing = true;
  renderNet();
  try {
    const me = await api.get('/api/auth/me');
    if (me?.csrf_token) api.setCsrf(me.csrf_token);
    await q.flush(page.id, {
      // The send time lets the server measure this clock's offset once for the batch and
      // score each queued position at the moment it was taken (docs/protocol.md).
      batch: (ops) => api.post(`/api/inspections/${page.id}/queue`, { ops, sent_at: Date.now() }),
      photo: uploadQueuedPhoto,
    });
    await download();
    showError(null);
    document.body.dataset.synced = String(Date.now());
  } catch (e) {
    if (e?.status === 401) { $('os-signin').hidden = false; }
    else if (e?.status && e.status !== 0) showError(e);
  } finally {
    page.syncing = false;
    await refreshQueue();
    render();
    schedule();
  }
}

function schedule() {
  clearTimeout(retry);
  if (page.queued.length) retry = setTimeout(sync, RETRY_MS);
}

function onFix(p) {
  const fix = positionOf(p);
  page.position = fix;
  const status = shownState().status;
  // The track is kept while the inspection is open on this phone.
  if (status === 'live' && q.keepFix(page.lastFix, fix)) {
    page.lastFix = fix;
    page.points += 1;
    enqueue({ kind: 'location', ...fix });
  } else {
    render();
  }
}

function watchPosition() {
  if (!navigator.geolocation) return;
  navigator.geolocation.watchPosition(onFix, () => { /* no fix: the track has a gap */ }, {
    enableHighAccuracy: true, maximumAge: 5000, timeout: 30000,
  });
}

/** Opens the camera for `target`: `{item_id}`, `{finding_seq}` or `{finding_op_id}`. */
async function openCamera(target) {
  const dlg = $('os-camera');
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 1280 } }, audio: false });
    page.camera = { stream, target };
    const v = $('os-video');
    v.srcObject = stream;
    dlg.showModal();
  } catch (e) {
    showError(t('onsite.camera.denied'));
  }
}

// Short videos stop themselves here; the server's default limit is a minute.
const MAX_VIDEO_MS = 30000;

/** Starts a short video of the item, or stops the one being recorded and queues it. */
function toggleRecord() {
  const c = page.camera;
  if (!c) return;
  const btn = $('os-record');
  if (c.recorder) { c.recorder.stop(); return; }
  const type = ['video/webm;codecs=vp8', 'video/webm', 'video/mp4'].find((m) => MediaRecorder.isTypeSupported(m));
  const rec = new MediaRecorder(c.stream, type ? { mimeType: type, videoBitsPerSecond: 1500000 } : {});
  const chunks = [];
  // The length claimed runs from the recorder's start event to the stop request: the last
  // chunk may be delivered later, and a busy phone starts encoding after start() returns.
  let startedAt = Date.now();
  let stoppedAt = null;
  const position = page.position;
  rec.onstart = () => { startedAt = Date.now(); };
  rec.ondataavailable = (ev) => { if (ev.data.size) chunks.push(ev.data); };
  const stop = rec.stop.bind(rec);
  rec.stop = () => { stoppedAt ??= Date.now(); stop(); };
  rec.onstop = async () => {
    const durationMs = (stoppedAt ?? Date.now()) - startedAt;
    clearTimeout(c.stopTimer);
    c.recorder = null;
    btn.textContent = t('onsite.record');
    btn.dataset.recording = '0';
    const blob = new Blob(chunks, { type: (rec.mimeType || 'video/webm').split(';')[0] });
    try {
      await q.enqueuePhoto(page.id, c.target, blob, startedAt, position, durationMs);
      closeCamera();
      await refreshQueue();
      render();
      sync();
    } catch (e) {
      showError(e?.message || String(e));
    }
  };
  c.recorder = rec;
  c.stopTimer = setTimeout(() => { if (rec.state === 'recording') rec.stop(); }, MAX_VIDEO_MS);
  rec.start(1000);
  btn.textContent = t('onsite.record.stop');
  btn.dataset.recording = '1';
}

function closeCamera() {
  const c = page.camera;
  if (c?.recorder) { c.recorder.onstop = null; c.recorder.stop(); clearTimeout(c.stopTimer); }
  page.camera = null;
  if (c) c.stream.getTracks().forEach((tr) => tr.stop());
  $('os-video').srcObject = null;
  if ($('os-camera').open) $('os-camera').close();
}

async function shoot() {
  const c = page.camera;
  if (!c) return;
  const v = $('os-video');
  if (!v.videoWidth) await new Promise((r) => v.addEventListener('loadeddata', r, { once: true }));
  const capturedAt = Date.now();
  const { blob } = await capturePhoto(c.stream.getVideoTracks()[0], v);
  await q.enqueuePhoto(page.id, c.target, blob, capturedAt, page.position);
  closeCamera();
  await refreshQueue();
  render();
  sync();
}

function armFinish(btn) {
  if (btn.dataset.armed === '1') {
    btn.dataset.armed = '0';
    btn.textContent = t('room.finish');
    enqueue({ kind: 'finish' });
    return;
  }
  btn.dataset.armed = '1';
  btn.textContent = t('onsite.finish.confirm');
  setTimeout(() => { btn.dataset.armed = '0'; btn.textContent = t('room.finish'); }, 6000);
}

async function main() {
  applyI18n();
  bindLangSwitch($('lang'));
  page.id = (location.hash || '').replace(/^#\/?/, '');
  if (!/^[0-9a-f-]{36}$/i.test(page.id)) { showError(t('onsite.no_inspection')); return; }
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/onsite/sw.js', { scope: '/onsite/' }).catch(() => { /* works online without it */ });
  }
  page.rec = await q.loadInspection(page.id);
  await refreshQueue();
  page.points = page.sentList.filter((e) => e.op?.kind === 'location').length + page.queued.filter((e) => e.op?.kind === 'location').length;
  const lastLoc = [...page.sentList, ...page.queued].filter((e) => e.op?.kind === 'location').pop();
  if (lastLoc) page.lastFix = lastLoc.op;
  render();
  if (online()) {
    try {
      const me = await api.get('/api/auth/me');
      if (me?.csrf_token) api.setCsrf(me.csrf_token);
      if (!page.queued.length) await download();
    } catch (e) {
      if (e?.status === 401) { $('os-signin').hidden = false; }
      else if (!page.rec) showError(e);
    }
  }
  if (!page.rec) { if (!online()) showError(t('onsite.not_downloaded')); return; }
  document.body.dataset.ready = 'cached';
  render();
  $('os-start').addEventListener('click', () => enqueue({ kind: 'start' }));
  $('os-finish').addEventListener('click', (ev) => armFinish(ev.currentTarget));
  $('os-record').addEventListener('click', () => { try { toggleRecord(); } catch (e) { showError(e?.message || String(e)); } });
  $('os-shutter').addEventListener('click', () => { shoot().catch((e) => showError(e?.message || String(e))); });
  $('os-camera-close').addEventListener('click', closeCamera);
  $('os-finding-add').addEventListener('click', () => {
    const box = $('os-finding-text');
    const text = box.value.trim();
    if (!text) return;
    const op = { kind: 'finding', text };
    if (page.position) op.location = page.position;
    box.value = '';
    enqueue(op);
  });
  window.addEventListener('online', () => { renderNet(); sync(); });
  window.addEventListener('langchange', render);
  window.addEventListener('offline', renderNet);
  watchPosition();
  sync();
}

main().catch((e) => showError(e?.message || String(e)));
