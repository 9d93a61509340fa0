// Low-bandwidth mode of the business's phone (issue 19, item 2): when its uplink cannot carry
// useful video, the phone pauses its video (audio goes on), sends a full-resolution still
// every few seconds over HTTP instead, and probes now and then whether video fits again.
//
// The decisions are a pure state machine (tests/web/lowband.test.mjs): `lowBandStep(memo,
// sample, now)` is fed the phone's media statistics once a second and the time as an input,
// and says what to do. web/business.js carries the actions out (RtcSession.setVideoPaused,
// the still's capture and upload) and reports the mode in `presence`.

export const LOWBAND = {
  /** Below this estimate of the uplink, kbit/s, video is too thin to read small print. */
  FLOOR_KBPS: 150,
  /** Fewer frames a second than this leaving the phone is a slideshow, not video: the
   * encoder is starved (it keeps the resolution and drops frames, web/rtc.js). */
  MIN_FPS: 2,
  /** The estimate under the floor (or frames under MIN_FPS, or none) this long, ms, pauses
   * the video. */
  ENTER_AFTER_MS: 6000,
  /** A still is due this long after the last one while the video is paused: with the 1 s
   * statistics tick, one every 5 s (a still late by a tick would make it 6). */
  STILL_EVERY_MS: 4500,
  /** The first probe this long after the pause, ms; each failed probe waits 1.5 times longer. */
  PROBE_FIRST_MS: 10000,
  /** Probes at most this far apart, ms. */
  PROBE_MAX_MS: 30000,
  /** A probe sends video for this long, ms, watching the estimate. */
  PROBE_FOR_MS: 5000,
  /** An estimate at or over this during a probe, kbit/s, resumes the video. */
  RESUME_KBPS: 250,
  /** A probe whose estimate is over the floor and still climbing (by this factor since the
   * probe began) goes on for another PROBE_FOR_MS, at most PROBE_EXTENSIONS times: a network
   * that came back lets the browser's estimate ramp up from where the narrow one left it. */
  PROBE_CLIMB: 1.2,
  PROBE_EXTENSIONS: 2,
};

/** The memory of a phone that has just started: video, nothing judged yet. */
export function lowBandStart() {
  return {
    mode: 'video', reason: null, badSince: null, nextStillAt: null, probeAt: null, probeUntil: null,
    probeWait: LOWBAND.PROBE_FIRST_MS, probeFrom: null, probeExtended: 0, lastFrames: null, lastAt: null,
  };
}

/**
 * One step. `sample`: {available_kbps (the browser's estimate, or null), frames_sent (the video
 * encoder's counter, or null), connected (the media connection is up), requested (the
 * inspector asked for a still since the last step)}. Returns {memo, mode ('video'|'stills'),
 * reason ('narrow'|'stalled'|null), probing, actions}: actions is a list of 'pause_video',
 * 'resume_video' and 'still', in order. A disconnected connection judges nothing (an outage
 * is ICE's business: the pause is for a network that carries too little, not none at all).
 */
export function lowBandStep(memo, sample, now) {
  const m = { ...memo };
  const actions = [];
  const estimate = typeof sample.available_kbps === 'number' ? sample.available_kbps : null;
  const frames = typeof sample.frames_sent === 'number' ? sample.frames_sent : null;
  // No new frame since the last step (a new connection starts its counter again from zero).
  const stalled = frames !== null && m.lastFrames !== null && frames === m.lastFrames;
  // Frames a second since the last step (a new connection's counter starting again is not a
  // rate).
  const fps = frames !== null && m.lastFrames !== null && frames >= m.lastFrames && now > m.lastAt
    ? ((frames - m.lastFrames) * 1000) / (now - m.lastAt) : null;
  m.lastFrames = frames;
  m.lastAt = now;
  if (m.mode === 'video') {
    const narrow = (estimate !== null && estimate < LOWBAND.FLOOR_KBPS)
      || (fps !== null && fps > 0 && fps < LOWBAND.MIN_FPS);
    if (!sample.connected || !(narrow || stalled)) {
      m.badSince = null;
    } else {
      if (m.badSince === null) m.badSince = now;
      if (now - m.badSince >= LOWBAND.ENTER_AFTER_MS) {
        m.mode = 'stills';
        m.reason = narrow ? 'narrow' : 'stalled';
        m.badSince = null;
        m.probeWait = LOWBAND.PROBE_FIRST_MS;
        m.probeAt = now + m.probeWait;
        m.probeUntil = null;
        m.nextStillAt = now + LOWBAND.STILL_EVERY_MS;
        actions.push('pause_video', 'still');
      }
    }
    if (sample.requested) actions.push('still');
    return { memo: m, mode: m.mode, reason: m.reason, probing: false, actions };
  }
  // Stills: a probe running, one due, or stills on their schedule.
  if (m.probeUntil !== null) {
    if (sample.connected && estimate !== null && estimate >= LOWBAND.RESUME_KBPS) {
      m.mode = 'video';
      m.reason = null;
      m.probeUntil = null;
      m.probeAt = null;
      m.nextStillAt = null;
      if (sample.requested) actions.push('still');
      return { memo: m, mode: 'video', reason: null, probing: false, actions };
    }
    if (m.probeFrom === null && estimate !== null) m.probeFrom = estimate;
    const climbing = estimate !== null && m.probeFrom !== null && estimate >= LOWBAND.FLOOR_KBPS
      && estimate >= m.probeFrom * LOWBAND.PROBE_CLIMB;
    if (now >= m.probeUntil && climbing && m.probeExtended < LOWBAND.PROBE_EXTENSIONS) {
      m.probeExtended += 1;
      m.probeUntil = now + LOWBAND.PROBE_FOR_MS;
    } else if (now >= m.probeUntil) {
      // The network still cannot carry video: pause again, and wait longer before the next try.
      m.probeUntil = null;
      m.probeWait = Math.min(LOWBAND.PROBE_MAX_MS, Math.round(m.probeWait * 1.5));
      m.probeAt = now + m.probeWait;
      actions.push('pause_video');
    }
  } else if (now >= m.probeAt) {
    m.probeUntil = now + LOWBAND.PROBE_FOR_MS;
    m.probeFrom = null;
    m.probeExtended = 0;
    actions.push('resume_video');
  }
  if (sample.requested || now >= m.nextStillAt) {
    actions.push('still');
    m.nextStillAt = now + LOWBAND.STILL_EVERY_MS;
  }
  return { memo: m, mode: 'stills', reason: m.reason, probing: m.probeUntil !== null, actions };
}

/**
 * Where the recording has stills in place of video, for the reviewer: from the log's events
 * (`presence` of the business with `video_mode`, its `leave`, its `frame`s) on the recording's
 * media time (`recStartMs` is the manifest's epoch in ms). Returns {periods: [{from, to}],
 * stills: [{ms, id, reason}]}, both sorted; a period still open at the log's end runs on.
 */
export function stillsTimeline(events, recStartMs) {
  const periods = [];
  const stills = [];
  if (recStartMs == null) return { periods, stills };
  const open = new Map();
  const close = (pid, ms) => {
    if (!open.has(pid)) return;
    periods.push({ from: open.get(pid), to: ms });
    open.delete(pid);
  };
  for (const e of events || []) {
    const ms = (e.server_ts ?? e.ts) / 1000 - recStartMs;
    const pid = e.participant_id;
    const p = e.payload || {};
    if (e.kind === 'presence' && p.video_mode === 'stills') {
      if (!open.has(pid)) open.set(pid, Math.max(0, ms));
    } else if ((e.kind === 'presence' && p.video_mode) || e.kind === 'leave' || e.kind === 'finish' || e.kind === 'cancel') {
      if (e.kind === 'finish' || e.kind === 'cancel') for (const id of [...open.keys()]) close(id, ms);
      else close(pid, ms);
    } else if (e.kind === 'frame' && p.evidence?.id && Number.isFinite(p.evidence.at_micros)) {
      stills.push({ ms: p.evidence.at_micros / 1000 - recStartMs, id: p.evidence.id, reason: p.reason });
    }
  }
  for (const [pid, from] of open) periods.push({ from, to: Infinity, pid });
  periods.sort((a, b) => a.from - b.from);
  stills.sort((a, b) => a.ms - b.ms);
  return { periods: periods.map(({ from, to }) => ({ from, to })), stills };
}

/**
 * The still to show at media time `ms`: inside a stills period, the latest still at or before
 * `ms` (one sent up to a second before the period's start counts: the first still and the
 * presence that opens the period leave the phone together); outside, none — the video plays.
 */
export function stillAt(timeline, ms) {
  const period = timeline.periods.find((p) => p.from <= ms && ms < p.to);
  if (!period) return null;
  let found = null;
  for (const s of timeline.stills) {
    if (s.ms > ms) break;
    if (s.ms >= period.from - 1000) found = s;
  }
  return found;
}
