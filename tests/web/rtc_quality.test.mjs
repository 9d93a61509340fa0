// The console's video state and connection quality come from media that actually arrives
// (web/rtc.js judgeMedia): no "good" before the first frame, a frozen picture within
// FROZEN_AFTER_MS, quality from fps, loss and RTT while frames flow.
// Run: node --test tests/web

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { judgeMedia, describeUplink, describeReception, FROZEN_AFTER_MS } from '../../web/rtc.js';

const ok = { connected: true, fps: 30, rtt_ms: 40, lost: 0, received: 0 };

test('connected without any frame is no video, quality unknown', () => {
  const j = judgeMedia(null, { ...ok, frames: 0, fps: null }, 1000);
  assert.equal(j.video, 'none');
  assert.equal(j.quality, 'unknown');
});

test('frames flowing at 30 fps with low RTT and no loss are good', () => {
  let j = judgeMedia(null, { ...ok, frames: 10, received: 100 }, 1000);
  j = judgeMedia(j.memo, { ...ok, frames: 40, received: 200 }, 2000);
  assert.equal(j.video, 'live');
  assert.equal(j.quality, 'good');
  assert.equal(j.since, 1000);
});

test('frames that stop are frozen after the threshold, since the last frame', () => {
  let j = judgeMedia(null, { ...ok, frames: 10 }, 1000);
  j = judgeMedia(j.memo, { ...ok, frames: 40 }, 2000);
  j = judgeMedia(j.memo, { ...ok, frames: 40 }, 2000 + FROZEN_AFTER_MS - 1);
  assert.equal(j.video, 'live');
  j = judgeMedia(j.memo, { ...ok, frames: 40 }, 2000 + FROZEN_AFTER_MS);
  assert.equal(j.video, 'frozen');
  assert.equal(j.since, 2000);
  assert.equal(j.quality, 'poor');
});

test('a lost connection freezes at once', () => {
  let j = judgeMedia(null, { ...ok, frames: 10 }, 1000);
  j = judgeMedia(j.memo, { ...ok, frames: 10, connected: false }, 1100);
  assert.equal(j.video, 'frozen');
});

test('loss, RTT and fps lower the quality', () => {
  let j = judgeMedia(null, { ...ok, frames: 10, received: 1000, lost: 0 }, 1000);
  const lossy = judgeMedia(j.memo, { ...ok, frames: 40, received: 1900, lost: 100 }, 2000);
  assert.equal(lossy.quality, 'poor');
  j = judgeMedia(null, { ...ok, frames: 10 }, 1000);
  assert.equal(judgeMedia(j.memo, { ...ok, frames: 20, rtt_ms: 300 }, 2000).quality, 'fair');
  assert.equal(judgeMedia(j.memo, { ...ok, frames: 20, fps: 3 }, 2000).quality, 'poor');
});

test('a new peer connection restarting its counters still counts as frames', () => {
  let j = judgeMedia(null, { ...ok, frames: 500 }, 1000);
  j = judgeMedia(j.memo, { ...ok, frames: 12 }, 2000);
  assert.equal(j.video, 'live');
});

test('the phone\'s uplink in one word: stalled, loss, bandwidth, ok', () => {
  const flowing = { sent_kbps: 800, loss: 0, limitation: 'none' };
  assert.equal(describeUplink(flowing, 'live'), 'ok');
  assert.equal(describeUplink({ ...flowing, limitation: 'bandwidth', sent_kbps: 140 }, 'live'), 'bandwidth');
  assert.equal(describeUplink({ ...flowing, limitation: 'none', available_kbps: 227 }, 'live'), 'bandwidth');
  assert.equal(describeUplink({ ...flowing, available_kbps: 1800 }, 'live'), 'ok');
  assert.equal(describeUplink({ ...flowing, loss: 0.08, limitation: 'bandwidth' }, 'live'), 'loss');
  // Nothing leaving beats every other reason, and so does a frozen picture.
  assert.equal(describeUplink({ ...flowing, sent_kbps: 0, loss: 0.5 }, 'live'), 'stalled');
  assert.equal(describeUplink(flowing, 'frozen'), 'stalled');
  // Before the first measurement of the sent rate nothing is claimed about it.
  assert.equal(describeUplink({ sent_kbps: null, loss: 0, limitation: null }, 'none'), 'ok');
});

// What the server receives from the business (GET …/uplink), said to the inspector.
const BIZ = 'b1';
const cam = (o = {}) => ({ participant: BIZ, feed: 'business_camera', kbps: 800, loss_pct: 0, late_pct: 0, quiet_ms: 200, ...o });
const mic = (o = {}) => ({ participant: BIZ, feed: 'business_microphone', kbps: 32, loss_pct: 0, late_pct: 0, quiet_ms: 100, ...o });

test('reception: nothing measured yet, or only another participant, is none', () => {
  assert.equal(describeReception([], BIZ).state, 'none');
  assert.equal(describeReception(null, BIZ).state, 'none');
  assert.equal(describeReception([{ ...cam(), participant: 'inspector' }], BIZ).state, 'none');
});

test('reception: flowing video and sound are ok, with both rates', () => {
  const r = describeReception([cam(), mic()], BIZ);
  assert.deepEqual([r.state, r.kbps, r.audio_kbps], ['ok', 800, 32]);
});

test('reception: worst first — silence, sound only, loss, thin, repaired loss', () => {
  const stalled = describeReception([cam({ quiet_ms: 7400 }), mic({ quiet_ms: 7100 })], BIZ);
  assert.deepEqual([stalled.state, stalled.secs, stalled.kbps], ['stalled', 7, 0]);
  assert.equal(describeReception([cam({ quiet_ms: 5000 }), mic()], BIZ).state, 'audio_only');
  assert.equal(describeReception([mic()], BIZ).state, 'audio_only', 'a phone without a camera');
  assert.equal(describeReception([cam({ kbps: 90, loss_pct: 4 }), mic()], BIZ).state, 'loss');
  assert.equal(describeReception([cam({ kbps: 90, late_pct: 12 }), mic()], BIZ).state, 'thin');
  const repairing = describeReception([cam({ late_pct: 6.4 }), mic()], BIZ);
  assert.deepEqual([repairing.state, repairing.late], ['repairing', 6.4]);
  assert.equal(describeReception([cam({ late_pct: 3 }), mic()], BIZ).state, 'ok', 'a little repair is normal');
});

test('reception: a phone in stills mode sends sound and no video on purpose, and it says so', () => {
  const paused = [cam({ quiet_ms: 9000 }), mic()];
  assert.equal(describeReception(paused, BIZ, { stills: true }).state, 'stills');
  assert.equal(describeReception(paused, BIZ).state, 'audio_only', 'without the phone saying so it is no video');
  // Video during a probe, or nothing at all, is judged as ever.
  assert.equal(describeReception([cam({ kbps: 120 }), mic()], BIZ, { stills: true }).state, 'thin');
  assert.equal(describeReception([cam({ quiet_ms: 9000 }), mic({ quiet_ms: 9000 })], BIZ, { stills: true }).state, 'stalled');
});
