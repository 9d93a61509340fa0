// The on-site phone's durable queue (IndexedDB): what the inspector did while offline, in
// order, each entry with its op id (a UUID made here) and the device's time, until the server
// has answered it. Also the inspection as last downloaded (checklist and state), and what was
// sent (to show, after a resync, which of this phone's results the server's order superseded).
// No DOM; `flush` takes its transport as arguments.

const DB_NAME = 'inspector-onsite';
const DB_VERSION = 1;
/** Most ops the server takes in one queue request (signaling/src/onsite.rs MAX_BATCH). */
export const MAX_BATCH = 100;
/** A new position is kept when this much time passed since the last kept one… */
export const TRACK_MIN_MS = 10_000;
/** …or the device moved this far. */
export const TRACK_MIN_M = 15;

let dbPromise = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** The database, created on first use. */
export function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open(DB_NAME, DB_VERSION);
      r.onupgradeneeded = () => {
        const db = r.result;
        const q = db.createObjectStore('queue', { keyPath: 'n', autoIncrement: true });
        q.createIndex('inspection', 'inspection_id');
        const s = db.createObjectStore('sent', { keyPath: 'op_id' });
        s.createIndex('inspection', 'inspection_id');
        db.createObjectStore('inspections', { keyPath: 'id' });
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}

async function store(name, mode = 'readonly') {
  const db = await openDb();
  return db.transaction(name, mode).objectStore(name);
}

/** Keeps the inspection as downloaded: `{id, inspection, state, seq}`. */
export async function saveInspection(rec) {
  const s = await store('inspections', 'readwrite');
  await req(s.put(rec));
}

/** The inspection as last downloaded, or null. */
export async function loadInspection(id) {
  const s = await store('inspections');
  return (await req(s.get(id))) || null;
}

/** A new op id. */
export function newOpId() {
  return crypto.randomUUID();
}

/** Queues an op (`{kind, ...}`) made now; returns the entry. */
export async function enqueueOp(inspectionId, op, deviceTime = Date.now()) {
  const entry = { inspection_id: inspectionId, type: 'op', op_id: newOpId(), device_time: deviceTime, op };
  const s = await store('queue', 'readwrite');
  entry.n = await req(s.add(entry));
  return entry;
}

/**
 * Queues a photo or a short video of an item or a free-form finding: `target` is
 * `{item_id}`, `{finding_seq}` (a committed finding) or `{finding_op_id}` (a finding still
 * queued here: the queue is sent in order, so the server has committed that op by the time
 * the upload arrives, and resolves it to its seq). Also the bytes, the capture time and the
 * position then; a video also its length as recorded (the server's ffprobe checks it).
 */
export async function enqueuePhoto(inspectionId, target, blob, capturedAt, position, durationMs = null) {
  const entry = {
    inspection_id: inspectionId, type: 'photo', op_id: newOpId(), device_time: capturedAt,
    blob, position,
  };
  if (target.item_id != null) entry.item_id = target.item_id;
  else if (target.finding_seq != null) entry.finding_seq = target.finding_seq;
  else entry.finding_op_id = target.finding_op_id;
  if (durationMs != null) entry.duration_ms = Math.round(durationMs);
  const s = await store('queue', 'readwrite');
  entry.n = await req(s.add(entry));
  return entry;
}

/** Everything still queued for an inspection, oldest first. */
export async function pending(inspectionId) {
  const s = await store('queue');
  const all = await req(s.index('inspection').getAll(inspectionId));
  return all.sort((a, b) => a.n - b.n);
}

/** What the server answered for this inspection's sent entries. */
export async function sent(inspectionId) {
  const s = await store('sent');
  const all = await req(s.index('inspection').getAll(inspectionId));
  return all.sort((a, b) => a.n - b.n);
}

/** Moves an answered entry from the queue to `sent`, in one transaction. */
async function settle(entry, answer) {
  const db = await openDb();
  const tx = db.transaction(['queue', 'sent'], 'readwrite');
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  const { blob: _blob, ...rest } = entry;
  tx.objectStore('sent').put({ ...rest, answer });
  tx.objectStore('queue').delete(entry.n);
  await done;
}

/** Whether a failed request is worth retrying later (no network, the server's fault). */
function transient(e) {
  return !e || !e.status || e.status >= 500 || e.status === 401 || e.status === 429;
}

/**
 * Sends the queue in order: runs of ops as one queue request (at most MAX_BATCH), each photo
 * as an upload, and settles each entry with the server's answer. Stops (throws) at the first
 * transient failure: the rest stays queued, in order, for the next try. `send.batch(ops)`
 * answers `{results}`, `send.photo(entry)` answers the upload; both throw api.ApiError.
 * In-order sending is what lets a photo name a finding queued before it by that op id.
 */
export async function flush(inspectionId, send) {
  const entries = await pending(inspectionId);
  let n = 0;
  while (entries.length) {
    const head = entries[0];
    if (head.type === 'photo') {
      entries.shift();
      let answer;
      try {
        const r = await send.photo(head);
        answer = { status: 'committed', seq: r.seq, replayed: !!r.replayed, evidence_id: r.evidence?.id };
      } catch (e) {
        if (transient(e)) throw e;
        answer = { status: 'refused', error: { code: e.code } };
      }
      await settle(head, answer);
      n += 1;
      continue;
    }
    const run = [];
    while (entries.length && entries[0].type === 'op' && run.length < MAX_BATCH) run.push(entries.shift());
    let results;
    try {
      const r = await send.batch(run.map((e) => ({ op_id: e.op_id, device_time: e.device_time, op: e.op })));
      results = r.results;
    } catch (e) {
      if (transient(e)) throw e;
      results = run.map((x) => ({ op_id: x.op_id, status: 'refused', error: { code: e.code } }));
    }
    for (let i = 0; i < run.length; i += 1) {
      await settle(run[i], results[i] || { status: 'refused', error: { code: 'unknown' } });
      n += 1;
    }
  }
  return n;
}

/** Distance in metres between two {lat, lon} (haversine). */
export function distanceM(a, b) {
  const r = 6_371_008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Whether a new fix goes into the track: the first, or TRACK_MIN_MS later, or TRACK_MIN_M away. */
export function keepFix(last, fix) {
  if (!last) return true;
  return fix.device_ts - last.device_ts >= TRACK_MIN_MS || distanceM(last, fix) >= TRACK_MIN_M;
}

/**
 * This phone's committed results that the server's order superseded: for each item, this
 * phone's last committed `set_result` whose seq is no longer the item's result seq in the
 * server's state (someone, or another device, set it later). Nothing is reported for an item
 * with a newer result of this phone still queued.
 */
export function superseded(sentEntries, queued, state) {
  const lastOurs = new Map();
  for (const e of sentEntries) {
    if (e.type !== 'op' || e.op?.kind !== 'set_result' || e.answer?.status !== 'committed') continue;
    const prev = lastOurs.get(e.op.item_id);
    if (!prev || e.answer.seq > prev.answer.seq) lastOurs.set(e.op.item_id, e);
  }
  const queuedItems = new Set(queued.filter((e) => e.op?.kind === 'set_result').map((e) => e.op.item_id));
  const out = [];
  for (const [itemId, e] of lastOurs) {
    if (queuedItems.has(itemId)) continue;
    const now = state?.items?.[itemId];
    if (e.op.result === 'clear' && !now?.result) continue;
    if ((now?.result_seq ?? null) !== e.answer.seq) {
      out.push({ item_id: itemId, ours: e.op.result, now: now?.result ?? null, seq: now?.result_seq ?? null });
    }
  }
  return out;
}
