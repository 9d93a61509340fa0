// Inspector console: sign-in, the list of inspections, creating one with an invitation, and
// the live room (business video, own microphone, checklist, participants, event log).

import { t, applyI18n, bindLangSwitch, formatTime, formatTimeZoned, formatNumber, setTimeZone, zoneLabel } from './i18n.js';
import * as api from './api.js';
import { SyncClient } from './ws.js';
import { RtcSession, describeReception } from './rtc.js';
import { renderChecklist, el, draftStore } from './checklist.js';
import { renderParticipants, appendEventLine, renderEventLines, usToIso, rtcFailed, liveLogPath, mergeLiveLog, LIVE_LOG_LINES } from './present.js';
import { errorText, showFieldErrors, clearFieldErrors } from './errors.js';
import { ICONS } from './icons.js';
import { pushSupported, subscribePush } from './push.js';
import { renderActPanel } from './act.js';
import { renderEvidence, openLightbox } from './evidence.js';
import { openPrescriptions, openPrescription, renderIssuePanel } from './prescriptions.js';
import { consoleCamera } from './camera-console.js';

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
  // The server's code in the reader's words; its English message is never shown.
  box.textContent = errorText(err);
  box.hidden = false;
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function statusPill(status) {
  return el('span', { class: `status status-${status}`, 'data-status': status, text: t(`status.${status}`) });
}

/** Whether the signed-in user may create inspections (reviewers only read). */
function canCreate() {
  return !!me && ['inspector', 'admin'].includes(me.role);
}

function showView(name) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  $('nav').hidden = !me;
  $('nav-new').hidden = !canCreate();
  for (const b of document.querySelectorAll('.new-btn')) b.hidden = !canCreate();
  $('logout').hidden = !me;
  $('nav-messages').hidden = me?.role !== 'admin';
  $('nav-tokens').hidden = me?.role !== 'admin';
  $('nav-webhooks').hidden = me?.role !== 'admin';
  $('nav-list').toggleAttribute('aria-current', name === 'list');
  if (name === 'list') $('nav-list').setAttribute('aria-current', 'page');
  $('nav-new').toggleAttribute('aria-current', name === 'new');
  if (name === 'new') $('nav-new').setAttribute('aria-current', 'page');
  $('nav-presc').toggleAttribute('aria-current', name.startsWith('prescription'));
  if (name.startsWith('prescription')) $('nav-presc').setAttribute('aria-current', 'page');
}

function svgImage(svg, alt) {
  // An <img> from a blob never runs scripts, whatever the SVG contains.
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  return el('img', { src: url, alt });
}

// ---------- Routing ----------

let lastHash = location.hash;
async function route() {
  if (room && !location.hash.startsWith(`#/room/${room.id}`)) {
    // Leaving the room with typed text not yet saved: ask first, stay if told to.
    if (unsavedItems().length && !window.confirm(t('save.leave', { list: unsavedItems().join(', ') }))) {
      history.replaceState(null, '', lastHash);
      return;
    }
    leaveRoom();
  }
  lastHash = location.hash;
  if (!me) {
    showView('login');
    $('login-username').focus();
    return;
  }
  const h = location.hash || '#/list';
  const m = h.match(/^#\/room\/([\w-]+)/);
  if (m) return openRoom(m[1]);
  if (h.startsWith('#/new') && canCreate()) return openCreate();
  const pl = h.match(/^#\/prescriptions(?:\/(\w+))?/);
  if (pl) { showView('prescriptions'); return openPrescriptions(pl[1] && pl[1] !== 'all' ? pl[1] : ''); }
  const pv = h.match(/^#\/prescription\/([\w-]+)/);
  if (pv) { showView('prescription'); return openPrescription(pv[1]); }
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
    el('td', {}, el('a', { href: `#/room/${i.id}`, text: i.title || i.id }),
      i.erknm_number ? el('div', { class: 'muted', 'data-erknm': i.erknm_number, text: t('ids.erknm', { n: i.erknm_number }) }) : '',
      i.external_id ? el('div', { class: 'muted', text: t('ids.external', { n: i.external_id }) }) : ''),
    el('td', { class: 'wrap' }, i.business?.name || '', el('div', { class: 'muted', text: i.business?.inn ? t('business.inn', { inn: i.business.inn }) : '' }),
      el('div', { class: 'muted', text: i.business?.address || '' })),
    el('td', { text: formatTimeZoned(i.scheduled_at, undefined, i.time_zone) }),
    el('td', {}, statusPill(i.status), isOverdue(i) ? el('span', { class: 'status status-overdue', 'data-overdue': 'true', text: t('list.overdue') }) : ''),
    el('td', {},
      el('a', { class: 'btn btn-small', href: `#/room/${i.id}`, text: t('list.open') }), ' ',
      i.mode === 'on_site' && ['scheduled', 'live'].includes(i.status) ? el('a', { class: 'btn btn-small onsite-link', href: `/onsite/#${i.id}`, text: t('list.onsite') }) : '', ' ',
      ['finished', 'signed'].includes(i.status) ? el('a', { class: 'btn btn-small', href: `/review/#${i.id}`, text: t('list.review') }) : '')));
  $('list-body').replaceChildren(...rows);
  $('list-empty').hidden = rows.length > 0;
}
$('filter-status').addEventListener('change', () => openList());
$('filter-q').addEventListener('input', () => { clearTimeout(listTimer); listTimer = setTimeout(openList, 300); });
$('filters').addEventListener('submit', (e) => { e.preventDefault(); openList(); });

/** A scheduled inspection whose start time has passed without a start. */
function isOverdue(i) {
  return i.status === 'scheduled' && Date.parse(i.scheduled_at) < Date.now();
}

// ---------- Create ----------

// One key per filled-in form: a double click or a retry of the same form makes one
// inspection (the server honours Idempotency-Key); a new form gets a new key.
let createKey = randomKey();
const CREATE_FIELDS = {
  title: 'c-title', template_id: 'c-template', scheduled_at: 'c-scheduled', time_zone: 'c-scheduled',
  'business.name': 'c-bname', 'business.inn': 'c-inn', 'business.address': 'c-address',
  'business.lat': 'c-lat', 'business.lon': 'c-lon',
  erknm_number: 'c-erknm', external_id: 'c-external',
};

function checkScheduled() {
  const v = $('c-scheduled').value;
  $('c-scheduled-note').hidden = !v || new Date(v).getTime() >= Date.now() - 60000;
}
$('c-scheduled').addEventListener('input', checkScheduled);

function localNowPlus(minutes) {
  const d = new Date(Date.now() + minutes * 60000);
  d.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function openCreate() {
  showView('new');
  $('invite-panel').hidden = true;
  $('create-done').hidden = true;
  if (!$('c-scheduled').value) $('c-scheduled').value = localNowPlus(10);
  checkScheduled();
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
  if ($('create-submit').disabled) return;
  const form = $('create-form');
  const errBox = $('create-error');
  errBox.hidden = true;
  $('create-done').hidden = true;
  clearFieldErrors(form);
  const lat = $('c-lat').value;
  const lon = $('c-lon').value;
  const business = { name: $('c-bname').value.trim(), inn: $('c-inn').value.trim(), address: $('c-address').value.trim() };
  // Each coordinate goes as typed: the server names the missing one of a pair.
  if (lat !== '') business.lat = Number(lat);
  if (lon !== '') business.lon = Number(lon);
  let zone = null;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (_) { /* The server falls back to UTC. */ }
  const body = {
    kind: $('c-kind').value,
    mode: $('c-remote').checked ? 'remote' : 'on_site',
    title: $('c-title').value.trim(),
    template_id: $('c-template').value || null,
    scheduled_at: new Date($('c-scheduled').value || Date.now()).toISOString(),
    business,
    time_zone: zone,
  };
  // Empty means none; what is typed goes as typed (the server names a bad shape).
  if ($('c-erknm').value.trim()) body.erknm_number = $('c-erknm').value.trim();
  if ($('c-external').value.trim()) body.external_id = $('c-external').value.trim();
  $('create-submit').disabled = true;
  try {
    const insp = await api.post('/api/inspections', body, { 'Idempotency-Key': createKey });
    const inv = await api.post(`/api/inspections/${insp.id}/invitations`, { label: business.name });
    showInvite(inv, 'invite');
    $('invite-room').href = `#/room/${insp.id}`;
    $('invite-panel').hidden = false;
    // The form is done: empty it for the next inspection, with a new key.
    form.reset();
    $('c-remote').checked = true;
    $('c-scheduled').value = localNowPlus(10);
    checkScheduled();
    createKey = randomKey();
    $('create-done').textContent = t('create.done', { title: insp.title });
    $('create-done').hidden = false;
    $('invite-url').focus();
  } catch (e) {
    const first = showFieldErrors(form, CREATE_FIELDS, e, errBox);
    first?.focus();
  } finally {
    $('create-submit').disabled = false;
  }
});

function showInvite(inv, prefix) {
  $(`${prefix}-url`).value = inv.url;
  $(`${prefix}-qr`).replaceChildren(inv.qr_svg ? svgImage(inv.qr_svg, t('invite.qr')) : '');
  $(`${prefix}-expires`).textContent = inv.invitation?.expires_at ? t('invite.expires', { t: formatTimeZoned(inv.invitation.expires_at) }) : '';
}

/** Every invitation of the room's inspection, with a revoke button for the valid ones. */
async function renderInvitations() {
  if (!room) return;
  const ul = $('room-invitations');
  let data;
  try {
    data = await api.get(`/api/inspections/${room.id}/invitations`);
  } catch (e) {
    ul.replaceChildren(el('li', { class: 'form-error', text: errorText(e) }));
    return;
  }
  const now = Date.now();
  ul.replaceChildren(...(data.invitations || []).slice().reverse().map((inv) => {
    const revoked = !!inv.revoked_at;
    const expired = !revoked && Date.parse(inv.expires_at) <= now;
    const state = revoked ? t('invite.revoked', { t: formatTime(inv.revoked_at) })
      : expired ? t('invite.expired', { t: formatTime(inv.expires_at) })
        : t('invite.expires', { t: formatTime(inv.expires_at) });
    const li = el('li', { class: 'invitation', 'data-invitation-id': inv.id, 'data-state': revoked ? 'revoked' : expired ? 'expired' : 'valid' },
      el('span', { class: 'wrap', text: `${inv.label} · ${t('invite.created', { t: formatTime(inv.created_at) })} · ${state}` }));
    if (!revoked && !expired) {
      li.append(' ', el('button', {
        type: 'button', class: 'btn btn-small btn-danger invite-revoke', text: t('invite.revoke'),
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            await api.post(`/api/inspections/${room.id}/invitations/${inv.id}/revoke`);
            toast(t('invite.revoked.done'));
          } catch (e) {
            toast(errorText(e));
          }
          renderInvitations();
        },
      }));
    }
    return li;
  }));
}

for (const prefix of ['invite', 'room-invite']) {
  $(`${prefix}-copy`).addEventListener('click', async () => {
    const input = $(`${prefix}-url`);
    try { await navigator.clipboard.writeText(input.value); } catch (_) { input.select(); document.execCommand('copy'); }
    toast(t('common.copied'));
  });
}

// ---------- Live room ----------

/** Items of the open room whose typed text is not saved yet. */
function unsavedItems() {
  return room?.checklist?.unsaved?.() || [];
}

window.addEventListener('beforeunload', (ev) => {
  if (!unsavedItems().length) return;
  room?.checklist?.flushAll();
  // The browser shows its own words; setting returnValue asks it to.
  ev.preventDefault();
  ev.returnValue = '';
});

function leaveRoom() {
  if (!room) return;
  room.rtc?.stop();
  room.sync?.close();
  room.mic?.getTracks().forEach((tr) => tr.stop());
  clearInterval(room.presenceTimer);
  clearInterval(room.checksTimer);
  clearInterval(room.receptionTimer);
  room.cam?.destroy();
  room = null;
}

/**
 * The business's device checks (the latest per participant), beside the participants: what
 * works and what the business still has to fix, before the start. Refreshed every 10 s.
 */
async function renderDeviceChecks() {
  if (!room) return;
  const id = room.id;
  const ul = $('device-checks');
  let data;
  try {
    data = await api.get(`/api/inspections/${id}/device-checks`);
  } catch (e) {
    ul.replaceChildren(el('li', { class: 'form-error', text: errorText(e) }));
    return;
  }
  if (!room || room.id !== id) return;
  if (!data.checks.length) {
    ul.replaceChildren(el('li', { class: 'muted', text: t('checks.none') }));
    return;
  }
  ul.replaceChildren(...data.checks.map((c) => {
    const rtt = c.rtc?.rtt_ms ?? c.rtc?.ice_rtt_ms;
    const up = c.rtc?.server_kbps ?? c.rtc?.upload_kbps;
    const facts = [
      `${t('check.step.camera')}: ${t(`check.perm.${c.camera}`)}`,
      `${t('check.step.microphone')}: ${t(`check.perm.${c.microphone}`)}`,
      `${t('check.step.location')}: ${c.reading ? t(`check.trust.${c.reading.level}`) : t(`check.perm.${c.location}`)}`,
      `${t('check.step.connection')}: ${c.rtc?.connected ? `${rtt == null ? '—' : Math.round(rtt)} ms${up == null ? '' : `, ${up} kbit/s`}` : rtcFailed(c.rtc)}`,
      `${c.browser} ${c.browser_version}`.trim(),
    ];
    return el('li', { class: 'device-check', 'data-ready': c.problems.length ? 'no' : 'yes', 'data-subject': c.subject },
      el('strong', { text: `${c.label || t('role.business')} · ${formatTime(new Date(c.checked_at / 1000).toISOString())} · ${t(c.problems.length ? 'checks.not_ready' : 'checks.ready')}` }),
      el('div', { class: 'muted wrap', text: facts.join(' · ') }),
      ...(c.problems.length ? [el('ul', {}, ...c.problems.map((p) => el('li', { 'data-problem': p, text: t(`check.fix.${p}`) })))] : []));
  }));
}

async function openRoom(id) {
  if (room && room.id === id) { showView('room'); return; }
  leaveRoom();
  showView('room');
  $('room-error').hidden = true;
  $('room-invite-panel').hidden = true;
  $('room-invite-url').value = '';
  $('eventlog').replaceChildren();
  $('participants').replaceChildren();
  $('room-ended').hidden = true;
  $('room-rec').hidden = true;
  showOverlay('none', t('room.waiting'));
  let inspection;
  try {
    inspection = await api.get(`/api/inspections/${id}`);
  } catch (e) {
    showError($('room-error'), e);
    return;
  }
  room = { id, inspection, quality: 'unknown', video: 'none', pendingItems: new Map(), events: [], drafts: draftStore(id, 'notes') };
  // Every time on this page is on the inspection's clock (its site's zone), labelled.
  setTimeZone(inspection.time_zone);
  renderDeviceChecks();
  room.checksTimer = setInterval(renderDeviceChecks, 10000);
  room.receptionTimer = setInterval(pollReception, RECEPTION_POLL_MS);
  $('room-title').textContent = inspection.title;
  $('room-review').href = `/review/#${id}`;
  renderRoomMeta();

  // Own microphone: optional; without it the inspector still sees and hears the business.
  try {
    room.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (_) {
    room.mic = null;
  }
  updateMic();

  const sync = new SyncClient(id);
  room.sync = sync;
  // Guiding the business's camera (issue 25): controls and the pointer, from state.camera.
  room.cam = consoleCamera(room);
  buildChecklist();
  // Capture phase: the frame is kept before the checklist's own handler sends the mark.
  if (!$('checklist').dataset.seenClicks) {
    $('checklist').dataset.seenClicks = '1';
    $('checklist').addEventListener('click', keepSeenFrame, true);
  }
  sync.addEventListener('state', (ev) => renderConn(ev.detail));
  sync.addEventListener('welcome', (ev) => {
    if (!(inspection.items || []).length && sync.checklist.length) {
      // The socket's checklist is authoritative when the REST copy had none.
      inspection.items = sync.checklist;
      rerenderChecklist();
    }
    const w = ev.detail.welcome;
    if (w.snapshot) {
      // A snapshot carries no history: the latest actions so far come from the event log.
      room.events = [];
      api.getText(liveLogPath(id, w.seq)).then((text) => {
        ({ events: room.events, earlier: room.eventsEarlier } = mergeLiveLog(text, room.events));
        renderEventLog();
      }).catch(() => { /* The live stream still fills the log. */ });
    }
    for (const e of w.events || []) room.events.push(e);
    renderEventLog();
  });
  sync.addEventListener('change', () => renderRoomState());
  sync.addEventListener('event', (ev) => {
    const e = ev.detail.event;
    room.events.push(e);
    room.cam?.onEvent(e);
    if (e.kind === 'focus') room.focusItem = e.payload?.item_id ?? null;
    // Once an item has its result, the look at it is over.
    if (e.kind === 'set_result' && e.payload?.item_id === room.focusItem) room.focusItem = null;
    appendEventLine($('eventlog'), e, sync.data, inspection.items, LIVE_LOG_LINES);
    if (e.kind === 'leave' && sync.data.participants?.[e.participant_id]?.role === 'business') renderVideoState();
  });
  sync.addEventListener('ack', (ev) => {
    const itemId = room?.pendingItems?.get(ev.detail.op_id);
    if (itemId) { room.pendingItems.delete(ev.detail.op_id); room.checklist.pending(itemId, false); }
    if (room?.lifecycleOp === ev.detail.op_id) { room.lifecycleOp = null; renderRoomState(); }
  });
  sync.addEventListener('error', (ev) => {
    const err = ev.detail.error;
    const itemId = room?.pendingItems?.get(err.op_id);
    if (itemId) { room.pendingItems.delete(err.op_id); room.checklist.pending(itemId, false); }
    if (room?.lifecycleOp === err.op_id) {
      room.lifecycleOp = null;
      // A second start or finish (a double click, another tab) already happened: not an error.
      if (['already_started', 'already_finished'].includes(err.code)) { renderRoomState(); return; }
    }
    toast(`${t('common.error')}: ${errorText(err)}`);
    renderRoomState();
  });
  sync.connect();

  const rtc = new RtcSession(sync, { role: 'inspector', stream: room.mic });
  room.rtc = rtc;
  rtc.addEventListener('track', (ev) => {
    const video = $('remote-video');
    if (video.srcObject !== ev.detail.stream) video.srcObject = ev.detail.stream;
    video.play().catch(() => { /* Autoplay may wait for a gesture; the stream stays attached. */ });
    watchPresentedFrames(video);
  });
  rtc.addEventListener('quality', (ev) => {
    if (!room) return;
    room.quality = ev.detail.quality;
    room.video = ev.detail.video;
    room.videoSince = ev.detail.since;
    // getStats' decoded frame count, kept on the indicator for diagnostics (and tests).
    room.framesDecoded = ev.detail.stats?.frames_decoded ?? null;
    renderQuality();
    renderVideoState();
  });
  rtc.addEventListener('error', (ev) => {
    // After the end the server refuses media on purpose; that is not news.
    if (ev.detail.code === 'recording_finished') return;
    toast(`${t('common.error')}: ${errorText(ev.detail)}`);
  });
  rtc.start();
  room.presenceTimer = setInterval(() => {
    if (sync.status === 'open') {
      sync.op({ kind: 'presence', quality: room.quality || 'unknown', visible: document.visibilityState === 'visible', ...(sync.rttMs != null ? { rtt_ms: sync.rttMs } : {}) });
    }
  }, 30000);
  renderRoomState();
}

// --- The frame on screen at a mark (issue 23) ---
// The last frame the video element presented, from requestVideoFrameCallback where the
// browser has it; a click in the checklist keeps it, and the mark sends it with the click's
// age, so the server can place the chapter on the frame the inspector saw (it checks that
// the frame is one it sent to this inspector, docs/protocol.md "seen").
function watchPresentedFrames(video) {
  if (!video || typeof video.requestVideoFrameCallback !== 'function' || video.dataset.seenWatch) return;
  video.dataset.seenWatch = '1';
  const onFrame = (_now, meta) => {
    if (room) room.presented = meta;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function keepSeenFrame() {
  if (!room) return;
  const m = room?.presented;
  room.clickedFrame = m && Number.isInteger(m.rtpTimestamp)
    ? { meta: m, at: performance.now() }
    : null;
}

/** The `seen` claim of a mark: the frame presented at the last click in the checklist. */
function seenClaim() {
  const c = room?.clickedFrame;
  if (!c) return null;
  const offset = Math.max(0, performance.now() - c.at);
  if (offset > 30000) return null;
  const ms = (v) => (Number.isFinite(v) && v >= 0 ? v : undefined);
  return {
    rtp_timestamp: c.meta.rtpTimestamp >>> 0,
    presentation_time: ms(c.meta.presentationTime),
    receive_time: ms(c.meta.receiveTime),
    click_offset_ms: Math.round(offset),
  };
}

function buildChecklist() {
  room.checklist = renderChecklist($('checklist'), room.inspection.items || [], {
    editable: true,
    drafts: room.drafts,
    selfId: () => room?.sync?.you?.participant_id,
    connected: () => room?.sync?.status === 'open',
    onSetResult: (itemId, result, notes) => {
      const op = { kind: 'set_result', item_id: itemId, result };
      const seen = result !== 'clear' ? seenClaim() : null;
      if (seen) op.seen = seen;
      if (result !== 'clear' && notes.comment) op.comment = notes.comment;
      if (result === 'violation' && notes.violation) op.violation = notes.violation;
      // Sent through the socket's op-id retry: kept and resent until acknowledged.
      const opId = room.sync.op(op);
      room.pendingItems.set(opId, itemId);
      room.checklist?.pending(itemId, true);
      return opId;
    },
    // "Now looking at this item": logged, so the item's chapter begins here.
    focusButton: {
      onClick: (itemId) => {
        room.focusItem = itemId;
        room.sync.op({ kind: 'focus', item_id: itemId });
        renderRoomState();
      },
      current: () => room?.focusItem ?? null,
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
  renderEventLines($('eventlog'), room.events, room.sync.data, room.inspection.items,
    { limit: LIVE_LOG_LINES, earlier: !!room.eventsEarlier });
}

function renderConn(detail) {
  const c = $('room-conn');
  c.dataset.state = detail.state;
  c.textContent = detail.state === 'reconnecting' && detail.delay
    ? t('conn.reconnecting', { s: Math.ceil(detail.delay / 1000) })
    : t(`conn.${detail.state === 'idle' ? 'connecting' : detail.state}`);
  room?.checklist?.rerenderSaveStates?.();
}

function renderRoomMeta() {
  if (!room) return;
  const i = room.inspection;
  $('room-meta').textContent = [i.business?.name, i.business?.inn ? t('business.inn', { inn: i.business.inn }) : '',
    i.business?.address, t('room.scheduled', { t: formatTime(i.scheduled_at) }), t('time.zone', { z: zoneLabel() }),
    i.erknm_number ? t('ids.erknm', { n: i.erknm_number }) : '', i.external_id ? t('ids.external', { n: i.external_id }) : '']
    .filter(Boolean).join(' · ');
}

function showOverlay(state, text) {
  const o = $('video-overlay');
  o.dataset.state = state;
  o.textContent = text;
  o.hidden = state === 'live' || state === 'stills';
}

/** The business participant (the phone), if it ever joined: an online one first, else the
 * one that left last. */
function businessOf(data) {
  const all = Object.entries(data?.participants || {}).filter(([, p]) => p.role === 'business');
  return all.find(([, p]) => p.online) || all.sort((a, b) => (b[1].left_at || 0) - (a[1].left_at || 0))[0];
}

/** What the video element shows, said on the video itself: waiting, live, frozen or gone. */
function renderVideoState() {
  if (!room) return;
  const status = room.sync?.data?.lifecycle?.status;
  const biz = businessOf(room.sync?.data);
  const name = biz?.[1]?.display_name || t('role.business');
  const at = (ms) => formatTime(new Date(ms).toISOString(), { timeStyle: 'medium' });
  if (status === 'finished' || status === 'cancelled') {
    showOverlay('ended', t(status === 'finished' ? 'room.finished' : 'room.cancelled'));
  } else if (biz && !biz[1].online && (room.video !== 'none' || biz[1].left_at)) {
    // The phone's socket is gone: its tab closed or its network dropped.
    showOverlay('left', t('room.video.left', { name, t: formatTime(usToIso(biz[1].left_at), { timeStyle: 'medium' }) }));
  } else if (biz && biz[1].video_mode === 'stills') {
    // Low-bandwidth mode (issue 19): the phone's latest still stands in for its video.
    showOverlay('stills', '');
  } else if (room.video === 'frozen') {
    showOverlay('frozen', t('room.video.frozen', { name, t: room.videoSince ? at(room.videoSince) : '—' }));
  } else if (room.video === 'live') {
    showOverlay('live', '');
  } else {
    showOverlay('none', biz?.[1]?.online ? t('room.video.none', { name }) : t('room.waiting'));
  }
  // The server records whatever the phone sends while the inspection is not over.
  $('room-rec').hidden = !(room.video === 'live' && !!biz?.[1]?.online && status !== 'finished' && status !== 'cancelled');
  renderStills(biz, status);
}

/**
 * The phone's stills (issue 19): in low-bandwidth mode its latest one over the video with the
 * reason and its time; otherwise the latest asked-for one as a thumbnail beside the video.
 * The button asks the phone for one (`request_frame`).
 */
function renderStills(biz, status) {
  const p = biz?.[1];
  const live = status === 'live' && !!p?.online;
  const f = p?.frames;
  const url = f ? `/api/inspections/${room.id}/evidence/${f.last_id}` : null;
  const when = f ? formatTime(usToIso(f.last_at), { timeStyle: 'medium' }) : null;
  const stills = live && p.video_mode === 'stills';
  const img = $('remote-still');
  img.hidden = !stills || !url;
  if (stills && url && img.getAttribute('src') !== url) {
    img.src = url;
    img.alt = t('room.stills.last', { t: when });
  }
  const note = $('stills-note');
  note.hidden = !stills;
  note.dataset.frames = String(f?.count ?? 0);
  if (stills) {
    const name = p.display_name || t('role.business');
    const why = t(p.stills_reason === 'stalled' ? 'room.stills.stalled' : 'room.stills', { name });
    note.textContent = `${why}; ${url ? t('room.stills.last', { t: when }) : t('room.stills.none')}`;
  }
  $('request-still').hidden = !live;
  const thumb = $('last-still');
  thumb.hidden = stills || !url || f.last_reason !== 'requested';
  if (!thumb.hidden && $('last-still-img').getAttribute('src') !== url) {
    $('last-still-img').src = url;
    thumb.dataset.url = url;
    thumb.setAttribute('aria-label', t('room.still.open', { t: when }));
    thumb.title = thumb.getAttribute('aria-label');
  }
}

$('request-still').addEventListener('click', () => {
  if (!room?.sync) return;
  room.sync.op({ kind: 'request_frame' });
  toast(t('room.request_still.sent'));
});
$('last-still').addEventListener('click', () => {
  const url = $('last-still').dataset.url;
  if (url) openLightbox(url, 'frame', $('last-still').getAttribute('aria-label'));
});

/** How often the console asks what the server receives from the phone. */
const RECEPTION_POLL_MS = 2000;

/** Asks the server what it receives from the publishers, then says it. */
async function pollReception() {
  if (!room || document.visibilityState !== 'visible') return;
  // Nobody to measure: nothing to ask, and nothing old kept for when the phone is back.
  if (!businessOf(room.sync?.data)?.[1]?.online) {
    room.uplinks = null;
    return;
  }
  const id = room.id;
  try {
    room.uplinks = (await api.get(`/api/inspections/${id}/uplink`)).uplinks;
  } catch (_) {
    // No figures rather than old ones: the line hides until an answer comes.
    room.uplinks = null;
  }
  if (room?.id === id) renderReception();
}

/** The business's uplink as the server measures it, beside the video (issue 19, item 3). */
function renderReception() {
  const line = $('reception');
  const biz = businessOf(room?.sync?.data);
  const r = biz && biz[1].online && room.uplinks ? describeReception(room.uplinks, biz[0], { stills: biz[1].video_mode === 'stills' }) : { state: 'none' };
  line.dataset.state = r.state;
  line.hidden = r.state === 'none';
  if (line.hidden) return;
  const text = t(`reception.${r.state}`, {
    kbps: formatNumber(r.kbps, 0),
    audio: formatNumber(r.audio_kbps, 0),
    loss: formatNumber(r.loss),
    late: formatNumber(r.late),
    secs: r.secs,
  });
  const rtt = biz[1].rtt_ms;
  line.textContent = `${t('reception.label')}: ${text}${rtt == null ? '' : `; ${t('reception.rtt', { rtt })}`}`;
  line.dataset.kbps = String(r.kbps ?? '');
}

function renderQuality() {
  const q = $('quality');
  // Judged from media that arrives, and only while the phone is there at all.
  const biz = businessOf(room?.sync?.data);
  const present = !!biz && biz[1].online;
  const v = present && (room?.video === 'live' || room?.video === 'frozen') ? (room?.quality || 'unknown') : 'unknown';
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
  const over = st === 'finished' || st === 'cancelled';
  $('room-start').hidden = st !== 'not_started' || !['scheduled', 'live'].includes(insp.status) || sync?.status !== 'open';
  // A start or finish on its way: the button waits for the answer (a double click is one op).
  $('room-start').disabled = !!room.lifecycleOp;
  $('room-finish').hidden = st !== 'live';
  $('room-finish').disabled = !!room.lifecycleOp;
  $('room-cancel').hidden = over || sync?.status !== 'open';
  $('room-invite').hidden = over;
  if (over) $('room-invite-panel').hidden = true;
  $('room-review').hidden = st !== 'finished';
  // The act panel follows the log: re-rendered when the act's events change.
  const actKey = st === 'finished' ? JSON.stringify(sync?.data?.act ?? null) : null;
  if (actKey !== room.actKey) {
    room.actKey = actKey;
    if (actKey === null) $('act-panel').hidden = true;
    else renderActPanel($('act-panel'), insp.id, { slot: 'staff' });
  }
  // The prescription follows a finished inspection's violations.
  const prescKey = st === 'finished' ? insp.id : null;
  if (prescKey !== room.prescKey) {
    room.prescKey = prescKey;
    if (prescKey === null) $('presc-panel').hidden = true;
    else renderIssuePanel($('presc-panel'), insp, sync?.data, me && (me.role === 'admin' || me.id === insp.inspector?.id));
  }
  $('room-ended').hidden = !over;
  if (over && room.rtc) {
    // Nothing more is forwarded or recorded after the end: close the media.
    room.rtc.stop();
    room.rtc = null;
    room.video = 'none';
    room.mic?.getTracks().forEach((tr) => tr.stop());
    room.mic = null;
    updateMic();
  }
  if (over) {
    const at = st === 'finished' ? sync.data.lifecycle.finished_at : sync.data.lifecycle.cancelled_at;
    $('room-ended').textContent = t(st === 'finished' ? 'room.ended.finished' : 'room.ended.cancelled', { t: formatTimeZoned(usToIso(at)) });
  }
  if (sync) {
    room.cam?.update(sync.data);
    room.checklist.update(sync.data);
    renderParticipants($('participants'), sync.data, sync.site || (insp.business?.lat != null ? { lat: insp.business.lat, lon: insp.business.lon } : null));
  }
  renderQuality();
  renderReception();
  renderVideoState();
}

/** Send a lifecycle op once: further clicks wait until it is answered. */
function lifecycleOp(op) {
  if (!room || room.lifecycleOp) return;
  room.lifecycleOp = room.sync.op(op);
  renderRoomState();
}

$('room-start').addEventListener('click', () => lifecycleOp({ kind: 'start' }));

const finishDialog = el('dialog', { id: 'finish-dialog', 'aria-labelledby': 'finish-dialog-text' },
  el('p', { id: 'finish-dialog-text', 'data-i18n': 'room.finish.confirm', text: t('room.finish.confirm') }),
  el('p', { id: 'finish-unanswered', class: 'warn-text', hidden: true }),
  el('p', { id: 'finish-unsaved', class: 'warn-text', hidden: true }),
  el('div', { class: 'row' },
    el('button', { type: 'button', class: 'btn', id: 'finish-cancel', 'data-i18n': 'common.back', text: t('common.back') }),
    el('button', { type: 'button', class: 'btn btn-danger', id: 'finish-confirm', 'data-i18n': 'room.finish', text: t('room.finish') })));
document.body.append(finishDialog);

function renderFinishWarnings() {
  const total = (room?.inspection?.items || []).length;
  const n = room?.checklist?.unanswered?.() ?? 0;
  const unsaved = unsavedItems();
  $('finish-unanswered').hidden = n === 0;
  $('finish-unanswered').dataset.count = String(n);
  $('finish-unanswered').textContent = t('room.finish.unanswered', { n, total });
  $('finish-unsaved').hidden = unsaved.length === 0;
  $('finish-unsaved').textContent = t('room.finish.unsaved', { list: unsaved.join(', ') });
}

$('room-finish').addEventListener('click', () => {
  // Typed text goes first; the dialog says what is still unanswered or unsaved.
  room?.checklist?.flushAll();
  renderFinishWarnings();
  finishDialog.showModal();
});
$('finish-cancel').addEventListener('click', () => finishDialog.close());
$('finish-confirm').addEventListener('click', () => {
  finishDialog.close();
  lifecycleOp({ kind: 'finish' });
});

const CANCEL_REASONS = ['business_absent', 'technical_failure', 'rescheduled', 'withdrawn', 'other'];
const cancelDialog = el('dialog', { id: 'cancel-dialog', 'aria-labelledby': 'cancel-dialog-text' },
  el('p', { id: 'cancel-dialog-text', 'data-i18n': 'room.cancel.confirm', text: t('room.cancel.confirm') }),
  el('div', { class: 'field' },
    el('label', { for: 'cancel-reason', 'data-i18n': 'room.cancel.reason', text: t('room.cancel.reason') }),
    el('select', { id: 'cancel-reason' }, ...CANCEL_REASONS.map((r) => el('option', { value: r, 'data-i18n': `cancel.${r}`, text: t(`cancel.${r}`) })))),
  el('div', { class: 'field' },
    el('label', { for: 'cancel-note', 'data-i18n': 'room.cancel.note', text: t('room.cancel.note') }),
    el('textarea', { id: 'cancel-note', rows: '2', maxlength: '1000' })),
  el('div', { class: 'row' },
    el('button', { type: 'button', class: 'btn', id: 'cancel-back', 'data-i18n': 'common.back', text: t('common.back') }),
    el('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-confirm', 'data-i18n': 'room.cancel', text: t('room.cancel') })));
document.body.append(cancelDialog);
$('room-cancel').addEventListener('click', () => cancelDialog.showModal());
$('cancel-back').addEventListener('click', () => cancelDialog.close());
$('cancel-confirm').addEventListener('click', () => {
  cancelDialog.close();
  const op = { kind: 'cancel', reason: $('cancel-reason').value };
  const note = $('cancel-note').value.trim();
  if (note) op.note = note;
  lifecycleOp(op);
});

$('room-invite').addEventListener('click', async () => {
  if (!room) return;
  const panel = $('room-invite-panel');
  if (!panel.hidden) { panel.hidden = true; return; }
  panel.hidden = false;
  // What is known already is shown at once: typing into the ids while the invitations load
  // must not be overwritten when they arrive.
  $('notice-push').hidden = !pushSupported();
  $('ids-erknm').value = room.inspection.erknm_number || '';
  $('ids-external').value = room.inspection.external_id || '';
  // The links made so far are listed first; a new one is made only on request.
  await renderInvitations();
  renderDeliveries();
  if (!$('room-invite-url').value) await newInvitation();
});

/** The notices and reminders of the room's inspection, each with its delivery state. */
async function renderDeliveries() {
  if (!room) return;
  const ul = $('notice-deliveries');
  let data;
  try {
    data = await api.get(`/api/inspections/${room.id}/deliveries`);
  } catch (e) {
    ul.replaceChildren(el('li', { class: 'form-error', text: errorText(e) }));
    return;
  }
  ul.replaceChildren(...(data.deliveries || []).map((d) => {
    const what = d.purpose === 'reminder' ? t('notices.purpose.reminder', { h: Math.round(d.offset_secs / 3600) }) : t(`notices.purpose.${d.purpose}`);
    const state = t(`notices.state.${d.state}`);
    const key = `notices.error.${d.last_error}`;
    const why = d.last_error ? ` (${t(key) === key ? d.last_error : t(key)})` : '';
    const when = d.sent_at ? formatTime(d.sent_at) : formatTime(d.due_at);
    const li = el('li', { class: 'delivery', 'data-state': d.state, 'data-purpose': d.purpose },
      el('span', { class: 'wrap', text: `${what} → ${d.channel === 'push' ? 'push' : d.address} · ${when} · ${state}${why}` }));
    if (d.state === 'failed' || d.state === 'unknown') {
      li.append(' ', el('button', {
        type: 'button', class: 'btn btn-small', text: t('notices.retry'),
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try { await api.post(`/api/inspections/${room.id}/deliveries/${d.id}/retry`); } catch (e) { toast(errorText(e)); }
          renderDeliveries();
        },
      }));
    }
    return li;
  }));
}

$('notice-contact-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!room) return;
  $('notice-error').hidden = true;
  try {
    await api.post(`/api/inspections/${room.id}/contacts`, { email: $('notice-email').value.trim(), consent: $('notice-consent').value });
    $('notice-email').value = '';
    toast(t('notices.added'));
  } catch (e) {
    showError($('notice-error'), e);
  }
  renderDeliveries();
});

$('notice-push').addEventListener('click', async () => {
  try {
    const r = await subscribePush('/api/me/push-subscriptions');
    $('notice-push-state').textContent = t(r === 'denied' ? 'push.denied' : 'push.subscribed');
  } catch (e) {
    $('notice-push-state').textContent = errorText(e);
  }
});

$('notice-reschedule-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!room || !$('notice-when').value) return;
  $('notice-error').hidden = true;
  try {
    room.inspection = await api.post(`/api/inspections/${room.id}/reschedule`, { scheduled_at: new Date($('notice-when').value).toISOString() });
    toast(t('notices.rescheduled', { t: formatTimeZoned(room.inspection.scheduled_at) }));
  } catch (e) {
    showError($('notice-error'), e);
  }
  renderDeliveries();
});

// The external ids, replaced together (an empty field clears one).
$('ids-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!room) return;
  const form = $('ids-form');
  clearFieldErrors(form);
  $('ids-error').hidden = true;
  try {
    room.inspection = await api.put(`/api/inspections/${room.id}/external-ids`, {
      erknm_number: $('ids-erknm').value.trim() || null,
      external_id: $('ids-external').value.trim() || null,
    });
    renderRoomMeta();
    toast(t('ids.saved'));
  } catch (e) {
    showFieldErrors(form, { erknm_number: 'ids-erknm', external_id: 'ids-external' }, e, $('ids-error'));
  }
});

async function newInvitation() {
  try {
    const inv = await api.post(`/api/inspections/${room.id}/invitations`, { label: room.inspection.business?.name });
    showInvite(inv, 'room-invite');
    renderInvitations();
  } catch (e) {
    showError($('room-error'), e);
  }
}
$('room-invite-new').addEventListener('click', () => newInvitation());

// ---------- Start ----------

window.addEventListener('hashchange', route);
window.addEventListener('langchange', () => {
  const oidcLink = $('login-oidc-link');
  if (oidcLink.dataset.name) oidcLink.textContent = t('login.oidc', { name: oidcLink.dataset.name });
  if (!me) return;
  const h = location.hash || '#/list';
  if (h.startsWith('#/list') || h === '#/') openList();
  if (room) {
    rerenderChecklist();
    renderEventLog();
    renderRoomMeta();
    renderConn({ state: room.sync.status });
    renderReception();
  }
});
bindLangSwitch($('lang'));
applyI18n();

/** The sign-in methods: the provider's button ("Sign in with <name>"), the password form. */
async function loadSignInMethods() {
  let m;
  try {
    m = await api.get('/api/auth/methods');
  } catch (_) {
    return; // An older server: the password form only.
  }
  if (m.oidc) {
    $('login-oidc').hidden = false;
    $('login-oidc-link').href = m.oidc.start_url;
    $('login-oidc-link').dataset.name = m.oidc.name;
    $('login-oidc-link').textContent = t('login.oidc', { name: m.oidc.name });
  }
  $('login-password-fields').hidden = !m.password;
  $('login-or').hidden = !m.password;
}

// A sign-in refused at the provider's return comes back as ?login_error=<code>: say it in
// the reader's words, then drop it from the address.
const loginError = new URLSearchParams(location.search).get('login_error');
if (loginError && /^[a-z0-9_]{1,64}$/.test(loginError)) {
  showError($('login-error'), { code: loginError });
  history.replaceState(null, '', `${location.pathname}${location.hash || '#/login'}`);
}

(async () => {
  loadSignInMethods();
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
