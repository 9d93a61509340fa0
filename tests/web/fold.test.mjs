// The browser's fold (web/state.js) over the shared recorded logs in tests/data/folds: every
// log must give exactly the state stored beside it, the state the server's fold gives
// (checklist-sync/tests/folds.rs holds the Rust fold to the same files).
// Run: node --test tests/web

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { applyEvent, emptyState } from '../../web/state.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'folds');
const logs = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();

const lines = (name) => readFileSync(join(dir, name), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const expected = (name) => JSON.parse(readFileSync(join(dir, name.replace(/\.jsonl$/, '.state.json')), 'utf8'));
// What a snapshot would carry: plain JSON (undefined fields vanish, as they do on the wire).
const asJson = (v) => JSON.parse(JSON.stringify(v));

test('there are recorded logs to fold', () => {
  assert.ok(logs.length >= 5, `fixtures: ${logs}`);
});

for (const name of logs) {
  test(`the browser's fold of ${name} is the server's state`, () => {
    const state = emptyState();
    for (const e of lines(name)) applyEvent(state, e);
    assert.deepStrictEqual(asJson(state), expected(name));
  });

  test(`a snapshot taken midway of ${name} plus the rest of the events is the same state`, () => {
    const events = lines(name);
    const cut = Math.floor(events.length / 2);
    const first = emptyState();
    for (const e of events.slice(0, cut)) applyEvent(first, e);
    // A client that joined midway gets a snapshot (JSON) and applies the rest live.
    const client = asJson(first);
    for (const e of events.slice(cut)) applyEvent(client, e);
    assert.deepStrictEqual(asJson(client), expected(name));
  });
}

test('the empty state is what the server serializes for an inspection without events', () => {
  assert.deepStrictEqual(asJson(emptyState()), {
    lifecycle: {
      status: 'not_started', started_at: null, started_by: null, finished_at: null, finished_by: null,
      cancelled_at: null, cancelled_by: null, cancel_reason: null, cancel_note: null,
    },
    items: {},
    participants: {},
  });
});

test('an event kind the page does not know changes nothing', () => {
  const state = emptyState();
  applyEvent(state, { seq: 1, server_ts: 1, participant_id: 'p', kind: 'location_verdict', payload: { participant_id: 'p', level: 'spoofed' } });
  assert.deepStrictEqual(asJson(state), asJson(emptyState()));
});
