// The client's copy of the inspection state: the same fold as checklist-sync's `State`
// (docs/protocol.md, "State"), producing the same JSON the server's snapshot has, field for
// field. tests/web/fold.test.mjs runs the recorded logs of tests/data/folds through this fold
// and the Rust test runs them through the server's; both must give the stored states. A photo
// request is absent, not null, once answered, as the server skips it.

function lifecycle() {
  return {
    status: 'not_started',
    started_at: null,
    started_by: null,
    finished_at: null,
    finished_by: null,
    cancelled_at: null,
    cancelled_by: null,
    cancel_reason: null,
    cancel_note: null,
  };
}

/** A state before any event: what the server's `State::default()` serializes to. */
export function emptyState() {
  return { lifecycle: lifecycle(), items: {}, participants: {} };
}

function item(state, id) {
  if (!state.items[id]) {
    state.items[id] = {
      result: null,
      comment: null,
      violation: null,
      result_ts: null,
      result_seq: null,
      result_by: null,
      comments: [],
      evidence: [],
    };
  }
  return state.items[id];
}

function participant(state, id) {
  if (!state.participants[id]) {
    state.participants[id] = {
      role: null,
      display_name: '',
      device: '',
      online: false,
      joined_at: null,
      left_at: null,
      quality: null,
      rtt_ms: null,
      network: null,
      visible: null,
      location: null,
    };
  }
  return state.participants[id];
}

/** Apply one event (the `event` message, an element of welcome.events, or a line of the
 * exported log) in place. Kinds this client does not know change nothing. */
export function applyEvent(state, e) {
  const p = e.payload || {};
  const ts = e.server_ts;
  const by = e.participant_id;
  switch (e.kind) {
    case 'join': {
      const pp = participant(state, by);
      pp.role = p.role;
      pp.display_name = p.display_name;
      pp.device = p.device;
      pp.online = true;
      // The last join, as on the server.
      pp.joined_at = ts;
      // What the browser lacks (issue 17); absent when nothing is, as the server's fold.
      if (Array.isArray(p.client?.missing) && p.client.missing.length) pp.missing = [...p.client.missing];
      else delete pp.missing;
      break;
    }
    case 'leave': {
      const pp = participant(state, by);
      pp.online = false;
      pp.left_at = ts;
      break;
    }
    case 'verdict':
      participant(state, by).verdict = p;
      break;
    case 'set_result': {
      const it = item(state, p.item_id);
      if (p.result === 'clear') {
        it.result = null;
        it.comment = null;
        it.violation = null;
        it.result_ts = null;
        it.result_seq = null;
        it.result_by = null;
      } else {
        it.result = p.result;
        it.comment = p.comment ?? null;
        it.violation = p.violation ?? null;
        // The frame the marker saw, where the server placed the mark on it (as the server's fold).
        it.result_ts = p.seen?.rule === 'seen_frame' && Number.isFinite(p.seen.at_micros) ? p.seen.at_micros : ts;
        it.result_seq = e.seq;
        it.result_by = by;
      }
      break;
    }
    case 'comment':
      item(state, p.item_id).comments.push({ seq: e.seq, ts, by, text: p.text });
      break;
    case 'attach_evidence': {
      if (p.finding_seq != null) {
        // A free-form finding's photo or video: the finding's own list (absent while empty).
        const f = (state.findings || []).find((x) => x.seq === p.finding_seq);
        if (f) (f.evidence ??= []).push({ seq: e.seq, ts, by, ...p.evidence });
        break;
      }
      const it = item(state, p.item_id);
      // A photo of the item answers the inspector's request for one.
      if (p.evidence?.kind === 'photo') delete it.photo_request;
      it.evidence.push({ seq: e.seq, ts, by, ...p.evidence });
      break;
    }
    case 'finding': {
      // Absent, not empty, before the first one, as the server skips an empty list.
      const f = { seq: e.seq, ts };
      if (p.device_time != null) f.device_time = p.device_time;
      Object.assign(f, { by, text: p.text });
      if (p.location) f.location = p.location;
      (state.findings ??= []).push(f);
      break;
    }
    case 'request_photo':
      item(state, p.item_id).photo_request = { seq: e.seq, ts, by };
      break;
    case 'start':
      Object.assign(state.lifecycle, { status: 'live', started_at: ts, started_by: by });
      break;
    case 'finish':
      Object.assign(state.lifecycle, { status: 'finished', finished_at: ts, finished_by: by });
      break;
    case 'cancel':
      Object.assign(state.lifecycle, {
        status: 'cancelled',
        cancelled_at: ts,
        cancelled_by: by,
        cancel_reason: p.reason ?? null,
        cancel_note: p.note ?? null,
      });
      break;
    case 'location': {
      const pp = participant(state, by);
      // A queued fix's device time and batch clock offset sit beside the op, not in it.
      const { device_time: _t, clock_offset_ms: _o, ...fix } = p;
      pp.location = { ...fix, server_ts: ts };
      delete pp.no_fix;
      break;
    }
    case 'location_unavailable':
      participant(state, by).no_fix = p.reason;
      break;
    case 'presence': {
      const pp = participant(state, by);
      // Every presence replaces the previous one whole: an absent field is unknown now.
      pp.quality = p.quality;
      pp.rtt_ms = p.rtt_ms ?? null;
      pp.network = p.network ?? null;
      pp.visible = p.visible ?? null;
      // What the phone sends of its camera (issue 19): absent in older logs, as in the Rust fold.
      if (p.video_mode) pp.video_mode = p.video_mode; else delete pp.video_mode;
      if (p.stills_reason) pp.stills_reason = p.stills_reason; else delete pp.stills_reason;
      break;
    }
    // A still of the phone's camera: the count and the latest one (the log has each).
    case 'frame': {
      const pp = participant(state, by);
      pp.frames = {
        count: (pp.frames?.count ?? 0) + 1,
        last_seq: e.seq,
        last_id: p.evidence?.id,
        last_at: p.evidence?.at_micros ?? ts,
        last_reason: p.reason,
      };
      break;
    }
    // The finalized recording's hash (only the server makes it), as checklist-sync folds it.
    case 'recording_finalized':
      state.recording = { seq: e.seq, file: p.file, sha256: p.sha256, size: p.size, duration_ms: p.duration_ms };
      break;
    // The act's events (only the server makes them): the same fold as checklist-sync's State.
    case 'act_formed':
      state.act = {
        seq: e.seq, ts, sha256: p.sha256, size: p.size, head_seq: p.head_seq, head_hash: p.head_hash,
        language: p.language, signatures: [], refusals: [],
      };
      break;
    case 'act_signed':
      state.act?.signatures.push({
        seq: e.seq, ts, role: p.role, signer: p.signer, certificate_sha256: p.certificate_sha256,
        signature_sha256: p.signature_sha256, scheme: p.scheme,
      });
      break;
    case 'act_refused':
      state.act?.refusals.push({ seq: e.seq, ts, role: p.role, signer: p.signer, reason: p.reason });
      break;
    // A party's rating after the end (only the server makes it): when first given, the latest.
    case 'rating': {
      state.ratings ??= {};
      const prev = state.ratings[p.side];
      state.ratings[p.side] = {
        first_seq: prev ? prev.first_seq : e.seq,
        first_ts: prev ? prev.first_ts : ts,
        seq: e.seq,
        ts,
        by: e.participant_id,
      };
      break;
    }
    // Guiding the camera (issue 25): the same fold as checklist-sync's camera::CameraState.
    case 'camera_caps': {
      const c = camera(state);
      const caps = {};
      if ((p.caps?.facing || []).length) caps.facing = p.caps.facing;
      if (p.caps?.torch) caps.torch = true;
      if (p.caps?.zoom) caps.zoom = { min: p.caps.zoom.min, max: p.caps.zoom.max, ...(p.caps.zoom.step != null ? { step: p.caps.zoom.step } : {}) };
      if (p.caps?.focus) caps.focus = true;
      c.caps_seq = e.seq;
      c.reported_by = by;
      c.caps = caps;
      c.settings = {};
      for (const k of ['facing', 'torch', 'zoom']) if (p.settings?.[k] != null) c.settings[k] = p.settings[k];
      delete c.command_seq;
      break;
    }
    case 'camera': {
      const c = camera(state);
      c.command_seq = e.seq;
      if (p.capability === 'facing') {
        c.settings.facing = p.value;
        // Another camera starts with its torch off.
        if (c.settings.torch != null) c.settings.torch = false;
      } else if (p.capability === 'torch') c.settings.torch = p.value;
      else if (p.capability === 'zoom') c.settings.zoom = p.value;
      break;
    }
    case 'pointer': {
      const c = camera(state);
      c.pointers ??= [];
      c.pointers.push({ seq: e.seq, ts, at: p.at, ...(p.from ? { from: p.from } : {}), ...(p.text != null ? { text: p.text } : {}) });
      if (c.pointers.length > 8) c.pointers.shift();
      break;
    }
    default:
      break;
  }
  return state;
}

function camera(state) {
  state.camera ??= { settings: {} };
  return state.camera;
}

/** The result of an item: one of compliant, violation, not_applicable, unanswered. */
export function resultOf(state, itemId) {
  const r = state.items?.[itemId]?.result;
  return r === 'compliant' || r === 'violation' || r === 'not_applicable' ? r : 'unanswered';
}
