// The inspection WebSocket client (docs/protocol.md, version 1): hello with last_seq and
// client info, welcome with events or snapshot (reassembled when a large one comes as
// welcome_part messages), ops with ids kept until acknowledged and resent after a reconnect,
// exponential reconnect with a visible state, rtc.* pass-through. An op refused as
// `overloaded` is resent with the same op_id after the server's retry_after_ms hint (doubled
// on each refusal in a row, with jitter); meanwhile new ops wait, so the log keeps their order.

import { applyEvent, emptyState } from './state.js';

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 10000;
const OVERLOAD_MAX_DELAY_MS = 15000;

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const a = new Uint8Array(16);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What the browser says about itself in hello; recorded in the join event. */
export function clientInfo() {
  let timezone = null;
  try { timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (_) { /* Older browsers. */ }
  return {
    timezone,
    webdriver: navigator.webdriver === true,
    user_agent: navigator.userAgent,
    platform: navigator.userAgentData?.platform || navigator.platform || '',
  };
}

/** Observations the trust assessor weighs (headless, software GPU, no touch on a phone). */
export function clientHints() {
  const hints = [];
  if (/HeadlessChrome/.test(navigator.userAgent)) hints.push('headless');
  try {
    const gl = document.createElement('canvas').getContext('webgl');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    const renderer = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : '';
    if (/SwiftShader|llvmpipe|softpipe/i.test(renderer)) hints.push('software_renderer');
  } catch (_) { /* No WebGL: nothing to report. */ }
  if (/Android|iPhone|iPad/.test(navigator.userAgent) && navigator.maxTouchPoints === 0) hints.push('no_touch');
  return hints;
}

/** What this browser lacks for a remote inspection (issue 17), in the server's closed set
 * and order (docs/protocol.md, `client.missing`). */
export function missingFeatures(w = window) {
  const m = [];
  if (typeof w.RTCPeerConnection !== 'function') m.push('webrtc');
  if (typeof w.navigator.mediaDevices?.getUserMedia !== 'function') m.push('camera');
  if (!('geolocation' in w.navigator)) m.push('geolocation');
  return m;
}

/**
 * One participant's socket for one inspection.
 * Events (EventTarget): 'state' {state, delay}, 'welcome' {welcome}, 'change' {state, event?},
 * 'event' {event}, 'ack' {op_id, seq}, 'error' {error, op} (op: the refused operation, if
 * it was ours), 'rtc' {message}, 'rtt' {ms}.
 */
export class SyncClient extends EventTarget {
  constructor(inspectionId, { url } = {}) {
    super();
    this.inspectionId = inspectionId;
    this.url = url || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/inspections/${inspectionId}/ws`;
    this.deviceId = randomId().slice(0, 12);
    this.counter = 0;
    this.pending = new Map(); // op_id -> message, kept until ack
    this.lastSeq = null;
    this.data = emptyState();
    this.checklist = [];
    this.site = null;
    this.you = null;
    this.rtcConfig = null;
    this.status = 'idle';
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this.pingTimer = null;
    this.holdTimer = null; // set while the server said `overloaded`
    this.holdStreak = 0; // refusals in a row, for the backoff
    this.toResend = new Set(); // op_ids refused as overloaded or held back, resent in order
  }

  /** Open the socket; reconnects by itself until close() or an auth failure. */
  connect() {
    this.stopped = false;
    this._open();
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    clearTimeout(this.holdTimer);
    this.holdTimer = null;
    if (this.ws) this.ws.close(1000);
    this._setStatus('closed');
  }

  /** Force a reconnect now, e.g. when the network comes back. */
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= 1) this.ws.close(4000);
    else this._open();
  }

  _setStatus(status, extra = {}) {
    this.status = status;
    this.dispatchEvent(new CustomEvent('state', { detail: { state: status, ...extra } }));
  }

  _open() {
    clearTimeout(this.timer);
    this._setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting', { delay: 0 });
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.welcomed = false;
    this.welcomeParts = [];
    ws.onopen = () => {
      const client = clientInfo();
      if (this.hints && this.hints.length) client.hints = this.hints;
      if (this.missing && this.missing.length) client.missing = this.missing;
      const hello = { type: 'hello', protocol: 1, client };
      if (this.lastSeq !== null) hello.last_seq = this.lastSeq;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      this._onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      clearInterval(this.pingTimer);
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4401) {
        this.stopped = true;
        this._setStatus('closed', { code: ev.code });
        return;
      }
      this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    this.attempt += 1;
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** Math.min(this.attempt - 1, 10));
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this._setStatus('reconnecting', { delay });
    this.timer = setTimeout(() => this._open(), delay);
  }

  _onMessage(msg) {
    switch (msg.type) {
      case 'welcome':
        this._onWelcome(msg);
        break;
      case 'welcome_part':
        this._onWelcomePart(msg);
        break;
      case 'event':
        this._onEvent(msg);
        break;
      case 'ack':
        this._onAck(msg.op_id, msg.seq);
        break;
      case 'pong':
        if (typeof msg.t === 'number') {
          this.rttMs = Math.max(0, Math.round(performance.now() - msg.t));
          this.dispatchEvent(new CustomEvent('rtt', { detail: { ms: this.rttMs } }));
        }
        break;
      case 'error':
        if (msg.code === 'duplicate_op_id' && msg.op_id) {
          // The original was committed before; its seq stands as the acknowledgement.
          this._onAck(msg.op_id, msg.seq);
          break;
        }
        const original = msg.op_id ? this.pending.get(msg.op_id) : undefined;
        if (msg.code === 'overloaded' && original) this._onOverloaded(msg);
        if (msg.op_id && !['overloaded', 'internal', 'rate_limited', 'moved', 'database_unavailable'].includes(msg.code)) {
          // A refused op changes nothing and would be refused again: stop resending it.
          this.pending.delete(msg.op_id);
        }
        this.dispatchEvent(new CustomEvent('error', { detail: { error: msg, op: original?.op ?? null } }));
        break;
      default:
        if (typeof msg.type === 'string' && msg.type.startsWith('rtc.')) {
          this.dispatchEvent(new CustomEvent('rtc', { detail: { message: msg } }));
        }
    }
  }

  _onWelcomePart(part) {
    // Parts arrive back to back, in order; their data strings joined are the welcome's JSON.
    if (part.index !== this.welcomeParts.length) {
      this.welcomeParts = [];
      this.reconnectNow();
      return;
    }
    this.welcomeParts.push(part.data);
    if (this.welcomeParts.length < part.count) return;
    let msg;
    try { msg = JSON.parse(this.welcomeParts.join('')); } catch (_) { msg = null; }
    this.welcomeParts = [];
    if (msg && msg.type === 'welcome') this._onWelcome(msg);
    else this.reconnectNow();
  }

  _onOverloaded(msg) {
    // The server refuses every later op of this socket until this one comes again, so the
    // refused ops go back in their order, after a pause the server suggests.
    this.toResend.add(msg.op_id);
    if (this.holdTimer) return;
    const hint = Number.isFinite(msg.retry_after_ms) && msg.retry_after_ms > 0 ? msg.retry_after_ms : 250;
    const base = Math.min(OVERLOAD_MAX_DELAY_MS, hint * 2 ** Math.min(this.holdStreak, 8));
    this.holdStreak += 1;
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.holdTimer = setTimeout(() => this._releaseHold(), delay);
  }

  _releaseHold() {
    this.holdTimer = null;
    const ids = this.toResend;
    this.toResend = new Set();
    for (const [id, m] of this.pending) {
      if (ids.has(id)) this._sendRaw(m);
    }
  }

  _onWelcome(msg) {
    const resumed = this.lastSeq !== null;
    this.you = msg.you || this.you;
    if (Array.isArray(msg.checklist)) this.checklist = msg.checklist;
    this.site = msg.site ?? this.site;
    if (msg.rtc) this.rtcConfig = msg.rtc;
    if (msg.snapshot) {
      this.data = msg.snapshot;
      if (!this.data.items) this.data.items = {};
      if (!this.data.participants) this.data.participants = {};
      this.lastSeq = msg.seq;
    } else if (Array.isArray(msg.events)) {
      for (const e of msg.events) this._apply(e);
      this.lastSeq = msg.seq;
    }
    this.attempt = 0;
    this.welcomed = true;
    this._setStatus('open', { resumed });
    this.dispatchEvent(new CustomEvent('welcome', { detail: { welcome: msg, resumed } }));
    this.dispatchEvent(new CustomEvent('change', { detail: { state: this.data } }));
    // Unacknowledged ops go again with the same op_id; the server applies each at most once.
    // (A new socket starts without the old one's overload hold.)
    clearTimeout(this.holdTimer);
    this.holdTimer = null;
    this.toResend = new Set();
    for (const m of this.pending.values()) this._sendRaw(m);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this._sendRaw({ type: 'ping', t: performance.now() }), PING_EVERY_MS);
    this._sendRaw({ type: 'ping', t: performance.now() });
  }

  _onEvent(e) {
    if (this.lastSeq !== null && e.seq !== this.lastSeq + 1) {
      if (e.seq <= this.lastSeq) return; // Already applied.
      // A gap: the protocol says reconnect with last_seq and let the server fill it.
      this.reconnectNow();
      return;
    }
    this._apply(e);
    this.lastSeq = e.seq;
    this.dispatchEvent(new CustomEvent('event', { detail: { event: e } }));
    this.dispatchEvent(new CustomEvent('change', { detail: { state: this.data, event: e } }));
  }

  _apply(e) {
    applyEvent(this.data, e);
  }

  _onAck(opId, seq) {
    if (!opId) return;
    this.pending.delete(opId);
    this.holdStreak = 0;
    this.dispatchEvent(new CustomEvent('ack', { detail: { op_id: opId, seq } }));
  }

  _sendRaw(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && (this.welcomed || msg.type === 'hello')) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /** Send an operation; it is kept and resent until acknowledged. Returns its op_id. */
  op(op) {
    this.counter += 1;
    const opId = `${this.deviceId}-${Date.now().toString(36)}-${this.counter}`;
    const msg = { type: 'op', op_id: opId, op };
    this.pending.set(opId, msg);
    // While the server is overloaded new ops wait behind the refused ones.
    if (this.holdTimer) this.toResend.add(opId);
    else this._sendRaw(msg);
    return opId;
  }

  /** Send an rtc.* message now; signaling is not retried (a new offer replaces it). */
  rtc(msg) {
    return this._sendRaw(msg);
  }
}
