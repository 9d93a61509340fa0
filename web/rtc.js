// WebRTC with the server's media peer over the inspection socket: the browser always offers
// (rtc.offer), the server answers (rtc.answer); candidates trickle both ways; rtc.renegotiate
// asks for a new offer; a failed connection or a network change triggers an ICE restart.

const MEASURE_EVERY_MS = 1000;
/** No new frame for this long (with frames before) means the video froze or stopped. */
export const FROZEN_AFTER_MS = 1500;

/**
 * What the media statistics say, as a pure function (tests/web/rtc_quality.test.mjs):
 * `prev` is the last call's memory ({frames, lastFrameAt, lost, received}), `now` the time in
 * ms; `sample` what getStats gave ({frames, lost, received, fps, rtt_ms, connected}).
 * Returns {video: 'none'|'live'|'frozen', since, quality: 'unknown'|'good'|'fair'|'poor',
 * loss, memo}. Quality is judged only while video arrives: never "good" before any frame,
 * never "good" over a frozen picture.
 */
export function judgeMedia(prev, sample, now) {
  const frames = sample.frames ?? 0;
  const memo = {
    frames,
    lastFrameAt: prev?.lastFrameAt ?? null,
    firstFrameAt: prev?.firstFrameAt ?? null,
    lost: sample.lost ?? 0,
    received: sample.received ?? 0,
  };
  // A new peer connection (ICE restart, reconnect) starts its counters again from zero.
  const before = prev?.frames ?? 0;
  if (frames > before || (frames > 0 && frames < before)) {
    memo.lastFrameAt = now;
    if (memo.firstFrameAt === null) memo.firstFrameAt = now;
  }
  let video = 'none';
  if (memo.lastFrameAt !== null) video = now - memo.lastFrameAt >= FROZEN_AFTER_MS || !sample.connected ? 'frozen' : 'live';
  let loss = 0;
  if (prev && memo.received > prev.received) {
    const lost = Math.max(0, memo.lost - prev.lost);
    loss = lost / (memo.received - prev.received + lost);
  }
  let quality = 'unknown';
  if (video === 'live') {
    const rtt = sample.rtt_ms;
    const fps = sample.fps;
    if ((rtt != null && rtt > 600) || loss > 0.08 || (fps != null && fps < 5)) quality = 'poor';
    else if ((rtt != null && rtt > 250) || loss > 0.02 || (fps != null && fps < 15)) quality = 'fair';
    else quality = 'good';
  } else if (video === 'frozen') {
    quality = 'poor';
  }
  return { video, since: video === 'frozen' ? memo.lastFrameAt : memo.firstFrameAt, quality, loss, memo };
}

/** Video the server receives below this, kbit/s, is too thin to read labels by. */
const THIN_KBPS = 150;
/** No packet of a track for longer than this, ms: it is not arriving. */
const QUIET_MS = 2000;

/**
 * What the server receives from the business, for the inspector (issue 19, item 3), as a pure
 * function (tests/web/rtc_quality.test.mjs). `uplinks` is `GET …/uplink`'s list — measured by
 * the server where the packets arrive, not reported by the phone — and `participant` the
 * business's id. The state, worst first: 'stalled' (nothing arrives), 'audio_only' (the
 * microphone does, the camera not), 'loss' (over 2 % of the video never arrived, even
 * repaired), 'thin' (video under 150 kbit/s), 'repairing' (the network loses over 5 % and
 * retransmissions repair it), 'ok'; 'none' before any media; 'stills' when `stills` (the
 * phone said it paused its video for stills) and the camera is quiet while the microphone
 * arrives. Figures: kbps, audio_kbps, loss, late (%), secs (of silence).
 */
export function describeReception(uplinks, participant, { stills = false } = {}) {
  const mine = (uplinks || []).filter((u) => u.participant === participant);
  const cam = mine.find((u) => u.feed === 'business_camera');
  const mic = mine.find((u) => u.feed === 'business_microphone');
  if (!cam && !mic) return { state: 'none' };
  const live = (u) => !!u && u.quiet_ms <= QUIET_MS;
  const figures = {
    kbps: live(cam) ? cam.kbps : 0,
    audio_kbps: live(mic) ? mic.kbps : 0,
    loss: cam?.loss_pct ?? 0,
    late: cam?.late_pct ?? 0,
  };
  if (!live(cam) && !live(mic)) {
    const secs = Math.round(Math.min(cam?.quiet_ms ?? Infinity, mic?.quiet_ms ?? Infinity) / 1000);
    return { ...figures, state: 'stalled', secs };
  }
  if (!live(cam)) return { ...figures, state: stills ? 'stills' : 'audio_only' };
  if (cam.loss_pct > 2) return { ...figures, state: 'loss' };
  if (cam.kbps < THIN_KBPS) return { ...figures, state: 'thin' };
  if (cam.late_pct > 5) return { ...figures, state: 'repairing' };
  return { ...figures, state: 'ok' };
}

/** Below this estimate, kbit/s, the phone's network is called narrow. */
const NARROW_KBPS = 300;

/**
 * The publishing phone's uplink in one word, as a pure function (tests/web/rtc_quality.test.mjs):
 * `stats` is a 'quality' event's stats ({sent_kbps, loss, limitation}), `video` its video state.
 * 'stalled' (nothing leaves, or the picture froze), 'loss' (over 5 % lost by the server's
 * receiver reports), 'bandwidth' (the encoder is held back by the network, or the browser's
 * estimate of it is under 300 kbit/s: Chromium often says 'none' while it paces to the
 * estimate) or 'ok'.
 */
export function describeUplink(stats, video) {
  const kbps = stats?.sent_kbps;
  if (video === 'frozen' || (kbps !== null && kbps !== undefined && kbps < 5)) return 'stalled';
  if ((stats?.loss ?? 0) > 0.05) return 'loss';
  const estimate = stats?.available_kbps;
  if (stats?.limitation === 'bandwidth' || (typeof estimate === 'number' && estimate < NARROW_KBPS)) return 'bandwidth';
  return 'ok';
}

/**
 * A media session riding a SyncClient.
 * options.role: 'publisher' (business: sends camera + mic) or 'inspector' (receives video +
 * audio, sends its own mic), as the media side names them.
 * Events (EventTarget): 'track' {stream, track}, 'state' {state},
 * 'quality' {quality, video, since, stats} (once a second, see judgeMedia),
 * 'error' {code, message}.
 */
/** A User Timing mark, where the browser has them. */
function mark(name) {
  try { performance.mark(name); } catch (_) { /* no User Timing: nothing to mark */ }
}

export class RtcSession extends EventTarget {
  constructor(sync, { role, stream = null } = {}) {
    super();
    this.sync = sync;
    this.role = role;
    this.stream = stream;
    this.pc = null;
    this.remoteStream = new MediaStream();
    this.makingOffer = false;
    this.needOffer = false;
    this.pendingCandidates = [];
    this.qualityTimer = null;
    this.lastInbound = null;
    this.lastSent = null;
    this.restartTimer = null;
    this.videoPaused = false;
    this._onRtc = (ev) => this._handle(ev.detail.message);
    this._onWelcome = () => this._afterWelcome();
    this._onNetwork = () => this.restartIce();
  }

  /** Start once the socket is welcomed; it re-offers after every reconnect. */
  start() {
    this.sync.addEventListener('rtc', this._onRtc);
    this.sync.addEventListener('welcome', this._onWelcome);
    window.addEventListener('online', this._onNetwork);
    navigator.connection?.addEventListener?.('change', this._onNetwork);
    if (this.sync.status === 'open') this._afterWelcome();
    // Once a second: a lost phone must show on the console within seconds (issue 13).
    this.qualityTimer = setInterval(() => this._measure(), MEASURE_EVERY_MS);
  }

  /** Close the peer connection and stop listening. */
  stop() {
    this.sync.removeEventListener('rtc', this._onRtc);
    this.sync.removeEventListener('welcome', this._onWelcome);
    window.removeEventListener('online', this._onNetwork);
    navigator.connection?.removeEventListener?.('change', this._onNetwork);
    clearInterval(this.qualityTimer);
    clearTimeout(this.restartTimer);
    if (this.pc) this.pc.close();
    this.pc = null;
  }

  /** Replace the outgoing track of the same kind (camera switch) without renegotiating. */
  async replaceTrack(track) {
    if (!this.pc) return;
    const sender = this.pc.getSenders().find((s) => s.track?.kind === track.kind
      || (!s.track && this._senderKinds.get(s) === track.kind));
    if (sender) await sender.replaceTrack(track);
  }

  _iceServers() {
    const servers = this.sync.rtcConfig?.ice_servers;
    return Array.isArray(servers) ? servers : [];
  }

  _afterWelcome() {
    // The server ends a participant's media with the socket that set it up (docs/protocol.md,
    // rtc.*): after a reconnect its peer is gone, and an ICE restart of the old connection
    // would find no DTLS session behind the new credentials (a phone that switched networks
    // never got its video back). So a connection that was ever answered is replaced; the
    // server continues the recording's timeline for the same participant.
    if (!this.pc || this.pc.remoteDescription !== null
      || this.pc.connectionState === 'failed' || this.pc.connectionState === 'closed') {
      this._createPc();
    }
    this._offer(false);
  }

  _createPc() {
    if (this.pc) this.pc.close();
    const pc = new RTCPeerConnection({ iceServers: this._iceServers() });
    this.pc = pc;
    this._senderKinds = new Map();
    this.pendingCandidates = [];
    if (this.role === 'publisher') {
      for (const track of this.stream ? this.stream.getTracks() : []) {
        // Labels and gauges must stay legible: the encoder is told the picture is detail,
        // not motion (issue 19).
        if (track.kind === 'video' && 'contentHint' in track) track.contentHint = 'detail';
        const sender = pc.addTrack(track, this.stream);
        this._senderKinds.set(sender, track.kind);
      }
    } else {
      pc.addTransceiver('video', { direction: 'recvonly' });
      const micTrack = this.stream?.getAudioTracks()[0];
      if (micTrack) {
        const t = pc.addTransceiver(micTrack, { direction: 'sendrecv', streams: [this.stream] });
        this._senderKinds.set(t.sender, 'audio');
      } else {
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
    }
    pc.onicecandidate = (ev) => {
      // The end-of-candidates marker is not sent: the server's ICE does not wait for it.
      if (ev.candidate && ev.candidate.candidate) this.sync.rtc({ type: 'rtc.candidate', candidate: ev.candidate.toJSON() });
    };
    pc.ontrack = (ev) => {
      if (!this.remoteStream.getTracks().includes(ev.track)) {
        for (const old of this.remoteStream.getTracks().filter((t) => t.kind === ev.track.kind)) {
          this.remoteStream.removeTrack(old);
        }
        this.remoteStream.addTrack(ev.track);
      }
      this.dispatchEvent(new CustomEvent('track', { detail: { stream: this.remoteStream, track: ev.track } }));
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') mark('rtc.connected');
      this.dispatchEvent(new CustomEvent('state', { detail: { state: s } }));
      if (s === 'failed') this.restartIce();
      if (s === 'disconnected') {
        // Give ICE a few seconds to recover by itself before restarting it.
        clearTimeout(this.restartTimer);
        this.restartTimer = setTimeout(() => {
          if (pc.connectionState === 'disconnected') this.restartIce();
        }, 4000);
      }
    };
  }

  /**
   * The publisher's video sender on a weak uplink: keep the resolution and drop frames
   * instead (a legible label matters more than smooth motion), and never exceed the
   * configured bit rate (`[media] max_video_kbps`, sent in the welcome). Below the cap the
   * browser's own congestion control decides, fed by the server's transport-cc feedback.
   */
  async _tuneSenders() {
    if (this.role !== 'publisher' || !this.pc) return;
    const kbps = Number(this.sync.rtcConfig?.max_video_kbps) || 0;
    for (const sender of this.pc.getSenders()) {
      if ((sender.track?.kind ?? this._senderKinds.get(sender)) !== 'video') continue;
      const p = sender.getParameters();
      if (!p.encodings || p.encodings.length === 0) continue;
      p.degradationPreference = 'maintain-resolution';
      if (kbps > 0) for (const e of p.encodings) e.maxBitrate = kbps * 1000;
      // A renegotiation (ICE restart) keeps the low-bandwidth mode's pause.
      for (const e of p.encodings) e.active = !this.videoPaused;
      try {
        await sender.setParameters(p);
      } catch (_) {
        // A browser that refuses the preference keeps its defaults; the call goes on.
      }
    }
  }

  /**
   * Pause or resume the publisher's video (low-bandwidth mode, web/lowband.js): the sender
   * stops encoding and sending, the camera and the sound go on, and nothing is renegotiated,
   * so resuming is immediate.
   */
  async setVideoPaused(paused) {
    this.videoPaused = paused;
    if (this.role !== 'publisher' || !this.pc) return;
    for (const sender of this.pc.getSenders()) {
      if ((sender.track?.kind ?? this._senderKinds.get(sender)) !== 'video') continue;
      const p = sender.getParameters();
      if (!p.encodings || p.encodings.length === 0) continue;
      for (const e of p.encodings) e.active = !paused;
      try {
        await sender.setParameters(p);
      } catch (_) {
        // Not before the first answer: _tuneSenders applies the pause then.
      }
    }
  }

  /** Restart ICE with a new offer (network change, failed connection). */
  restartIce() {
    if (!this.pc || this.sync.status !== 'open') return;
    this._offer(true);
  }

  async _offer(iceRestart) {
    const pc = this.pc;
    if (!pc) return;
    if (this.makingOffer) {
      this.needOffer = true;
      return;
    }
    this.makingOffer = true;
    try {
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      await pc.setLocalDescription(offer);
      // Replaced meanwhile (a reconnect): this offer is of a closed connection.
      if (this.pc !== pc) return;
      const d = pc.localDescription;
      this.sync.rtc({ type: 'rtc.offer', sdp: { type: d.type, sdp: d.sdp }, role: this.role });
      // User Timing marks for the join benchmark (tests/examples/join_bench.rs) and for
      // anyone profiling a slow join in the browser's tools; a few per call.
      mark('rtc.offer');
    } catch (e) {
      if (this.pc === pc) this.dispatchEvent(new CustomEvent('error', { detail: { code: 'offer_failed', message: e.message } }));
    } finally {
      this.makingOffer = false;
      // The connection that replaced this one offers now (its offer waited for this one).
      if (this.pc !== pc && this.pc) {
        this.needOffer = false;
        this._offer(false);
      }
    }
  }

  async _handle(msg) {
    const pc = this.pc;
    if (!pc) return;
    try {
      switch (msg.type) {
        case 'rtc.answer': {
          mark('rtc.answer-received');
          const desc = typeof msg.sdp === 'string' ? { type: 'answer', sdp: msg.sdp } : msg.sdp;
          if (pc.signalingState !== 'have-local-offer') return;
          await pc.setRemoteDescription(desc);
          mark('rtc.answer');
          await this._tuneSenders();
          for (const c of this.pendingCandidates.splice(0)) await pc.addIceCandidate(c);
          if (this.needOffer) {
            this.needOffer = false;
            this._offer(false);
          }
          break;
        }
        case 'rtc.candidate': {
          const c = msg.candidate;
          if (!pc.remoteDescription) {
            this.pendingCandidates.push(c === null ? undefined : c);
          } else {
            await pc.addIceCandidate(c === null ? undefined : c);
          }
          break;
        }
        case 'rtc.renegotiate':
          if (pc.signalingState === 'stable') this._offer(false);
          else this.needOffer = true;
          break;
        case 'rtc.error':
          this.dispatchEvent(new CustomEvent('error', { detail: { code: msg.code, message: msg.message } }));
          break;
        default:
      }
    } catch (e) {
      this.dispatchEvent(new CustomEvent('error', { detail: { code: 'rtc_failed', message: e.message } }));
    }
  }

  async _measure() {
    const pc = this.pc;
    if (!pc) return;
    let stats;
    try { stats = await pc.getStats(); } catch (_) { return; }
    let rtt = null;
    let lost = 0;
    let received = 0;
    let fps = null;
    let framesDecoded = null;
    let sentFps = null;
    let framesSent = null;
    let bytesSent = 0;
    let availableKbps = null;
    let limitation = null;
    let remoteLost = 0;
    let packetsSent = 0;
    stats.forEach((r) => {
      if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated && typeof r.currentRoundTripTime === 'number') {
        rtt = r.currentRoundTripTime * 1000;
        // The browser's send-side estimate (from the server's transport-cc feedback).
        if (typeof r.availableOutgoingBitrate === 'number') availableKbps = Math.round(r.availableOutgoingBitrate / 1000);
      }
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        lost += r.packetsLost || 0;
        received += r.packetsReceived || 0;
        fps = r.framesPerSecond ?? fps;
        framesDecoded = r.framesDecoded ?? framesDecoded;
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        sentFps = r.framesPerSecond ?? sentFps;
        framesSent = (framesSent ?? 0) + (r.framesSent || 0);
        bytesSent += r.bytesSent || 0;
        packetsSent += r.packetsSent || 0;
        limitation = r.qualityLimitationReason ?? limitation;
      }
      // What the server's receiver reports say it lost of the phone's video.
      if (r.type === 'remote-inbound-rtp' && r.kind === 'video') remoteLost += r.packetsLost || 0;
      if (r.type === 'remote-inbound-rtp' && typeof r.roundTripTime === 'number') rtt = rtt ?? r.roundTripTime * 1000;
    });
    const publisher = this.role === 'publisher';
    const now = Date.now();
    let sentKbps = null;
    if (publisher && this.lastSent && now > this.lastSent.at && bytesSent >= this.lastSent.bytes) {
      sentKbps = Math.round(((bytesSent - this.lastSent.bytes) * 8) / (now - this.lastSent.at));
    }
    this.lastSent = { at: now, bytes: bytesSent };
    const judged = judgeMedia(this.lastInbound, {
      frames: publisher ? framesSent : framesDecoded,
      lost: publisher ? remoteLost : lost,
      received: publisher ? Math.max(0, packetsSent - remoteLost) : received,
      fps: publisher ? sentFps : fps,
      rtt_ms: rtt,
      connected: pc.connectionState === 'connected',
    }, now);
    this.lastInbound = judged.memo;
    const quality = judged.quality;
    const lossRate = judged.loss;
    this.dispatchEvent(new CustomEvent('quality', {
      detail: {
        quality,
        video: judged.video,
        since: judged.since,
        stats: {
          rtt_ms: rtt === null ? null : Math.round(rtt),
          loss: lossRate,
          fps: publisher ? sentFps : fps,
          frames_decoded: framesDecoded,
          frames_sent: framesSent,
          sent_kbps: sentKbps,
          available_kbps: availableKbps,
          limitation,
          connected: pc.connectionState === 'connected',
        },
      },
    }));
  }
}
