// The phone's low-bandwidth mode (web/lowband.js, issue 19 item 2): when the uplink cannot
// carry useful video it pauses the video and sends stills; it probes and comes back by itself.
// Time is an input: the tests step the machine through minutes in microseconds.
// Run: node --test tests/web

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { LOWBAND, lowBandStart, lowBandStep } from '../../web/lowband.js';

/** Steps once a second from `t0` for `secs`, frames advancing unless `stalled`. */
function run(memo, t0, secs, { kbps, connected = true, stalled = false, frames = 0, fps = 20 }) {
  const steps = [];
  let f = frames;
  for (let i = 1; i <= secs; i += 1) {
    if (!stalled) f += fps;
    const r = lowBandStep(memo, { available_kbps: kbps, frames_sent: f, connected }, t0 + i * 1000);
    memo = r.memo;
    steps.push({ t: t0 + i * 1000, ...r });
  }
  return { memo, steps, frames: f };
}

test('a good uplink keeps the video and sends no stills', () => {
  const { steps } = run(lowBandStart(), 0, 60, { kbps: 1200 });
  assert.ok(steps.every((s) => s.mode === 'video' && s.actions.length === 0));
});

test('an estimate under the floor for the whole wait pauses the video and sends a still at once, then one every 5 s', () => {
  const every = Math.ceil(LOWBAND.STILL_EVERY_MS / 1000) * 1000;
  assert.equal(every, 5000, 'at the 1 s tick');
  const { steps } = run(lowBandStart(), 0, 30, { kbps: 90 });
  const pause = steps.find((s) => s.actions.includes('pause_video'));
  assert.ok(pause, 'paused');
  assert.equal(pause.t, LOWBAND.ENTER_AFTER_MS + 1000, 'after the wait, not before');
  assert.equal(pause.mode, 'stills');
  assert.equal(pause.reason, 'narrow');
  assert.deepEqual(pause.actions, ['pause_video', 'still']);
  const stills = steps.filter((s) => s.actions.includes('still')).map((s) => s.t);
  assert.ok(stills.length >= 4);
  for (let i = 1; i < stills.length; i += 1) assert.equal(stills[i] - stills[i - 1], every);
});

test('a short dip under the floor changes nothing', () => {
  let memo = lowBandStart();
  ({ memo } = run(memo, 0, 4, { kbps: 90 }));
  const { steps } = run(memo, 4000, 30, { kbps: 600 });
  assert.ok(steps.every((s) => s.mode === 'video'));
});

test('frames that stop leaving a connected phone pause the video as stalled', () => {
  let memo = lowBandStart();
  let frames;
  ({ memo, frames } = run(memo, 0, 3, { kbps: null }));
  const { steps } = run(memo, 3000, 10, { kbps: null, stalled: true, frames });
  const pause = steps.find((s) => s.actions.includes('pause_video'));
  assert.ok(pause);
  assert.equal(pause.reason, 'stalled');
});

test('an outage (disconnected) judges nothing: ICE recovers it, not the stills', () => {
  const { steps } = run(lowBandStart(), 0, 30, { kbps: 50, connected: false, stalled: true });
  assert.ok(steps.every((s) => s.mode === 'video' && s.actions.length === 0));
});

test('probes resume the video when the network carries it again, and back off while it does not', () => {
  let memo = lowBandStart();
  let steps;
  ({ memo, steps } = run(memo, 0, 7, { kbps: 90 }));
  const pausedAt = steps.at(-1).t;
  assert.equal(steps.at(-1).mode, 'stills');
  // Still narrow: the first probe runs after PROBE_FIRST_MS for PROBE_FOR_MS, then pauses again.
  ({ memo, steps } = run(memo, pausedAt, 40, { kbps: 90 }));
  const resumes = steps.filter((s) => s.actions.includes('resume_video')).map((s) => s.t - pausedAt);
  const pauses = steps.filter((s) => s.actions.includes('pause_video')).map((s) => s.t - pausedAt);
  assert.equal(resumes[0], LOWBAND.PROBE_FIRST_MS);
  assert.equal(pauses[0], LOWBAND.PROBE_FIRST_MS + LOWBAND.PROBE_FOR_MS);
  assert.equal(resumes[1] - pauses[0], LOWBAND.PROBE_FIRST_MS * 1.5, 'the next probe waits longer');
  assert.ok(steps.filter((s) => s.probing).length > 0);
  assert.ok(steps.every((s) => s.mode === 'stills'));
  // The network recovers: the next probe sees the estimate over RESUME_KBPS and stays.
  const t1 = steps.at(-1).t;
  ({ memo, steps } = run(memo, t1, 40, { kbps: LOWBAND.RESUME_KBPS + 50 }));
  const back = steps.find((s) => s.mode === 'video');
  assert.ok(back, 'video again');
  assert.ok(back.t - t1 <= LOWBAND.PROBE_MAX_MS + 1000, `within the longest probe wait: ${back.t - t1} ms`);
  assert.ok(steps.filter((s) => s.t > back.t).every((s) => s.mode === 'video' && !s.actions.includes('still')));
});

test('the probe backs off to at most PROBE_MAX_MS', () => {
  let memo = lowBandStart();
  ({ memo } = run(memo, 0, 7, { kbps: 90 }));
  const { steps } = run(memo, 7000, 400, { kbps: 90 });
  const resumes = steps.filter((s) => s.actions.includes('resume_video')).map((s) => s.t);
  const gaps = resumes.slice(1).map((t, i) => t - resumes[i] - LOWBAND.PROBE_FOR_MS);
  assert.ok(gaps.length > 4);
  assert.ok(gaps.every((g) => g <= LOWBAND.PROBE_MAX_MS), gaps.join(' '));
  assert.equal(gaps.at(-1), LOWBAND.PROBE_MAX_MS);
});

test("the inspector's request is a still in either mode, at once", () => {
  let r = lowBandStep(lowBandStart(), { available_kbps: 900, frames_sent: 10, connected: true, requested: true }, 1000);
  assert.deepEqual(r.actions, ['still']);
  assert.equal(r.mode, 'video');
  let memo = r.memo;
  ({ memo } = run(memo, 1000, 8, { kbps: 90 }));
  r = lowBandStep(memo, { available_kbps: 90, frames_sent: 9999, connected: true, requested: true }, 10_500);
  assert.ok(r.actions.includes('still'));
  assert.equal(r.mode, 'stills');
});

test('the reviewer sees stills only where the phone sent stills instead of video', async () => {
  const { stillsTimeline, stillAt } = await import('../../web/lowband.js');
  const start = 1_000_000; // the recording's epoch, ms
  const at = (s) => (start + s * 1000) * 1000; // µs
  const phone = 'p-phone';
  const ev = (s, kind, payload, pid = phone) => ({ seq: s, kind, participant_id: pid, server_ts: at(s), payload });
  const frame = (s, id, reason = 'low_bandwidth') => ev(s + 0.2, 'frame', { reason, evidence: { id, at_micros: at(s) } });
  const events = [
    ev(5, 'presence', { quality: 'good', video_mode: 'video' }),
    frame(8, 'asked', 'requested'), // in video mode: the video plays
    frame(19.5, 'f1'),
    ev(20, 'presence', { quality: 'poor', video_mode: 'stills', stills_reason: 'narrow' }),
    frame(25, 'f2'),
    frame(30, 'f3'),
    ev(33, 'presence', { quality: 'good', video_mode: 'video' }),
    ev(40, 'presence', { quality: 'poor', video_mode: 'stills', stills_reason: 'stalled' }),
    frame(41, 'f4'),
    ev(50, 'leave', { reason: 'closed' }),
  ];
  const tl = stillsTimeline(events, start);
  assert.deepEqual(tl.periods, [{ from: 20_000, to: 33_000 }, { from: 40_000, to: 50_000 }]);
  const shown = (s) => stillAt(tl, s * 1000)?.id ?? null;
  assert.equal(shown(8.5), null, 'video mode: the requested still is evidence, the video plays');
  assert.equal(shown(20.5), 'f1', 'the still sent with the pause');
  assert.equal(shown(26), 'f2');
  assert.equal(shown(32.9), 'f3');
  assert.equal(shown(33), null, 'video again');
  assert.equal(shown(40.5), null, 'no still yet in the second period (f3 is before it)');
  assert.equal(shown(45), 'f4');
  assert.equal(shown(51), null, 'the phone left');
  // Without the recording's epoch nothing can be placed.
  assert.deepEqual(stillsTimeline(events, null), { periods: [], stills: [] });
});

test('a probe whose estimate climbs over the floor goes on until it resumes, a flat one does not', () => {
  let memo = lowBandStart();
  let steps;
  ({ memo, steps } = run(memo, 0, 7, { kbps: 90 }));
  const pausedAt = steps.at(-1).t;
  // Up to the probe: still narrow.
  ({ memo } = run(memo, pausedAt, LOWBAND.PROBE_FIRST_MS / 1000 - 1, { kbps: 90 }));
  // The network is back, but the browser's estimate ramps up slowly from 90 kbit/s.
  let t = pausedAt + LOWBAND.PROBE_FIRST_MS - 1000;
  let kbps = 90;
  let resumed = null;
  let paused = false;
  for (let i = 0; i < 20 && resumed === null; i += 1) {
    t += 1000;
    const r = lowBandStep(memo, { available_kbps: kbps, frames_sent: 1000 + i * 20, connected: true }, t);
    memo = r.memo;
    if (r.actions.includes('pause_video') && i > 0) paused = true;
    if (r.mode === 'video') resumed = t;
    kbps = Math.round(kbps * 1.12);
  }
  assert.ok(resumed !== null, 'resumed');
  assert.ok(!paused, 'not paused in between');
  assert.ok(resumed - (pausedAt + LOWBAND.PROBE_FIRST_MS) > LOWBAND.PROBE_FOR_MS, 'beyond the first probe window');
  // Flat under the floor: the probe ends at PROBE_FOR_MS, as before (see the backoff test).
});

test('a starved encoder (a slideshow under MIN_FPS) counts as narrow, a slow but real frame rate does not', () => {
  let { steps } = run(lowBandStart(), 0, 20, { kbps: 900, fps: 1 });
  const pause = steps.find((s) => s.actions.includes('pause_video'));
  assert.ok(pause, 'paused at 1 frame/s');
  assert.equal(pause.reason, 'narrow');
  assert.equal(pause.t, LOWBAND.ENTER_AFTER_MS + 2000, 'the rate needs two samples, then the wait');
  ({ steps } = run(lowBandStart(), 0, 30, { kbps: 900, fps: 3 }));
  assert.ok(steps.every((s) => s.mode === 'video'), '3 frames/s is video');
});
