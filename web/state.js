// The client's copy of the inspection state, updated by the same rules the server applies
// (docs/protocol.md, "State"): set_result replaces, clear removes, comment and evidence
// append, request_photo sets a pending request that the item's next photo clears, join/leave
// toggle online, start/finish set the lifecycle status.

/** A state before any snapshot arrives. */
export function emptyState() {
  return { lifecycle: { status: 'not_started' }, items: {}, participants: {} };
}

function item(state, id) {
  if (!state.items[id]) state.items[id] = { comments: [], evidence: [] };
  const it = state.items[id];
  if (!it.comments) it.comments = [];
  if (!it.evidence) it.evidence = [];
  return it;
}

function participant(state, id) {
  if (!state.participants[id]) state.participants[id] = {};
  return state.participants[id];
}

/** Apply one event (the `event` message or an element of welcome.events) in place. */
export function applyEvent(state, e) {
  const p = e.payload || {};
  switch (e.kind) {
    case 'set_result': {
      const it = item(state, p.item_id);
      if (p.result === 'clear') {
        delete it.result;
        delete it.comment;
        delete it.violation;
        delete it.result_ts;
        delete it.result_seq;
        delete it.result_by;
      } else {
        it.result = p.result;
        it.comment = p.comment ?? null;
        it.violation = p.violation ?? null;
        it.result_ts = e.server_ts;
        it.result_seq = e.seq;
        it.result_by = e.participant_id;
      }
      break;
    }
    case 'comment':
      item(state, p.item_id).comments.push({ seq: e.seq, ts: e.server_ts, by: e.participant_id, text: p.text });
      break;
    case 'attach_evidence': {
      const it = item(state, p.item_id);
      // A photo of the item answers the inspector's request for one.
      if (p.evidence?.kind === 'photo') delete it.photo_request;
      it.evidence.push({ seq: e.seq, ts: e.server_ts, by: e.participant_id, ...(p.evidence || {}) });
      break;
    }
    case 'request_photo':
      item(state, p.item_id).photo_request = { seq: e.seq, ts: e.server_ts, by: e.participant_id };
      break;
    case 'start':
      state.lifecycle = { ...state.lifecycle, status: 'live', started_at: e.server_ts, started_by: e.participant_id };
      break;
    case 'finish':
      state.lifecycle = { ...state.lifecycle, status: 'finished', finished_at: e.server_ts, finished_by: e.participant_id };
      break;
    case 'join': {
      const pp = participant(state, e.participant_id);
      Object.assign(pp, {
        role: p.role, display_name: p.display_name, device: p.device, online: true,
        joined_at: pp.joined_at ?? e.server_ts, left_at: null,
      });
      break;
    }
    case 'leave': {
      const pp = participant(state, e.participant_id);
      pp.online = false;
      pp.left_at = e.server_ts;
      break;
    }
    case 'location': {
      const pp = participant(state, e.participant_id);
      pp.location = { ...p, server_ts: e.server_ts };
      break;
    }
    case 'presence': {
      const pp = participant(state, e.participant_id);
      for (const k of ['quality', 'rtt_ms', 'network', 'visible']) if (k in p) pp[k] = p[k];
      break;
    }
    case 'verdict':
    case 'location_verdict':
    case 'geo_verdict':
    case 'location_trust':
    case 'trust': {
      // The server's assessment of a participant's location (level + signals).
      const pid = p.participant_id || e.participant_id;
      participant(state, pid).verdict = p.verdict || p;
      break;
    }
    default: {
      // Events this client does not model yet (e.g. a location verdict) are kept verbatim
      // on the participant when they name one, so the UI can still show them.
      if (p && p.participant_id && state.participants[p.participant_id]) {
        state.participants[p.participant_id][e.kind] = p;
      }
    }
  }
  return state;
}

/** The result of an item: one of compliant, violation, not_applicable, unanswered. */
export function resultOf(state, itemId) {
  const r = state.items?.[itemId]?.result;
  return r === 'compliant' || r === 'violation' || r === 'not_applicable' ? r : 'unanswered';
}
