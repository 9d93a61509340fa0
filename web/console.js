// Inspector console: sign-in, the list of inspections, creating one with an invitation, and
// the live room (business video, own microphone, checklist, participants, event log).

import { t, applyI18n, bindLangSwitch, formatTime } from './i18n.js';
import * as api from './api.js';
import { SyncClient } from './ws.js';
import { RtcSession } from './rtc.js';
import { renderChecklist, el } from './checklist.js';
import { renderParticipants, appendEventLine } from './present.js';
import { ICONS } from './icons.js';
import { renderEvidence } from './evidence.js';

const $ = (id) => document.getElementById(id);
let me = null;
let room = null; // {id, inspection, sync, rtc, checklist, mic}

function toast(text) {
  const box = $('toast');
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function showError(box, err) {
  const key = `login.${err.code}`;
  const translated = t(key);
  box.textContent = translated !== key ? translated : (err.code === 'network' ? t('error.network') : `${err.message || err.code}`);
  box.hidden = false;
}

function statusPill(status) {
  return el('span', { class: `status status-${status}`, 'data-status': status, text: t(`status.${status}`) });
}

function showView(name) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  $('nav').hidden = !me;
  $('logout').hidden = !me;
  $('nav-list').toggleAttribute('aria-current', name === 'list');
  if (name === 'list') $('nav-list').setAttribute('aria-current', 'page');
  $('nav-new').toggleAttribute('aria-current', name === 'new');
  if (name === 'new') $('nav-new').setAttribute('aria-current', 'page');
}

function svgImage(svg, alt) {
  // An <img> from a blob never runs scripts, whatever the SVG contains.
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  return el('img', { src: url, alt });
}

// ---------- Routing ----------

async function route() {
  if (room && !location.hash.startsWith(`#/room/${room.id}`)) leaveRoom();
  if (!me) {
    showView('login');
    $('login-username').focus();
    return;
  }
  const h = location.hash || '#/list';
  const m = h.match(/^#\/room\/([\w-]+)/);
  if (m) return openRoom(m[1]);
  if (h.startsWith('#/new')) return openCreate();
  return openList();
}

// ---------- Login ----------

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').hidden = true;
  $('login-submit').disabled = true;
  try {
    const res = await api.post('/api/auth/login', { username: $('login-username').value, password: $('login-password').value });
    me = res.user;
    $('who').textContent = me.display_name || me.username;
    if (!location.hash || location.hash === '#/login') location.hash = '#/list';
    else route();
  } catch (e) {
    showError($('login-error'), e);
  } finally {
    $('login-submit').disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  try { await api.post('/api/auth/logout'); } catch (_) { /* Signed out locally anyway. */ }
  me = null;
  $('who').textContent = '';
  location.hash = '#/login';
  route();
});

// ---------- List ----------

let listTimer = null;
async function openList() {
  showView('list');
  const params = new URLSearchParams();
  if ($('filter-status').value) params.set('status', $('filter-status').value);
  if ($('filter-q').value.trim()) params.set('q', $('filter-q').value.trim());
  let data;
  try {
    data = await api.get(`/api/inspections${params.toString() ? `?${params}` : ''}`);
  } catch (e) {
    if (e.status === 401) { me = null; route(); return; }
    toast(e.message);
    return;
  }
  const rows = (data.inspections || []).map((i) => el('tr', { 'data-inspection-id': i.id },
    el('td', {}, el('a', { href: `#/room/${i.id}`, text: i.title || i.id })),
    el('td', {}, i.business?.name || '', el('div', { class: 'muted', text: i.business?.inn ? `ИНН ${i.business.inn}` : '' })),
    el('td', { text: formatTime(i.scheduled_at) }),
    el('td', {}, statusPill(i.status)),
    el('td', {},
      el('a', { class: 'btn btn-small', href: `#/room/${i.id}`, text: t('list.open') }), ' ',
      ['finished', 'signed'].includes(i.status) ? el('a', { class: 'btn btn-small', href: `/review/#${i.id}`, text: t('list.review') }) : '')));
  $('list-body').replaceChildren(...rows);
  $('list-empty').hidden = rows.length > 0;
}
$('filter-status').addEventListener('change', () => openList());
$('filter-q').addEventListener('input', () => { clearTimeout(listTimer); listTimer = setTimeout(openList, 300); });
$('filters').addEventListener('submit', (e) => { e.preventDefault(); openList(); });

// ---------- Create ----------

function localNowPlus(minutes) {
  const d = new Date(Date.now() + minutes * 60000);
  d.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function openCreate() {
  showView('new');
  $('invite-panel').hidden = true;
  if (!$('c-scheduled').value) $('c-scheduled').value = localNowPlus(10);
  const sel = $('c-template');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '', text: t('create.template.none') }));
  try {
    const data = await api.get('/api/templates');
    for (const tp of data.templates || []) {
      sel.append(el('option', { value: tp.id, text: `${tp.title} (v${tp.version}, ${tp.item_count})` }));
    }
    if (keep) sel.value = keep;
    else if (sel.options.length > 1) sel.selectedIndex = 1;
  } catch (e) {
    toast(e.message);
  }
  $('c-title').focus();
}

$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const errBox = $('create-error');
  errBox.hidden = true;
  const lat = $('c-lat').value;
  const lon = $('c-lon').value;
  const business = { name: $('c-bname').value.trim(), inn: $('c-inn').value.trim(), address: $('c-address').value.trim() };
  if (lat !== '' && lon !== '') { business.lat = Number(lat); business.lon = Number(lon); }
  const body = {
    kind: $('c-kind').value,
    mode: $('c-remote').checked ? 'remote' : 'on_site',
    title: $('c-title').value.trim(),
    template_id: $('c-template').value || null,
    scheduled_at: new Date($('c-scheduled').value || Date.now()).toISOString(),
    business,
  };
  $('create-submit').disabled = true;
  try {
    const insp = await api.post('/api/inspections', body);
    const inv = await api.post(`/api/inspections/${insp.id}/invitations`, { label: business.name });
    showInvite(inv, 'invite');
    $('invite-room').href = `#/room/${insp.id}`;
    $('invite-panel').hidden = false;
    $('invite-url').focus();
  } catch (e) {
    showError(errBox, e);
  } finally {
    $('create-submit').disabled = false;
  }
});

function showInvite(inv, prefix) {
  $(`${prefix}-url`).value = inv.url;
  $(`${prefix}-qr`).replaceChildren(inv.qr_svg ? svgImage(inv.qr_svg, t('invite.qr')) : '');
  $(`${prefix}-expires`).textContent = inv.invitation?.expires_at ? t('invite.expires', { t: formatTime(inv.invitation.expires_at) }) : '';
}

for (const prefix of ['invite', 'room-invite']) {
  $(`${prefix}-copy`).addEventListener('click', async () => {
    const input = $(`${prefix}-url`);
    try { await navigator.clipboard.writeText(input.value); } catch (_) { input.select(); document.execCommand('copy'); }
    toast(t('common.copied'));
  });
}

// ---------- Live room ----------

function leaveRoom() {
  if (!room) return;
  room.rtc?.stop();
  room.sync?.close();
  room.mic?.getTracks().forEach((tr) => tr.stop());
  clearInterval(room.presenceTimer);
  room = null;
}

async function openRoom(id) {
  if (room && room.id === id) { showView('room'); return; }
  leaveRoom();
  showView('room');
  $('room-error').hidden = true;
  $('room-invite-panel').hidden = true;
  $('eventlog').replaceChildren();
  $('participants').replaceChildren();
  $('video-overlay').hidden = false;
  let inspection;
  try {
    inspection = await api.get(`/api/inspections/${id}`);
  } catch (e) {
    showError($('room-error'), e);
    return;
  }
  room = { id, inspection, quality: 'unknown', pendingItems: new Map(), events: [] };
  $('room-title').textContent = inspection.title;
  $('room-review').href = `/review/#${id}`;

  // Own microphone: optional; without it the inspector still sees and hears the business.
  try {
    room.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (_) {
    room.mic = null;
  }
  updateMic();

  const sync = new SyncClient(id);
  room.sync = sync;
  buildChecklist();
  sync.addEventListener('state', (ev) => renderConn(ev.detail));
  sync.addEventListener('welcome', (ev) => {
    if (!(inspection.items || []).length && sync.checklist.length) {
      // The socket's checklist is authoritative when the REST copy had none.
      inspection.items = sync.checklist;
      rerenderChecklist();
    }
    const w = ev.detail.welcome;
    if (w.snapshot) {
      // A snapshot carries no history: the log so far comes from the exported event log.
      room.events = [];
      api.getText(`/api/inspections/${id}/events.jsonl`).then((text) => {
        const past = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.seq <= w.seq);
        const known = new Set(room.events.map((e) => e.seq));
        room.events = [...past.filter((e) => !known.has(e.seq)), ...room.events].sort((a, b) => a.seq - b.seq);
        renderEventLog();
      }).catch(() => { /* The live stream still fills the log. */ });
    }
    for (const e of w.events || []) room.events.push(e);
    renderEventLog();
  });
  sync.addEventListener('change', () => renderRoomState());
  sync.addEventListener('event', (ev) => {
    room.events.push(ev.detail.event);
    appendEventLine($('eventlog'), ev.detail.event, sync.data, inspection.items);
  });
  sync.addEventListener('ack', (ev) => {
    const itemId = room?.pendingItems?.get(ev.detail.op_id);
    if (itemId) { room.pendingItems.delete(ev.detail.op_id); room.checklist.pending(itemId, false); }
  });
  sync.addEventListener('error', (ev) => {
    const err = ev.detail.error;
    const itemId = room?.pendingItems?.get(err.op_id);
    if (itemId) { room.pendingItems.delete(err.op_id); room.checklist.pending(itemId, false); }
    toast(`${t('common.error')}: ${err.code}${err.message ? ` — ${err.message}` : ''}`);
  });
  sync.connect();

  const rtc = new RtcSession(sync, { role: 'inspector', stream: room.mic });
  room.rtc = rtc;
  rtc.addEventListener('track', (ev) => {
    const video = $('remote-video');
    if (video.srcObject !== ev.detail.stream) video.srcObject = ev.detail.stream;
    video.play().catch(() => { /* Autoplay may wait for a gesture; the stream stays attached. */ });
  });
  rtc.addEventListener('quality', (ev) => {
    room.quality = ev.detail.quality;
    // getStats' decoded frame count, kept on the indicator for diagnostics (and tests).
    room.framesDecoded = ev.detail.stats?.frames_decoded ?? null;
    renderQuality();
  });
  rtc.addEventListener('error', (ev) => toast(`${t('common.error')}: ${ev.detail.code}`));
  rtc.start();
  $('remote-video').onplaying = () => { $('video-overlay').hidden = true; };
  room.presenceTimer = setInterval(() => {
    if (sync.status === 'open') {
      sync.op({ kind: 'presence', quality: room.quality || 'unknown', visible: document.visibilityState === 'visible', ...(sync.rttMs != null ? { rtt_ms: sync.rttMs } : {}) });
    }
  }, 30000);
  renderRoomState();
}

function buildChecklist() {
  room.checklist = renderChecklist($('checklist'), room.inspection.items || [], {
    editable: true,
    onSetResult: (itemId, result, notes) => {
      const op = { kind: 'set_result', item_id: itemId, result };
      if (result !== 'clear' && notes.comment) op.comment = notes.comment;
      if (result === 'violation' && notes.violation) op.violation = notes.violation;
      const opId = room.sync.op(op);
      room.pendingItems.set(opId, itemId);
      room.checklist.pending(itemId, true);
    },
    // "Photo": the business's phone takes a full-resolution still of what it shows now.
    photoButton: {
      text: 'evidence.request',
      label: 'evidence.request.label',
      onClick: (itemId) => room.sync.op({ kind: 'request_photo', item_id: itemId }),
      disabled: (state, data) => state.lifecycle?.status !== 'live' || !!data.photo_request,
    },
    renderEvidence: (box, entries, item, data) => renderEvidence(box, entries, { inspectionId: room.id, requested: !!data.photo_request }),
  });
}

function rerenderChecklist() {
  if (!room) return;
  buildChecklist();
  renderRoomState();
}

function renderEventLog() {
  if (!room) return;
  $('eventlog').replaceChildren();
  for (const e of room.events) appendEventLine($('eventlog'), e, room.sync.data, room.inspection.items);
}

function renderConn(detail) {
  const c = $('room-conn');
  c.dataset.state = detail.state;
  c.textContent = detail.state === 'reconnecting' && detail.delay
    ? t('conn.reconnecting', { s: Math.ceil(detail.delay / 1000) })
    : t(`conn.${detail.state === 'idle' ? 'connecting' : detail.state}`);
}

function renderQuality() {
  const q = $('quality');
  const v = room?.quality || 'unknown';
  q.dataset.quality = v;
  q.dataset.framesDecoded = room?.framesDecoded ?? '';
  $('quality-text').textContent = v === 'unknown' ? t('quality.none') : t(`quality.${v}`);
}

function updateMic() {
  const track = room?.mic?.getAudioTracks()[0];
  const on = !!track && track.enabled;
  const b = $('mic-toggle');
  b.disabled = !track;
  b.setAttribute('aria-pressed', String(on));
  $('mic-icon').innerHTML = on ? ICONS.mic : ICONS.micOff;
  $('mic-label').dataset.i18n = on ? 'room.mic.on' : 'room.mic.off';
  $('mic-label').textContent = t(on ? 'room.mic.on' : 'room.mic.off');
}
$('mic-toggle').addEventListener('click', () => {
  const track = room?.mic?.getAudioTracks()[0];
  if (track) track.enabled = !track.enabled;
  updateMic();
});

function renderRoomState() {
  if (!room) return;
  const sync = room.sync;
  const st = sync?.data?.lifecycle?.status || 'not_started';
  const insp = room.inspection;
  let status = insp.status;
  if (st === 'live') status = 'live';
  if (st === 'finished' && !['signed', 'cancelled'].includes(status)) status = 'finished';
  if (st === 'cancelled') status = 'cancelled';
  $('room-status').replaceWith(Object.assign(statusPill(status), { id: 'room-status' }));
  $('room-start').hidden = st !== 'not_started' || !['scheduled', 'live'].includes(insp.status) || sync?.status !== 'open';
  $('room-finish').hidden = st !== 'live';
  $('room-review').hidden = st !== 'finished';
  if (sync) {
    room.checklist.update(sync.data);
    renderParticipants($('participants'), sync.data, sync.site || (insp.business?.lat != null ? { lat: insp.business.lat, lon: insp.business.lon } : null));
  }
  renderQuality();
}

$('room-start').addEventListener('click', () => room?.sync.op({ kind: 'start' }));

const finishDialog = el('dialog', { id: 'finish-dialog', 'aria-labelledby': 'finish-dialog-text' },
  el('p', { id: 'finish-dialog-text', 'data-i18n': 'room.finish.confirm', text: t('room.finish.confirm') }),
  el('div', { class: 'row' },
    el('button', { type: 'button', class: 'btn', id: 'finish-cancel', 'data-i18n': 'common.back', text: t('common.back') }),
    el('button', { type: 'button', class: 'btn btn-danger', id: 'finish-confirm', 'data-i18n': 'room.finish', text: t('room.finish') })));
document.body.append(finishDialog);
$('room-finish').addEventListener('click', () => finishDialog.showModal());
$('finish-cancel').addEventListener('click', () => finishDialog.close());
$('finish-confirm').addEventListener('click', () => {
  finishDialog.close();
  room?.sync.op({ kind: 'finish' });
});

$('room-invite').addEventListener('click', async () => {
  if (!room) return;
  const panel = $('room-invite-panel');
  if (!panel.hidden) { panel.hidden = true; return; }
  try {
    const inv = await api.post(`/api/inspections/${room.id}/invitations`, { label: room.inspection.business?.name });
    showInvite(inv, 'room-invite');
    panel.hidden = false;
  } catch (e) {
    showError($('room-error'), e);
  }
});

// ---------- Start ----------

window.addEventListener('hashchange', route);
window.addEventListener('langchange', () => {
  if (!me) return;
  const h = location.hash || '#/list';
  if (h.startsWith('#/list') || h === '#/') openList();
  if (room) {
    rerenderChecklist();
    renderEventLog();
    renderConn({ state: room.sync.status });
  }
});
bindLangSwitch($('lang'));
applyI18n();

(async () => {
  try {
    const res = await api.get('/api/auth/me');
    if (res.user) {
      me = res.user;
      $('who').textContent = me.display_name || me.username;
    }
  } catch (_) {
    me = null;
  }
  route();
})();
