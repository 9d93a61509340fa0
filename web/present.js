// Presentation helpers shared by the faces: event log lines, participants with their
// geolocation and trust verdict, distances.

import { t, formatTime, formatDistance } from './i18n.js';
import { el, resultBadge } from './checklist.js';
import { signalText } from './signals.js';

/** A device check's "could not connect", and why when the page knew. */
export function rtcFailed(rtc) {
  const why = rtc?.failure ? tr('check.rtc.why', rtc.failure) : '';
  return why ? `${t('check.rtc.failed')} (${why})` : t('check.rtc.failed');
}

/** Translate `<prefix>.<value>`, falling back to the raw value for unknown ones. */
function tr(prefix, value) {
  if (!value) return '';
  const key = `${prefix}.${value}`;
  const s = t(key);
  return s === key ? value : s;
}

/** Great-circle distance in metres (haversine). */
export function distanceM(a, b) {
  if (!a || !b || a.lat == null || b.lat == null) return null;
  const R = 6371008.8;
  const rad = (d) => (d * Math.PI) / 180;
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Server µs timestamp → Date ISO string. */
export function usToIso(us) {
  return us ? new Date(Math.floor(us / 1000)).toISOString() : null;
}

/** The page's name for the server's trust levels (the chip's colour and words). */
const LEVEL = { trusted: 'trusted', suspicious: 'suspicious', spoofed: 'untrusted' };

/**
 * The server's trust verdict on a participant's location (the last `verdict` event, folded
 * into the participant): {level: trusted|suspicious|untrusted|unknown, names, reasons,
 * distance_m}. `reasons` are the deciding signals in words; `distance_m` is the server's
 * distance to the site when it measured one.
 */
export function verdictOf(state, pid) {
  const v = state.participants?.[pid]?.verdict;
  if (!v) return { level: 'unknown', reasons: [], names: [], distance_m: null };
  const signals = v.signals || [];
  const deciding = signals.filter((s) => s.severity !== 'info');
  const site = signals.find((s) => ['on_site', 'site_unconfirmed', 'far_from_site'].includes(s.name));
  return {
    level: LEVEL[v.level] ?? 'unknown',
    names: deciding.map((s) => s.name),
    reasons: deciding.map((s) => signalText(s)),
    distance_m: site?.value?.distance_m ?? null,
  };
}

// Which location problem a signal is evidence of; the most pressing one decides the banner.
const SPOOF = ['impossible_speed', 'frozen_position', 'accuracy_too_good', 'accuracy_constant', 'timezone_mismatch', 'clock_skew'];
const DEVICE = ['automation', 'emulator', 'platform_mismatch', 'client_hint', 'desktop_browser'];

/**
 * The one thing to say about a participant's location, decided from the server's verdict and
 * the last `location_unavailable`: {reason, title, advice, details, level}. `reason` is one
 * of `denied` (location access refused), `unavailable` (no fix), `spoofed` (the positions
 * look injected), `far` (far from the site), `device` (an emulator or a driven browser),
 * `unconfirmed` (too coarse to confirm the site), `ok`, `none` (nothing known yet).
 * A refused permission is never called spoofing: it is asked for differently.
 */
export function locationVerdict(state, pid) {
  const p = state.participants?.[pid] || {};
  const v = verdictOf(state, pid);
  const signals = (p.verdict?.signals || []).filter((x) => x.severity !== 'info');
  const has = (names, severity) => signals.some((x) => names.includes(x.name) && (!severity || x.severity === severity));
  const noFix = signals.find((x) => x.name === 'no_fix');
  const noFixReason = p.no_fix || noFix?.value?.reason;
  let reason;
  if (noFixReason === 'permission_denied') reason = 'denied';
  else if (p.no_fix || (noFix && !p.location)) reason = 'unavailable';
  else if (has(SPOOF, 'spoofed')) reason = 'spoofed';
  else if (has(['far_from_site'])) reason = 'far';
  else if (has(SPOOF)) reason = 'spoofed';
  else if (has(DEVICE)) reason = 'device';
  else if (has(['site_unconfirmed', 'coarse_fix'])) reason = 'unconfirmed';
  else if (v.level === 'trusted') reason = 'ok';
  else reason = v.level === 'unknown' ? 'none' : 'ok';
  const acc = p.location?.accuracy;
  const vars = { d: formatDistance(v.distance_m), acc: acc != null ? Math.round(acc) : '?' };
  const decidingNames = {
    denied: ['no_fix'], unavailable: ['no_fix'], spoofed: SPOOF, far: ['far_from_site'], device: DEVICE,
    unconfirmed: ['site_unconfirmed', 'coarse_fix'],
  }[reason] || [];
  return {
    reason,
    level: v.level,
    title: t(`loc.${reason}.title`, vars),
    advice: t(`loc.${reason}.do`, vars),
    // The deciding signals first, the rest after: the inspector sees every reason.
    details: [...signals.filter((x) => decidingNames.includes(x.name)), ...signals.filter((x) => !decidingNames.includes(x.name))]
      .map((x) => signalText(x)),
  };
}

const VERDICT_ICON = { trusted: '✓', suspicious: '!', untrusted: '✕', unknown: '?' };
const VERDICT_KEY = { trusted: 'geo.trusted', suspicious: 'geo.suspicious', untrusted: 'geo.untrusted', unknown: 'geo.unknown' };

/** A verdict chip: icon + text, coloured. */
export function verdictChip(v) {
  return el('span', { class: 'verdict', 'data-verdict': v.level },
    el('span', { 'aria-hidden': 'true', text: VERDICT_ICON[v.level] }), t(VERDICT_KEY[v.level]));
}

/** Render the participants list with geolocation details. */
export function renderParticipants(ul, state, site) {
  const entries = Object.entries(state.participants || {});
  if (entries.length === 0) {
    ul.replaceChildren(el('li', { class: 'muted', text: t('room.participants.none') }));
    return;
  }
  ul.replaceChildren(...entries.map(([pid, p]) => {
    const li = el('li', { class: 'participant', 'data-participant-id': pid, 'data-role': p.role || '' });
    li.append(el('div', {},
      el('span', { class: 'name', text: p.display_name || pid.slice(0, 8) }),
      ` · ${tr('role', p.role)}${p.device ? ` · ${tr('device', p.device)}` : ''} · `,
      el('span', { class: 'presence', 'data-online': String(!!p.online), text: p.online
        ? `● ${t('room.online')}`
        : `○ ${p.left_at ? t('room.offline.since', { t: formatTime(usToIso(p.left_at), { timeStyle: 'medium' }) }) : t('room.offline')}` }),
      // Presence reports are folded in here, not listed in the event log.
      p.online && p.quality && p.quality !== 'unknown' ? ` · ${t('quality.label')}: ${t(`quality.${p.quality}`)}${p.rtt_ms != null ? ` (${p.rtt_ms} ${t('unit.ms')})` : ''}` : '',
      p.online && p.visible === false ? ` · ${t('room.hidden')}` : ''));
    // The browser cannot do part of the job (issue 17): said beside the name, not left for
    // the inspector to guess from a black video.
    if (p.missing?.length) {
      li.append(el('div', { class: 'missing', role: 'note', 'data-missing': p.missing.join(' '),
        text: t('room.missing', { list: p.missing.map((m) => t(`missing.${m}`)).join(', ') }) }));
    }
    const loc = p.location;
    const geo = el('div', { class: 'geo' });
    if (loc && loc.lat != null) {
      const d = verdictOf(state, pid).distance_m ?? distanceM(loc, site);
      geo.append(
        el('div', {}, `${t('geo.coords')}: ${Number(loc.lat).toFixed(5)}, ${Number(loc.lon).toFixed(5)}`),
        el('div', {}, t('geo.accuracy', { m: Math.round(loc.accuracy ?? 0) }),
          d != null ? ` · ${t('geo.distance', { d: formatDistance(d) })}` : ''));
    }
    if (p.no_fix) {
      geo.append(el('div', { text: t(p.no_fix === 'permission_denied' ? 'geo.denied' : 'geo.no_fix') }));
    }
    if (p.role === 'business' || loc) {
      const v = verdictOf(state, pid);
      const lv = locationVerdict(state, pid);
      const vd = el('div', { class: 'verdict-line', 'data-reason': lv.reason }, verdictChip(v));
      // The same deciding reason the business is shown, in the same words.
      if (!['ok', 'none'].includes(lv.reason)) vd.append(el('strong', { class: 'verdict-title', text: ` ${lv.title}` }));
      if (lv.details.length) vd.append(el('ul', { class: 'reasons' }, ...lv.details.map((r) => el('li', { text: r }))));
      geo.append(vd);
    }
    li.append(geo);
    return li;
  }));
}

/** Kinds that are measurements, not actions: folded into the participant's line (quality,
 * visibility, position) rather than listed, so the log stays readable (and quiet for
 * screen readers). Verdict changes and lost fixes are listed. */
const NOT_LOGGED = new Set(['presence', 'location']);

/** Whether an event belongs in the readable action log. */
export function isLogged(e) {
  return !NOT_LOGGED.has(e.kind);
}

/** One human line for an event of the log. */
export function describeEvent(e, state, checklist) {
  const p = e.payload || {};
  const server = e.participant_id === '00000000-0000-0000-0000-000000000000';
  const who = server ? t('evidence.by.server') : state.participants?.[e.participant_id]?.display_name || p.display_name || (e.participant_id || '').slice(0, 8);
  const itemLabel = (id) => {
    const it = (checklist || []).find((i) => i.id === id);
    return it ? `${it.number ?? ''} ${it.question ?? ''}`.trim() : id;
  };
  const parts = [el('strong', { text: who }), ' '];
  switch (e.kind) {
    case 'set_result':
      parts.push(`→ ${itemLabel(p.item_id)}: `, resultBadge(p.result === 'clear' ? 'unanswered' : p.result));
      if (p.violation) parts.push(` ${p.violation}`);
      if (p.comment) parts.push(` (${p.comment})`);
      break;
    case 'comment':
      parts.push(`«${p.text}» → ${itemLabel(p.item_id)}`);
      break;
    case 'location':
      parts.push(`${t('geo.coords')}: ${Number(p.lat).toFixed(5)}, ${Number(p.lon).toFixed(5)} ±${Math.round(p.accuracy)}`);
      break;
    case 'location_unavailable':
      parts.push(`${t('event.location_unavailable')} (${tr('nofix', p.reason)})`);
      break;
    case 'request_photo':
    case 'focus':
      parts.push(`${tr('event', e.kind)} → ${itemLabel(p.item_id)}`);
      break;
    case 'attach_evidence':
      parts.push(`${tr('event', e.kind)}: ${tr('evidence.kind', p.evidence?.kind)} → ${itemLabel(p.item_id)}`);
      if (p.evidence?.sha256) parts.push(` (SHA-256 ${p.evidence.sha256.slice(0, 12)}…)`);
      break;
    case 'presence':
      parts.push(`${t('quality.label')}: ${t(`quality.${p.quality === 'unknown' ? 'none' : p.quality}`)}${p.rtt_ms != null ? `, ${p.rtt_ms} ms` : ''}`);
      if (p.video_mode === 'stills') parts.push(`; ${t('event.video_mode.stills')}`);
      break;
    // A still of the phone's camera in place of video (issue 19), and the inspector's ask for one.
    case 'frame':
      parts.push(`${tr('event', e.kind)} (${tr('frame', p.reason)})`);
      if (p.evidence?.sha256) parts.push(` (SHA-256 ${p.evidence.sha256.slice(0, 12)}…)`);
      break;
    case 'verdict': {
      parts.push(`${t('event.verdict')}: `, verdictChip({ level: LEVEL[p.level] ?? 'unknown' }));
      const lv = locationVerdict({ participants: { x: { verdict: p } } }, 'x');
      if (!['ok', 'none'].includes(lv.reason)) parts.push(` ${lv.title}`);
      break;
    }
    case 'join':
      parts.push(tr('event', e.kind), ` (${tr('role', p.role)}${p.device ? `, ${tr('device', p.device)}` : ''})`);
      break;
    case 'leave':
      parts.push(tr('event', e.kind), ` (${tr('leave', p.reason)})`);
      break;
    case 'cancel':
      parts.push(tr('event', e.kind), p.reason ? ` (${tr('cancel', p.reason)})` : '', p.note ? ` «${p.note}»` : '');
      break;
    // Guiding the camera (issue 25).
    case 'camera': {
      const v = p.capability === 'facing' ? t(p.value === 'user' ? 'cam.front' : 'cam.rear')
        : p.capability === 'torch' ? t(p.value ? 'cam.on' : 'cam.off')
          : p.capability === 'zoom' ? `×${Number(p.value).toFixed(1)}`
            : `${Math.round(p.value?.x * 100)}%, ${Math.round(p.value?.y * 100)}%`;
      parts.push(`${t('event.camera')}: ${t(`cam.cap.${p.capability}`)} → ${v}`);
      break;
    }
    case 'pointer':
      parts.push(`${t('event.pointer')} (${Math.round(p.at?.x * 100)}%, ${Math.round(p.at?.y * 100)}%)`, p.text ? ` «${p.text}»` : '');
      break;
    default:
      parts.push(tr('event', e.kind));
  }
  return parts;
}

/** The log line of an event, or null for a measurement (`isLogged` false). */
export function eventLine(e, state, checklist) {
  if (!isLogged(e)) return null;
  return el('li', { 'data-seq': e.seq, 'data-kind': e.kind },
    el('span', { class: 'seq', text: `#${e.seq}` }),
    el('span', { class: 'ts', text: formatTime(e.server_time || usToIso(e.server_ts), { timeStyle: 'medium' }) }),
    el('span', {}, ...describeEvent(e, state, checklist)));
}

/** Append an event to a log list element (keeps the newest at the bottom, scrolled); with
 * `limit`, the oldest line goes once there are more, and a first line says so. */
export function appendEventLine(ol, e, state, checklist, limit = Infinity) {
  const li = eventLine(e, state, checklist);
  if (!li) return;
  ol.append(li);
  const lines = ol.querySelectorAll(':scope > li:not(.earlier)');
  if (lines.length > limit) {
    lines[0].remove();
    if (!ol.querySelector(':scope > li.earlier')) ol.prepend(el('li', { class: 'muted earlier', text: t('log.earlier') }));
  }
  ol.scrollTop = ol.scrollHeight;
}

/** Lines a live page's action log shows, at most: the whole log is the download. */
export const LIVE_LOG_LINES = 300;

/** The path of the actions a live page lists after a snapshot at `seq`: the last
 * LIVE_LOG_LINES of them, not the whole history (the server leaves measurements out). */
export function liveLogPath(inspectionId, seq) {
  return `/api/inspections/${inspectionId}/events.jsonl?upto=${seq}&last=${LIVE_LOG_LINES}`;
}

/** The window fetched from liveLogPath (JSON Lines) put before the events that came live
 * since (`live`, kept as they are): the merged list, and whether the window was full (so
 * that earlier actions exist). */
export function mergeLiveLog(text, live) {
  const past = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const known = new Set(live.map((e) => e.seq));
  return {
    events: [...past.filter((e) => !known.has(e.seq)), ...live].sort((a, b) => a.seq - b.seq),
    earlier: past.length >= LIVE_LOG_LINES,
  };
}

/** The log at once, scrolled to the newest: one layout instead of one per line (reading
 * `scrollHeight` after each append laid the list out again, which made a rejoin of a long
 * inspection slow enough to delay its video; docs/benchmarks.md, "Join"). With `limit`, only
 * the newest `limit` lines; when lines were left out (here, or `earlier`: before the events
 * given), a first line says that they are in the full log. */
export function renderEventLines(ol, events, state, checklist, { limit = Infinity, earlier = false } = {}) {
  const shown = [];
  let i = events.length - 1;
  for (; i >= 0 && shown.length < limit; i -= 1) {
    const li = eventLine(events[i], state, checklist);
    if (li) shown.push(li);
  }
  shown.reverse();
  const lines = document.createDocumentFragment();
  if (earlier || events.slice(0, i + 1).some(isLogged)) {
    lines.append(el('li', { class: 'muted earlier', text: t('log.earlier') }));
  }
  lines.append(...shown);
  ol.replaceChildren(lines);
  ol.scrollTop = ol.scrollHeight;
}
