// Business phone page: accept the invitation, explain what happens before asking for any
// permission, then publish the rear camera and microphone, send the location continuously,
// mirror the checklist live and reconnect by itself.

import { t, applyI18n, bindLangSwitch, formatTime, formatTimeZoned, setTimeZone, zoneLabel } from './i18n.js';
import * as api from './api.js';
import { SyncClient, clientHints, missingFeatures } from './ws.js';
import { RtcSession, describeUplink } from './rtc.js';
import { renderChecklist, draftStore } from './checklist.js';
import { verdictOf, locationVerdict, appendEventLine, renderEventLines, usToIso, liveLogPath, mergeLiveLog, LIVE_LOG_LINES } from './present.js';
import { applyEvent, emptyState, resultOf } from './state.js';
import { errorText } from './errors.js';
import { ICONS } from './icons.js';
import { renderActPanel } from './act.js';
import { renderEvidence, capturePhoto, uploadPhoto, uploadFrame } from './evidence.js';
import { lowBandStart, lowBandStep } from './lowband.js';
import { pushSupported, subscribePush } from './push.js';
import { phoneCamera } from './camera-phone.js';

const $ = (id) => document.getElementById(id);
const page = {
  inspection: null, sync: null, rtc: null, stream: null, facing: 'environment',
  checklist: null, watchId: null, lastFixAt: 0, quality: 'unknown', geoError: null, torch: false,
  // Photos: the last position fix (sent with each photo), the inspector's requests already
  // being answered (by request seq), this phone's own copies of what it uploaded.
  lastPos: null, photoHandled: new Set(), localUrls: new Map(), shooting: 0,
  // Comments on their way (op ids), and each op's kind (to say which refusals matter).
  commentOps: new Set(), video: 'none', knownStatus: null,
  // What this browser cannot do (issue 17): shown here and reported in hello.
  missing: missingFeatures(),
  // Low-bandwidth mode (issue 19, web/lowband.js): the machine's memory, what it decided, the
  // inspector's request for a still waiting for the next step, the stills sent.
  lowband: lowBandStart(), videoMode: 'video', stillsReason: null, probing: false,
  frameRequested: false, stillBusy: false, stillsSent: 0, stillError: null,
};

/** The plain explanation of what this browser lacks, and which browsers work. */
function renderUnsupported() {
  const b = $('biz-unsupported');
  b.dataset.missing = page.missing.join(' ');
  b.hidden = page.missing.length === 0;
  if (b.hidden) return;
  const video = page.missing.includes('webrtc') || page.missing.includes('camera');
  $('unsupported-title').textContent = t(video ? 'biz.unsupported.video' : 'biz.unsupported.geo');
  $('unsupported-missing').textContent = t('biz.unsupported.missing', {
    list: page.missing.map((m) => t(`missing.${m}`)).join(', '),
  });
}

function fail(key, detail) {
  $('biz-error-text').textContent = t(key) + (detail ? ` (${detail})` : '');
  $('biz-error').hidden = false;
}

function show(view) {
  $('view-intro').hidden = view !== 'intro';
  $('view-live').hidden = view !== 'live';
  $('view-results').hidden = view !== 'results';
}

const OVER = ['finished', 'signed', 'cancelled'];

async function load() {
  const m = location.hash.match(/[#&]t=([^&]+)/);
  try {
    if (m) {
      const res = await api.post('/api/invitations/accept', { token: decodeURIComponent(m[1]) });
      page.inspection = res.inspection;
      page.resultsUrl = res.results_url;
      // The token is a secret: keep it out of history, screenshots and shared screens. The
      // guest cookie carries the session from now on.
      history.replaceState(null, '', `${location.pathname}#i=${res.inspection.id}`);
    } else if (location.hash.match(/[#&]r=([^&]+)/)) {
      // The durable results link: the business comes back after the inspection.
      const r = location.hash.match(/[#&]r=([^&]+)/)[1];
      const res = await api.post('/api/results/accept', { token: decodeURIComponent(r) });
      page.inspection = res.inspection;
      history.replaceState(null, '', `${location.pathname}#i=${res.inspection.id}`);
    } else if (location.hash.match(/[#&]i=([\w-]+)/)) {
      // A reload after accepting: the guest cookie authorizes, the id names the inspection.
      const id = location.hash.match(/[#&]i=([\w-]+)/)[1];
      const me = await api.get('/api/auth/me');
      page.inspection = await api.get(`/api/inspections/${me.guest?.inspection_id || id}`);
    } else {
      const me = await api.get('/api/auth/me');
      if (!me.guest) throw new api.ApiError(404, 'invitation_not_found', '');
      page.inspection = await api.get(`/api/inspections/${me.guest.inspection_id}`);
    }
  } catch (e) {
    if (e.code === 'invitation_expired' || e.code === 'invitation_revoked') fail('biz.expired');
    else if (e.code === 'inspection_closed') fail('biz.closed');
    else if (e.code === 'network') fail('error.network');
    else if (e.code === 'not_found' || e.code === 'unauthenticated') fail('biz.invalid');
    else { $('biz-error-text').textContent = errorText(e); $('biz-error').hidden = false; }
    return;
  }
  setTimeZone(page.inspection.time_zone);
  renderIntro();
  if (OVER.includes(page.inspection.status)) {
    // The link after the end: what happened, no camera asked for.
    await showResults();
    return;
  }
  show('intro');
  $('biz-push').hidden = !pushSupported() || page.inspection.status !== 'scheduled';
  // Before the start the same guest session opens the device check (nothing is recorded).
  $('biz-check').href = `/check/#i=${page.inspection.id}`;
  $('biz-check').hidden = page.inspection.status !== 'scheduled';
  $('biz-start').focus();
}

$('biz-push').addEventListener('click', async () => {
  $('biz-push').disabled = true;
  try {
    const r = await subscribePush(`/api/inspections/${page.inspection.id}/push-subscriptions`);
    $('biz-push-state').textContent = t(r === 'denied' ? 'push.denied' : 'push.subscribed');
  } catch (e) {
    $('biz-push-state').textContent = errorText(e);
  } finally {
    $('biz-push').disabled = false;
  }
});

// ---------- After the end ----------

async function showResults() {
  show('results');
  const i = page.inspection;
  const base = `/api/inspections/${i.id}`;
  let seq = 0;
  let state = emptyState();
  let events = [];
  try {
    const text = await api.getText(`${base}/events.jsonl`);
    events = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    for (const e of events) applyEvent(state, e);
    seq = events.length;
  } catch (e) {
    try { state = (await api.get(`${base}/state`)).state; } catch (_) { /* Shown as far as known. */ }
  }
  page.resultsState = state;
  page.resultsEvents = events;
  renderResults(seq);
}

function renderResults() {
  const i = page.inspection;
  const state = page.resultsState || emptyState();
  const lc = state.lifecycle || {};
  const status = lc.status === 'cancelled' ? 'cancelled' : (i.status === 'signed' ? 'signed' : lc.status || i.status);
  const when = status === 'cancelled' ? lc.cancelled_at : lc.finished_at;
  $('results-meta').textContent = [i.title, i.business?.name, i.business?.address, i.inspector?.display_name]
    .filter(Boolean).join(' · ');
  $('results-status').dataset.status = status;
  $('results-status').textContent = t(`biz.results.${status === 'cancelled' ? 'cancelled' : 'finished'}`, {
    t: when ? formatTimeZoned(usToIso(when)) : '—',
    reason: lc.cancel_reason ? t(`cancel.${lc.cancel_reason}`) : '',
  });
  const counts = { compliant: 0, violation: 0, not_applicable: 0, unanswered: 0 };
  for (const it of i.items || []) counts[resultOf(state, it.id)] += 1;
  $('results-summary').textContent = (i.items || []).length
    ? t('biz.results.summary', { c: counts.compliant, v: counts.violation, na: counts.not_applicable, u: counts.unanswered })
    : '';
  const cl = renderChecklist($('results-checklist'), i.items || [], { editable: false });
  cl.update(state);
  const ol = $('results-eventlog');
  renderEventLines(ol, page.resultsEvents || [], state, i.items);
  // After the end the business rates the inspection (issue 16) on its own page.
  $('results-rate').hidden = !(status === 'finished' || status === 'signed');
  $('results-rate').href = `/rate/#i=${i.id}`;
  // The act of a finished inspection: read, sign or refuse it here, on the phone.
  if (status === 'finished' || status === 'signed') {
    renderActPanel($('results-act-panel'), i.id, { slot: `business:${i.id}`, keyInspection: i.id });
  }
}

function renderIntro() {
  const i = page.inspection;
  $('intro-title').textContent = i.title;
  $('live-title').textContent = i.title;
  $('biz-title').textContent = i.business?.name || t('biz.title');
  $('intro-meta').textContent = [i.business?.name, i.business?.address, formatTime(i.scheduled_at), i.inspector?.display_name]
    .filter(Boolean).join(' · ');
}

// ---------- Camera ----------

async function openCamera(facing) {
  return navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: { echoCancellation: true, noiseSuppression: true },
  });
}

function setupCameraControls() {
  const track = page.stream?.getVideoTracks()[0];
  const caps = track?.getCapabilities ? track.getCapabilities() : {};
  $('torch').hidden = !caps.torch;
  $('torch').setAttribute('aria-pressed', String(page.torch));
  const zoom = $('zoom');
  if (caps.zoom && caps.zoom.max > caps.zoom.min) {
    zoom.min = caps.zoom.min;
    zoom.max = caps.zoom.max;
    zoom.step = caps.zoom.step || 0.1;
    zoom.value = track.getSettings().zoom ?? caps.zoom.min;
    $('zoom-wrap').hidden = false;
  } else {
    $('zoom-wrap').hidden = true;
  }
}

/** Switch to camera `next` (`environment` or `user`); the inspector's command does too. */
async function switchCamera(next) {
  const old = page.stream?.getVideoTracks()[0];
  try {
    // Some phones cannot open two cameras at once: release the old one first.
    old?.stop();
    const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: next }, width: { ideal: 1280 }, height: { ideal: 720 } } });
    const track = s.getVideoTracks()[0];
    if (old) page.stream.removeTrack(old);
    page.stream.addTrack(track);
    page.facing = next;
    page.torch = false;
    await page.rtc?.replaceTrack(track);
    $('local-video').srcObject = page.stream;
    setupCameraControls();
  } catch (e) {
    fail('biz.camera.denied', e.name);
  }
}

$('cam-switch').addEventListener('click', async () => {
  await switchCamera(page.facing === 'environment' ? 'user' : 'environment');
  // The phone's own choice overrides the inspector's: the console learns it from the report.
  page.cam?.report();
});

$('torch').addEventListener('click', async () => {
  const track = page.stream?.getVideoTracks()[0];
  if (!track) return;
  try {
    await track.applyConstraints({ advanced: [{ torch: !page.torch }] });
    page.torch = !page.torch;
    $('torch').setAttribute('aria-pressed', String(page.torch));
    page.cam?.report();
  } catch (_) { /* The constraint is advisory; the button stays as it was. */ }
});

$('zoom').addEventListener('input', () => {
  const track = page.stream?.getVideoTracks()[0];
  track?.applyConstraints({ advanced: [{ zoom: Number($('zoom').value) }] }).then(() => page.cam?.report()).catch(() => {});
});

function renderMute() {
  const track = page.stream?.getAudioTracks()[0];
  const muted = !track || !track.enabled;
  $('mute').disabled = !track;
  $('mute').setAttribute('aria-pressed', String(muted));
  $('mute-icon').innerHTML = muted ? ICONS.micOff : ICONS.mic;
  $('mute-label').dataset.i18n = muted ? 'biz.unmute' : 'biz.mute';
  $('mute-label').textContent = t(muted ? 'biz.unmute' : 'biz.mute');
}
$('mute').addEventListener('click', () => {
  const track = page.stream?.getAudioTracks()[0];
  if (track) track.enabled = !track.enabled;
  renderMute();
});

// ---------- Location ----------

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function startLocation() {
  if (!('geolocation' in navigator)) {
    sendNoFix('unavailable');
    return;
  }
  page.watchId = navigator.geolocation.watchPosition((pos) => {
    page.lastPos = pos;
    page.geoError = null;
    // A fix every few seconds is plenty for the verdict and stays well under the rate limit;
    // a fix that comes sooner waits for its turn rather than being lost (a phone that stops
    // moving reports nothing new, so the last position must still reach the server).
    page.pendingFix = pos;
    const wait = 3000 - (Date.now() - page.lastFixAt);
    if (wait > 0) {
      if (!page.fixTimer) {
        page.fixTimer = setTimeout(() => { page.fixTimer = null; sendFix(page.pendingFix); }, wait);
      }
      return;
    }
    sendFix(pos);
  }, (err) => {
    const code = err.code === 1 ? 'permission_denied' : err.code === 3 ? 'timeout' : 'unavailable';
    if (page.geoError !== code) sendNoFix(code);
    page.geoError = code;
    renderLocation();
    $('geo-line').textContent = t(code === 'permission_denied' ? 'geo.denied' : 'geo.no_fix');
  }, { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 });
}

function sendFix(pos) {
  const c = pos.coords;
  page.lastFixAt = Date.now();
  page.sync?.op({
    kind: 'location', lat: c.latitude, lon: c.longitude, accuracy: num(c.accuracy) ?? 0,
    altitude: num(c.altitude), altitude_accuracy: num(c.altitudeAccuracy), heading: num(c.heading),
    speed: num(c.speed), device_ts: Math.round(pos.timestamp),
  });
  $('geo-line').textContent = `${c.latitude.toFixed(5)}, ${c.longitude.toFixed(5)} · ${t('geo.accuracy', { m: Math.round(c.accuracy) })}`;
}

function sendNoFix(code) {
  // The server counts a missing position as evidence too, so the reason is reported.
  page.sync?.op({ kind: 'location_unavailable', reason: code });
}

// ---------- Session ----------

$('biz-start').addEventListener('click', async () => {
  $('biz-start').disabled = true;
  show('live');
  // Without getUserMedia there is nothing to ask for: the unsupported banner says why.
  if (!page.missing.includes('camera')) {
    try {
      page.stream = await openCamera(page.facing);
      $('local-video').srcObject = page.stream;
      setupCameraControls();
    } catch (e) {
      page.stream = null;
      $('camera-banner').hidden = false;
    }
  }
  renderMute();
  renderQuality();

  const sync = new SyncClient(page.inspection.id);
  sync.hints = clientHints();
  sync.missing = page.missing;
  page.sync = sync;
  page.checklist = renderChecklist($('checklist'), page.inspection.items || [], checklistOptions());
  page.events = [];
  sync.addEventListener('state', (ev) => { renderConn(ev.detail); renderState(); });
  sync.addEventListener('welcome', (ev) => {
    if (!(page.inspection.items || []).length && sync.checklist.length) {
      page.inspection.items = sync.checklist;
      rebuildChecklist();
    }
    const w = ev.detail.welcome;
    page.knownStatus = page.knownStatus || sync.data.lifecycle.status;
    if (w.snapshot) {
      // The latest actions so far, for the phone's own event log (not the whole history),
      // once the video is through: the answer to the phone's offer must not wait behind it.
      page.events = [];
      afterMediaSettles().then(() => api.getText(liveLogPath(page.inspection.id, w.seq))).then((text) => {
        ({ events: page.events, earlier: page.eventsEarlier } = mergeLiveLog(text, page.events));
        renderLog();
      }).catch(() => { /* The live stream still fills the log. */ });
    }
    for (const e of w.events || []) page.events.push(e);
    renderLog();
  });
  // The inspector's camera commands and pointer (issue 25), and this camera's report.
  page.cam = phoneCamera(page, { switchCamera, refresh: setupCameraControls });
  sync.addEventListener('event', (ev) => {
    page.cam.onEvent(ev.detail.event);
    // The inspector's ask for a still: answered at the low-bandwidth machine's next step.
    if (ev.detail.event.kind === 'request_frame') {
      page.frameRequested = true;
      photoToast(t('stills.requested.biz'), 'request');
    }
    page.events.push(ev.detail.event);
    appendEventLine($('eventlog'), ev.detail.event, sync.data, page.inspection.items, LIVE_LOG_LINES);
  });
  sync.addEventListener('ack', (ev) => {
    if (!page.commentOps.delete(ev.detail.op_id)) return;
    page.checklist.commentDone(ev.detail.op_id, null);
  });
  sync.addEventListener('error', (ev) => {
    const err = ev.detail.error;
    if (page.commentOps.has(err.op_id)) {
      page.commentOps.delete(err.op_id);
      page.checklist.commentDone(err.op_id, err);
      return;
    }
    // Location and presence refusals are the server's business; anything else is said.
    if (['location', 'location_unavailable', 'presence', 'camera_caps'].includes(ev.detail.op?.kind)) return;
    $('op-error').textContent = errorText(err);
    $('op-error').hidden = false;
    clearTimeout(page.opErrorTimer);
    page.opErrorTimer = setTimeout(() => { $('op-error').hidden = true; }, 8000);
  });
  sync.addEventListener('change', () => renderState());
  sync.connect();
  startLocation();

  // Without RTCPeerConnection the camera still takes photos; no call is attempted.
  if (page.stream && !page.missing.includes('webrtc')) {
    const rtc = new RtcSession(sync, { role: 'publisher', stream: page.stream });
    page.rtc = rtc;
    rtc.addEventListener('quality', (ev) => {
      page.quality = ev.detail.quality;
      page.video = ev.detail.video;
      page.uplink = ev.detail.stats;
      stepLowBand(ev.detail.stats);
      renderQuality();
      renderRec();
    });
    rtc.addEventListener('track', (ev) => {
      // The inspector's voice: play it through a hidden audio element.
      if (ev.detail.track.kind !== 'audio') return;
      let audio = document.getElementById('remote-audio');
      if (!audio) {
        audio = Object.assign(document.createElement('audio'), { id: 'remote-audio', autoplay: true });
        document.body.append(audio);
      }
      audio.srcObject = ev.detail.stream;
      audio.play().catch(() => {});
    });
    rtc.start();
  }
  setInterval(sendPresence, 20000);
  document.addEventListener('visibilitychange', sendPresence);
  window.addEventListener('online', () => sync.reconnectNow());
});

/** How long the phone's secondary work waits for its media connection, at most. */
const MEDIA_SETTLE_MS = 3000;

/** Resolves once the media connection is up or has failed (or at once without one), or
 * after MEDIA_SETTLE_MS: the join's offer, answer and first frame get the main thread first. */
function afterMediaSettles() {
  const rtc = page.rtc;
  const settled = (s) => ['connected', 'failed', 'closed'].includes(s);
  if (!rtc || settled(rtc.pc?.connectionState)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); rtc.removeEventListener('state', onState); resolve(); };
    const onState = (ev) => { if (settled(ev.detail.state)) done(); };
    const timer = setTimeout(done, MEDIA_SETTLE_MS);
    rtc.addEventListener('state', onState);
  });
}

/** One step of the low-bandwidth mode (web/lowband.js) with this second's statistics. */
function stepLowBand(stats) {
  if (!page.rtc || page.ended || page.sync?.data?.lifecycle?.status !== 'live') return;
  const requested = page.frameRequested;
  page.frameRequested = false;
  const r = lowBandStep(page.lowband, {
    available_kbps: stats?.available_kbps ?? null,
    frames_sent: stats?.frames_sent ?? null,
    connected: !!stats?.connected,
    requested,
  }, Date.now());
  page.lowband = r.memo;
  page.probing = r.probing;
  for (const a of r.actions) {
    if (a === 'pause_video') page.rtc.setVideoPaused(true);
    else if (a === 'resume_video') page.rtc.setVideoPaused(false);
    else if (a === 'still') sendStill(requested ? 'requested' : 'low_bandwidth');
  }
  if (r.mode !== page.videoMode || r.reason !== page.stillsReason) {
    page.videoMode = r.mode;
    page.stillsReason = r.reason;
    // Both sides see the mode and why: the presence carries it into the log.
    sendPresence();
  }
}

/** Sleep `ms`. */
const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * Capture the camera's frame at its resolution and upload it as a still (`frame`). One at a
 * time: a still due while one is on its way is skipped (the next is 5 s later). A network
 * failure retries the same bytes under the same op id, so the server keeps it once.
 */
async function sendStill(reason) {
  const track = page.stream?.getVideoTracks()[0];
  if (!track || track.readyState !== 'live') return;
  if (page.stillBusy) {
    // The inspector's ask waits for the still on its way, not lost behind it.
    if (reason === 'requested') page.frameRequested = true;
    return;
  }
  page.stillBusy = true;
  const opId = typeof crypto.randomUUID === 'function' ? crypto.randomUUID() : null;
  try {
    const capturedAt = Date.now();
    const { blob } = await capturePhoto(track, $('local-video'), { grab: true });
    for (let attempt = 1; ; attempt += 1) {
      try {
        await uploadFrame(page.inspection.id, reason, blob, { position: page.lastPos, capturedAt, opId });
        break;
      } catch (e) {
        // A network failure or a still right after the last one (429) is tried again.
        if (!(e.code === 'network' || e.status >= 500 || e.status === 429) || attempt >= 3 || !opId) throw e;
        await pause(e.status === 429 ? 600 : 1000 * attempt);
      }
    }
    page.stillsSent += 1;
    page.stillError = null;
  } catch (e) {
    page.stillError = errorText(e);
  } finally {
    page.stillBusy = false;
    renderQuality();
  }
}

function sendPresence() {
  if (page.sync?.status !== 'open') return;
  const op = { kind: 'presence', quality: page.quality || 'unknown', visible: document.visibilityState === 'visible' };
  if (page.rtc) {
    op.video_mode = page.videoMode;
    if (page.videoMode === 'stills' && page.stillsReason) op.stills_reason = page.stillsReason;
  }
  const net = navigator.connection?.effectiveType || navigator.connection?.type;
  if (net) op.network = String(net).slice(0, 32);
  if (page.sync.rttMs != null) op.rtt_ms = page.sync.rttMs;
  page.sync.op(op);
}

function renderLog() {
  renderEventLines($('eventlog'), page.events || [], page.sync.data, page.inspection.items,
    { limit: LIVE_LOG_LINES, earlier: !!page.eventsEarlier });
  $('biz-log-zone').textContent = zoneLabel();
}

/** "The server records": while the phone's video reaches it and the inspection is not over. */
function renderRec() {
  const st = page.sync?.data?.lifecycle?.status;
  $('biz-rec').hidden = !(page.video === 'live' && !OVER.includes(st));
}

function checklistOptions() {
  return {
    editable: false,
    drafts: draftStore(page.inspection.id, 'comment'),
    selfId: () => page.sync?.you?.participant_id,
    onComment: (itemId, text) => {
      const opId = page.sync.op({ kind: 'comment', item_id: itemId, text });
      page.commentOps.add(opId);
      return opId;
    },
    photoButton: {
      text: 'evidence.take',
      label: 'evidence.take.label',
      onClick: (itemId) => takeAndSend(itemId),
      disabled: (state) => state.lifecycle?.status !== 'live' || !page.stream,
    },
    renderEvidence: (box, entries, item, data) => renderEvidence(box, entries, {
      inspectionId: page.inspection.id, localUrls: page.localUrls, requested: !!data.photo_request,
    }),
  };
}

function rebuildChecklist() {
  page.checklist = renderChecklist($('checklist'), page.inspection.items || [], checklistOptions());
  renderState();
}

// ---------- Photos ----------

function photoToast(text, kind = 'ok') {
  const b = $('photo-banner');
  b.textContent = text;
  b.dataset.kind = kind;
  b.hidden = false;
  clearTimeout(photoToast.timer);
  photoToast.timer = setTimeout(() => { b.hidden = true; }, 5000);
}

/** Take a full-resolution photo now (the call goes on) and upload it for the item. */
async function takeAndSend(itemId, attempt = 1) {
  const track = page.stream?.getVideoTracks()[0];
  if (!track || track.readyState !== 'live') return false;
  page.shooting += 1;
  try {
    const capturedAt = Date.now();
    // The inspector's pointer on screen at the capture goes with the photo (issue 25).
    const pointerSeq = page.cam?.shownPointerSeq() ?? null;
    const { blob } = await capturePhoto(track, $('local-video'));
    const res = await uploadPhoto(page.inspection.id, itemId, blob, { position: page.lastPos, capturedAt, pointerSeq });
    page.localUrls.set(res.evidence.id, URL.createObjectURL(blob));
    photoToast(t('evidence.sent'));
    renderState();
    return true;
  } catch (e) {
    const code = e.code || e.message || 'error';
    photoToast(t('evidence.failed', { code }), 'error');
    // A network failure is retried; a refusal by the server is final.
    if ((code === 'network' || e.status >= 500) && attempt < 3) {
      setTimeout(() => takeAndSend(itemId, attempt + 1), 3000 * attempt);
    }
    return false;
  } finally {
    page.shooting -= 1;
  }
}

/** The inspector's pending photo requests (folded state): answer each one once. */
function answerPhotoRequests(state) {
  if (state.lifecycle?.status !== 'live' || !page.stream) return;
  for (const item of page.inspection.items || []) {
    const req = state.items?.[item.id]?.photo_request;
    if (!req || page.photoHandled.has(req.seq)) continue;
    page.photoHandled.add(req.seq);
    photoToast(t('evidence.requested.biz', { n: item.number ?? '' }), 'request');
    // Failures are retried inside; the inspector can also ask again (a new request).
    takeAndSend(item.id);
  }
}

function renderConn(detail) {
  const c = $('conn');
  c.dataset.state = detail.state;
  c.textContent = detail.state === 'reconnecting' && detail.delay
    ? t('conn.reconnecting', { s: Math.ceil(detail.delay / 1000) })
    : t(`conn.${detail.state === 'idle' ? 'connecting' : detail.state}`);
}

function renderQuality() {
  $('quality').dataset.quality = page.quality;
  $('quality-text').textContent = `${t('quality.label')}: ${page.quality === 'unknown' ? t('quality.none') : t(`quality.${page.quality}`)}`;
  const el = $('uplink');
  const u = page.uplink;
  if (!el || !u) return;
  // The phone's own uplink in plain words: what leaves it and what holds it back.
  const kbps = u.sent_kbps ?? 0;
  const stills = page.videoMode === 'stills';
  const state = stills ? 'stills' : describeUplink(u, page.video);
  const key = stills && page.stillsReason === 'stalled' ? 'uplink.stills.stalled' : `uplink.${state}`;
  el.dataset.state = state;
  el.dataset.videoMode = page.videoMode;
  el.dataset.stillsSent = String(page.stillsSent);
  el.dataset.probing = String(page.probing);
  el.dataset.sentKbps = String(kbps);
  el.dataset.availableKbps = u.available_kbps === null ? '' : String(u.available_kbps);
  el.dataset.rttMs = u.rtt_ms === null ? '' : String(u.rtt_ms);
  el.dataset.limitation = u.limitation || '';
  el.dataset.loss = String(Math.round((u.loss || 0) * 1000) / 1000);
  el.textContent = t(key, { kbps, pct: Math.round((u.loss || 0) * 100) });
  if (stills) {
    el.textContent += ` (${t('stills.sent', { n: page.stillsSent })})`;
    if (page.probing) el.textContent += ` ${t('uplink.probing')}`;
    if (page.stillError) el.textContent += ` ${t('stills.failed', { why: page.stillError })}`;
  }
  el.hidden = u.sent_kbps === null;
}

function renderState() {
  const sync = page.sync;
  if (!sync) return;
  page.checklist.update(sync.data);
  answerPhotoRequests(sync.data);
  renderLocation();
  const phase = sync.data.lifecycle.status;
  // "The inspection has started": said once when it happens while the phone is connected.
  if (page.knownStatus === 'not_started' && phase === 'live') {
    $('started-banner').hidden = false;
    navigator.vibrate?.(200);
    clearTimeout(page.startedTimer);
    page.startedTimer = setTimeout(() => { $('started-banner').hidden = true; }, 10000);
  }
  if (sync.welcomed) page.knownStatus = phase;
  renderRec();
  const finished = phase === 'finished';
  const cancelled = phase === 'cancelled';
  const actKey = finished ? JSON.stringify(sync.data.act ?? null) : null;
  if (actKey !== page.actKey) {
    page.actKey = actKey;
    if (actKey !== null) {
      renderActPanel($('act-panel'), page.inspection.id, { slot: `business:${page.inspection.id}`, keyInspection: page.inspection.id });
      if (page.resultsUrl) {
        $('results-link').textContent = page.resultsUrl;
        $('results-link').href = page.resultsUrl;
        $('results-link-line').hidden = false;
      }
    }
  }
  $('waiting-banner').hidden = sync.status !== 'open' || phase !== 'not_started';
  $('finished-banner').hidden = !finished;
  $('cancelled-banner').hidden = !cancelled;
  if (finished || cancelled) $('started-banner').hidden = true;
  if ((finished || cancelled) && !page.ended) {
    page.ended = true;
    // Nothing more is recorded after the end: release the camera and the location.
    page.rtc?.stop();
    page.stream?.getTracks().forEach((tr) => tr.stop());
    if (page.watchId !== null) navigator.geolocation.clearWatch(page.watchId);
    page.video = 'none';
    $('cam-switch').disabled = true;
    $('mute').disabled = true;
    $('loc-banner').hidden = true;
    page.inspection.status = phase;
  }
  renderQuality();
}

/** One location banner: the deciding reason, in plain words, and what to do about it. */
function renderLocation() {
  const sync = page.sync;
  const pid = sync?.you?.participant_id;
  const b = $('loc-banner');
  if (!pid || page.ended) { b.hidden = true; return; }
  const data = { participants: { ...sync.data.participants } };
  // The page's own refusal counts at once, before the server's verdict comes back.
  if (page.geoError && data.participants[pid] && !data.participants[pid].no_fix) {
    data.participants[pid] = { ...data.participants[pid], no_fix: page.geoError };
  } else if (page.geoError && !data.participants[pid]) {
    data.participants[pid] = { no_fix: page.geoError };
  }
  const lv = locationVerdict(data, pid);
  b.dataset.reason = lv.reason;
  b.dataset.verdict = verdictOf(sync.data, pid).level;
  b.hidden = ['ok', 'none'].includes(lv.reason);
  b.classList.toggle('banner-danger', lv.reason === 'spoofed');
  $('loc-title').textContent = lv.title;
  $('loc-do').textContent = lv.advice;
  $('loc-reasons').replaceChildren(...lv.details.map((r) => Object.assign(document.createElement('li'), { textContent: r })));
  $('loc-details').hidden = lv.details.length === 0;
}

window.addEventListener('langchange', () => {
  renderUnsupported();
  if (page.inspection) renderIntro();
  if (page.sync) {
    rebuildChecklist();
    renderConn({ state: page.sync.status });
    renderLog();
  }
  if (!$('view-results').hidden) renderResults();
  renderMute();
});
bindLangSwitch($('lang'));
applyI18n();
renderUnsupported();
load();
