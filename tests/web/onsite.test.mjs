// The on-site phone's pure parts: the track's rate limit, the superseded-results comparison
// after a resync, and the reviewer's canvas fit (no DOM).

import test from 'node:test';
import assert from 'node:assert/strict';
import { keepFix, distanceM, superseded, TRACK_MIN_MS, TRACK_MIN_M } from '../../web/onsite-queue.js';
import { fitTrack, claimedLine, tilesFor, tileUrl, MAX_TILES } from '../../web/track.js';

const fix = (lat, lon, t) => ({ lat, lon, accuracy: 5, device_ts: t });

test('a fix is kept first, after 10 s, or 15 m away; not in between', () => {
  const a = fix(55.7577, 37.613, 1_000);
  assert.equal(keepFix(null, a), true);
  assert.equal(keepFix(a, fix(55.7577, 37.613, 1_000 + TRACK_MIN_MS - 1)), false);
  assert.equal(keepFix(a, fix(55.7577, 37.613, 1_000 + TRACK_MIN_MS)), true);
  // 0.0002° of latitude is about 22 m.
  const moved = fix(55.7579, 37.613, 2_000);
  assert.ok(distanceM(a, moved) > TRACK_MIN_M);
  assert.equal(keepFix(a, moved), true);
  assert.equal(keepFix(a, fix(55.75775, 37.613, 2_000)), false);
});

test('distance is haversine metres', () => {
  const d = distanceM({ lat: 55.7577, lon: 37.613 }, { lat: 55.7587, lon: 37.613 });
  assert.ok(Math.abs(d - 111.2) < 0.5, String(d));
});

const sent = (opId, item, result, seq, status = 'committed') => ({
  op_id: opId, type: 'op', op: { kind: 'set_result', item_id: item, result }, answer: { status, seq },
});

test('a result of this phone replaced later by the server order is superseded', () => {
  const list = [sent('a', 'q1', 'compliant', 5), sent('b', 'q2', 'violation', 6), sent('c', 'q1', 'violation', 8)];
  const state = { items: { q1: { result: 'not_applicable', result_seq: 11 }, q2: { result: 'violation', result_seq: 6 } } };
  assert.deepEqual(superseded(list, [], state), [{ item_id: 'q1', ours: 'violation', now: 'not_applicable', seq: 11 }]);
  // Our own newer result still queued: not reported yet.
  const queued = [{ type: 'op', op: { kind: 'set_result', item_id: 'q1', result: 'compliant' } }];
  assert.deepEqual(superseded(list, queued, state), []);
  // Refused ones are never "ours" in the log.
  assert.deepEqual(superseded([sent('d', 'q3', 'compliant', null, 'refused')], [], { items: {} }), []);
  // Cleared by us and still unanswered: nothing to report.
  assert.deepEqual(superseded([sent('e', 'q4', 'clear', 9)], [], { items: { q4: { result: null, result_seq: null } } }), []);
});

test('the track and the site fit the canvas, at least 50 m across', () => {
  const pts = [fix(55.7577, 37.613, 0), fix(55.7587, 37.613, 10_000)];
  const f = fitTrack(pts, { lat: 55.7577, lon: 37.613 }, 400, 300, 20);
  for (const p of f.points) {
    assert.ok(p.px[0] >= 20 && p.px[0] <= 380 && p.px[1] >= 20 && p.px[1] <= 280, JSON.stringify(p.px));
  }
  // North is up: the later, northern point is higher on the canvas.
  assert.ok(f.points[1].px[1] < f.points[0].px[1]);
  assert.deepEqual(f.site.map(Math.round), f.points[0].px.map(Math.round));
  const one = fitTrack([fix(55, 37, 0)], null, 400, 300, 20);
  assert.ok(Math.abs(one.scale - 260 / 50) < 1e-9);
  assert.equal(fitTrack([], null, 400, 300), null);
});

test('the reviewer is told how many positions are device-claimed and how far the clock was off', () => {
  const pts = [
    { device_claimed: true, clock_offset_ms: 350 },
    { device_claimed: true, clock_offset_ms: -7_200_300 },
  ];
  const line = claimedLine(pts);
  assert.match(line, /2/);
  assert.match(line, /2:00:00/);
  // Without a measured offset (an old phone page) only the count is said.
  assert.doesNotMatch(claimedLine([{ device_claimed: true }]), /2:00:00/);
});

test('map tiles (when configured) cover the canvas at a matching zoom, the site inside its tile', () => {
  const site = { lat: 55.7577, lon: 37.613 };
  const pts = [fix(55.7577, 37.613, 0), fix(55.7597, 37.616, 10_000)];
  const fit = fitTrack(pts, site, 600, 360);
  const tiles = tilesFor(fit, 600, 360);
  assert.ok(tiles.length > 0 && tiles.length <= MAX_TILES);
  const z = tiles[0].z;
  // A tile pixel is within a factor √2 of a canvas pixel (the zoom is rounded).
  const mPerTilePx = (156543.03392 * Math.cos(55.7577 * Math.PI / 180)) / 2 ** z;
  assert.ok(Math.abs(Math.log2(mPerTilePx * fit.scale)) <= 0.5, `${mPerTilePx} vs ${1 / fit.scale}`);
  // Every canvas corner lies in some tile; so does the site, in the tile that holds it.
  const inside = ([x, y], r) => x >= r[0] - 1e-6 && x <= r[0] + r[2] + 1e-6 && y >= r[1] - 1e-6 && y <= r[1] + r[3] + 1e-6;
  for (const corner of [[0, 0], [600, 0], [0, 360], [600, 360], fit.site]) {
    assert.ok(tiles.some((t) => inside(corner, t.rect)), `corner ${corner}`);
  }
  const n = 2 ** z;
  const sx = Math.floor(((site.lon + 180) / 360) * n);
  const lr = site.lat * Math.PI / 180;
  const sy = Math.floor(((1 - Math.log(Math.tan(lr) + 1 / Math.cos(lr)) / Math.PI) / 2) * n);
  const own = tiles.find((t) => t.x === sx && t.y === sy);
  assert.ok(own && inside(fit.site, own.rect), 'the site is in its own tile');
  assert.equal(tileUrl('https://t.example/{z}/{x}/{y}.png', { z: 3, x: 4, y: 5 }), 'https://t.example/3/4/5.png');
});
