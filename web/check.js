// The device check before an inspection (/check/#t=<token>, linked from the notice and every
// reminder): camera and microphone with a preview, the rear camera, location with the
// server's first trust reading, a WebRTC connection to the server's media peer (round trip,
// upload rate), the browser. It is a check session, not a join: the server's probe is outside
// the inspection's room, nothing is recorded. What to fix comes from the server (`problems`).

import { t, applyI18n, bindLangSwitch, formatTimeZoned, setTimeZone } from './i18n.js';
import * as api from './api.js';
import { clientInfo, clientHints } from './ws.js';
import { errorText } from './errors.js';
import { signalText } from './signals.js';
import { rtcFailed } from './present.js';

const $ = (id) => document.getElementById(id);
const page = { inspection: null, stream: null };
/** How long the upload is measured after the connection is up. */
const UPLOAD_MS = 4000;
const PINGS = 5;
/** How long the data channel may take to open (a loaded phone on a slow network). */
const CHANNEL_WAIT_MS = 15000;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(text) {
  $('check-error-text').textContent = text;
  $('check-error').hidden = false;
}

/** One row of the list: `state` is wait, ok, warn or bad. */
function row(step, state, text, value) {
  let li = document.querySelector(`#check-list li[data-step="${step}"]`);
  if (!li) {
    li = el('li', { 'data-step': step });
    $('check-list').append(li);
  }
  li.dataset.state = state;
  if (value !== undefined && value !== null) li.dataset.value = String(value);
  else delete li.dataset.value;
  const mark = { wait: '…', ok: '✓', warn: '!', bad: '✕' }[state];
  li.replaceChildren(el('span', { class: 'icon', 'aria-hidden': 'true', text: mark }),
    el('span', { text: `${t(`check.step.${step}`)}: ${text}` }));
}

/** getUserMedia's error as the check's permission word. */
function permissionOf(e) {
  if (!e) return 'granted';
  if (e.name === 'NotAllowedError' || e.name === 'SecurityError') return 'denied';
  if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError') return 'unavailable';
  return 'failed';
}

async function media(constraints) {
  if (!navigator.mediaDevices?.getUserMedia) return { error: { name: 'NotFoundError' } };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints) };
  } catch (error) {
    return { error };
  }
}

/** Whether the phone has a camera facing away from the user. */
async function hasRearCamera(track) {
  if (track.getSettings?.().facingMode === 'environment') return true;
  if ((track.getCapabilities?.().facingMode || []).includes('environment')) return true;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  if (devices.some((d) => d.kind === 'videoinput' && /back|rear|environment|задн/i.test(d.label))) return true;
  const r = await media({ video: { facingMode: { exact: 'environment' } } });
  r.stream?.getTracks().forEach((x) => x.stop());
  return !!r.stream;
}

async function checkCamera(report) {
  row('camera', 'wait', t('check.wait'));
  row('microphone', 'wait', t('check.wait'));
  const v = await media({ video: { facingMode: { ideal: 'environment' } } });
  const a = await media({ audio: true });
  report.camera = permissionOf(v.error);
  report.microphone = permissionOf(a.error);
  const tracks = [...(v.stream?.getTracks() || []), ...(a.stream?.getTracks() || [])];
  page.stream = tracks.length ? new MediaStream(tracks) : null;
  if (v.stream) $('check-preview').srcObject = new MediaStream(v.stream.getVideoTracks());
  $('check-preview').hidden = !v.stream;
  row('camera', report.camera === 'granted' ? 'ok' : 'bad', t(`check.perm.${report.camera}`), report.camera);
  row('microphone', report.microphone === 'granted' ? 'ok' : 'bad', t(`check.perm.${report.microphone}`), report.microphone);
  if (v.stream) {
    report.rear_camera = await hasRearCamera(v.stream.getVideoTracks()[0]);
    row('rear', report.rear_camera ? 'ok' : 'warn', t(report.rear_camera ? 'check.rear.yes' : 'check.rear.no'), String(report.rear_camera));
  } else {
    row('rear', 'bad', t('check.rear.unknown'));
  }
}

function rawOf(pos) {
  const c = pos.coords;
  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return {
    lat: c.latitude, lon: c.longitude, accuracy: num(c.accuracy) ?? 0,
    altitude: num(c.altitude), altitude_accuracy: num(c.altitudeAccuracy), heading: num(c.heading),
    speed: num(c.speed), device_ts: Math.round(pos.timestamp),
  };
}

/** A few position fixes (at most 3, within 8 s) or the reason there are none. */
function checkLocation(report) {
  row('location', 'wait', t('check.wait'));
  report.samples = [];
  if (!navigator.geolocation) {
    report.location = 'unavailable';
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = (perm) => {
      if (done) return;
      done = true;
      navigator.geolocation.clearWatch(id);
      clearTimeout(timer);
      report.location = perm;
      resolve();
    };
    const id = navigator.geolocation.watchPosition((pos) => {
      report.samples.push(rawOf(pos));
      if (report.samples.length >= 3) finish('granted');
    }, (err) => {
      if (report.samples.length) finish('granted');
      else finish(err.code === 1 ? 'denied' : err.code === 2 ? 'unavailable' : 'failed');
    }, { enableHighAccuracy: true, maximumAge: 0, timeout: 8000 });
    const timer = setTimeout(() => finish(report.samples.length ? 'granted' : 'failed'), 8000);
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
}

function waitFor(target, test, event, ms) {
  return new Promise((resolve) => {
    if (test()) { resolve(true); return; }
    const on = () => { if (test()) { target.removeEventListener(event, on); clearTimeout(timer); resolve(true); } };
    const timer = setTimeout(() => { target.removeEventListener(event, on); resolve(test()); }, ms);
    target.addEventListener(event, on);
  });
}

async function bytesSent(pc) {
  const stats = await pc.getStats();
  let sent = 0;
  let iceRtt = null;
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp') sent += r.bytesSent || 0;
    if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated && typeof r.currentRoundTripTime === 'number') {
      iceRtt = r.currentRoundTripTime * 1000;
    }
  });
  return { sent, iceRtt };
}

/** The WebRTC part: a probe connection to the server's media peer. */
async function checkConnection(report) {
  row('connection', 'wait', t('check.wait'));
  const base = `/api/inspections/${page.inspection.id}/device-check/rtc`;
  const cfg = await api.get(base);
  const pc = new RTCPeerConnection({ iceServers: cfg.ice_servers || [] });
  // Set before anything can fail: a failure below says where, and what was measured stays.
  report.rtc = { connected: false };
  try {
    for (const track of page.stream?.getTracks() || []) pc.addTrack(track, page.stream);
    const dc = pc.createDataChannel('check');
    const replies = [];
    const waiting = new Map();
    dc.onmessage = (ev) => {
      const text = String(ev.data);
      if (text.startsWith('pong:')) waiting.get(text.slice(5))?.(performance.now());
      else if (text.startsWith('bytes:')) replies.push(Number(text.slice(6)));
    };
    await pc.setLocalDescription(await pc.createOffer());
    // The probe does not trickle: the offer carries the candidates.
    await waitFor(pc, () => pc.iceGatheringState === 'complete', 'icegatheringstatechange', 3000);
    const d = pc.localDescription;
    const answer = await api.post(base, { sdp: { type: d.type, sdp: d.sdp } });
    await pc.setRemoteDescription(answer.sdp);
    // An open data channel is the proof: ICE, DTLS and SCTP are all up.
    const open = await waitFor(dc, () => dc.readyState === 'open', 'open', CHANNEL_WAIT_MS);
    report.rtc.connected = open;
    if (!open) {
      report.rtc.failure = 'no_channel';
      report.rtc.ice_state = pc.iceConnectionState;
      return;
    }
    const lost = () => {
      if (dc.readyState === 'open') return false;
      report.rtc.failure = 'closed';
      report.rtc.ice_state = pc.iceConnectionState;
      return true;
    };
    const rtts = [];
    for (let i = 0; i < PINGS; i += 1) {
      if (lost()) break;
      const key = String(i);
      const sentAt = performance.now();
      const back = await new Promise((resolve) => {
        waiting.set(key, resolve);
        setTimeout(() => resolve(null), 2000);
        try { dc.send(`ping:${key}`); } catch { resolve(null); }
      });
      if (back !== null) rtts.push(back - sentAt);
      await sleep(150);
    }
    report.rtc.rtt_ms = rtts.length ? Math.round(median(rtts) * 10) / 10 : null;
    if (lost()) return;
    row('connection', 'wait', t('check.measuring'));
    const serverBytes = async () => {
      const n = replies.length;
      dc.send('bytes');
      for (let i = 0; i < 20 && replies.length === n; i += 1) await sleep(50);
      return replies.length > n ? replies[replies.length - 1] : null;
    };
    const b0 = await bytesSent(pc);
    if (lost()) return;
    const s0 = await serverBytes();
    const t0 = performance.now();
    await sleep(UPLOAD_MS);
    const b1 = await bytesSent(pc);
    const s1 = lost() ? null : await serverBytes();
    const secs = (performance.now() - t0) / 1000;
    report.rtc.seconds = Math.round(secs * 10) / 10;
    report.rtc.ice_rtt_ms = b1.iceRtt === null ? null : Math.round(b1.iceRtt * 10) / 10;
    if (page.stream) {
      report.rtc.upload_kbps = Math.round(((b1.sent - b0.sent) * 8) / 1000 / secs);
      // The server counts RTP payload bytes; its rate is what actually arrived.
      if (s0 !== null && s1 !== null) report.rtc.server_kbps = Math.round(((s1 - s0) * 8) / 1000 / secs);
    }
  } finally {
    pc.close();
  }
}

/** Name and version from the user agent (Yandex and Edge say Chrome too, so they go first). */
export function browserOf(ua) {
  const rules = [
    ['YaBrowser', /YaBrowser\/([\d.]+)/], ['Edge', /Edg(?:A|iOS)?\/([\d.]+)/],
    ['Samsung Internet', /SamsungBrowser\/([\d.]+)/], ['Opera', /OPR\/([\d.]+)/],
    ['Firefox', /(?:Firefox|FxiOS)\/([\d.]+)/], ['Chrome', /(?:Chrome|CriOS)\/([\d.]+)/],
    ['Safari', /Version\/([\d.]+).*Safari/],
  ];
  for (const [name, re] of rules) {
    const m = ua.match(re);
    if (m) return { name, version: m[1] };
  }
  return { name: 'unknown', version: '' };
}

function renderResult(r) {
  const rtc = r.rtc;
  if (!rtc || !rtc.connected) row('connection', 'bad', rtcFailed(rtc));
  else {
    const ms = rtc.rtt_ms ?? rtc.ice_rtt_ms;
    row('connection', r.problems.includes('connection_slow') ? 'warn' : 'ok',
      t('check.rtc.rtt', { ms: ms === null || ms === undefined ? '—' : Math.round(ms) }), ms ?? '');
    const kbps = rtc.server_kbps ?? rtc.upload_kbps;
    if (kbps !== null && kbps !== undefined) {
      row('upload', r.problems.includes('upload_low') ? 'warn' : 'ok', t('check.rtc.upload', { kbps }), kbps);
    }
  }
  if (r.location === 'granted' && r.reading) {
    const level = r.reading.level;
    const why = (r.reading.signals || []).map((s) => signalText(s)).join(' ');
    row('location', level === 'trusted' ? 'ok' : 'warn',
      `${t(`check.trust.${level}`)} (${r.reading.lat.toFixed(5)}, ${r.reading.lon.toFixed(5)})${why ? ` — ${why}` : ''}`, level);
  } else {
    row('location', 'bad', t(`check.perm.${r.location}`), r.location);
  }
  row('browser', 'ok', `${r.browser} ${r.browser_version}`.trim(), r.browser);
  const ready = r.problems.length === 0;
  $('check-summary').dataset.ready = ready ? 'yes' : 'no';
  $('check-summary').className = `banner ${ready ? 'banner-ok' : 'banner-warn'}`;
  $('check-summary').textContent = t(ready ? 'check.ready' : 'check.not_ready');
  $('check-fix').replaceChildren(...r.problems.map((p) => el('li', { 'data-problem': p, text: t(`check.fix.${p}`) })));
}

async function run() {
  $('check-intro').hidden = true;
  $('check-run').hidden = false;
  $('check-run').dataset.done = '';
  $('check-again').hidden = true;
  $('check-list').replaceChildren();
  $('check-fix').replaceChildren();
  $('check-summary').textContent = '';
  $('check-error').hidden = true;
  page.stream?.getTracks().forEach((x) => x.stop());
  const report = { rear_camera: null, rtc: null };
  await checkCamera(report);
  await checkLocation(report);
  try {
    await checkConnection(report);
  } catch (e) {
    // What was measured before the failure stays; the failure says which kind it was.
    report.rtc = { ...(report.rtc || { connected: false }), failure: e instanceof api.ApiError ? 'refused' : 'error' };
    if (e instanceof api.ApiError) fail(errorText(e));
    else console.warn('device check connection', e);
  }
  const b = browserOf(navigator.userAgent);
  report.browser = b.name;
  report.browser_version = b.version;
  const client = clientInfo();
  const hints = clientHints();
  if (hints.length) client.hints = hints;
  report.client = client;
  try {
    const result = await api.put(`/api/inspections/${page.inspection.id}/device-check`, report);
    renderResult(result);
  } catch (e) {
    fail(errorText(e));
  }
  $('check-again').hidden = false;
  $('check-run').dataset.done = '1';
}

async function load() {
  const m = location.hash.match(/[#&]t=([^&]+)/);
  try {
    if (m) {
      const res = await api.post('/api/invitations/accept', { token: decodeURIComponent(m[1]) });
      page.inspection = res.inspection;
      // The token is a secret: the guest cookie carries the session from now on.
      history.replaceState(null, '', `${location.pathname}#i=${res.inspection.id}`);
    } else {
      const me = await api.get('/api/auth/me');
      const id = me.guest?.inspection_id || (location.hash.match(/[#&]i=([\w-]+)/) || [])[1];
      if (!id) throw new api.ApiError(404, 'invitation_not_found', '');
      page.inspection = await api.get(`/api/inspections/${id}`);
    }
  } catch (e) {
    if (e.code === 'invitation_expired' || e.code === 'invitation_revoked') fail(t('biz.expired'));
    else if (e.code === 'not_found' || e.code === 'unauthenticated' || e.code === 'invitation_not_found') fail(t('biz.invalid'));
    else fail(errorText(e));
    return;
  }
  setTimeZone(page.inspection.time_zone);
  $('check-meta').textContent = `${page.inspection.title} · ${formatTimeZoned(page.inspection.scheduled_at)}`;
  $('check-join').href = `/b/#i=${page.inspection.id}`;
  $('check-join').hidden = false;
  $('check-intro').hidden = false;
  $('check-start').focus();
}

applyI18n();
bindLangSwitch($('lang'));
$('check-start').addEventListener('click', run);
$('check-again').addEventListener('click', run);
load();
