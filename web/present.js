// Presentation helpers shared by the faces: event log lines, participants with their
// geolocation and trust verdict, distances.

import { t, getLang, formatTime, formatDistance } from './i18n.js';
import { el, resultBadge } from './checklist.js';

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

/**
 * The trust verdict of a participant's location, normalized to
 * {level: trusted|suspicious|untrusted|unknown, reasons: [string], distance_m?}.
 * The server may attach it to the participant, to its location or keep a verdict map.
 */
export function verdictOf(state, pid) {
  const p = state.participants?.[pid] || {};
  const raw = p.verdict ?? p.location?.verdict ?? p.location_verdict ?? state.verdicts?.[pid] ?? null;
  if (!raw) return { level: 'unknown', reasons: [], names: [] };
  if (typeof raw === 'string') return { level: normLevel(raw), reasons: [], names: [] };
  let level = raw.level ?? raw.verdict ?? raw.status;
  if (level === undefined && typeof raw.trusted === 'boolean') level = raw.trusted ? 'trusted' : 'untrusted';
  const lang = getLang();
  const deciding = (raw.reasons || raw.signals || []).filter((r) => typeof r === 'string' || r.severity !== 'info');
  const names = deciding.map((r) => (typeof r === 'string' ? r : r.name || r.code || ''));
  const reasons = deciding
    .map((r) => (typeof r === 'string' ? r : r[`explanation_${lang}`] || r.explanation_en || r.name || r.code || JSON.stringify(r)));
  return { level: normLevel(level), reasons, names, distance_m: raw.distance_m ?? raw.distance_to_site_m ?? null };
}

function normLevel(l) {
  const s = String(l || '').toLowerCase();
  if (['trusted', 'ok', 'plausible', 'genuine', 'true'].includes(s)) return 'trusted';
  if (['untrusted', 'spoofed', 'spoof', 'spoofing', 'rejected', 'false', 'fake'].includes(s)) return 'untrusted';
  if (['suspicious', 'doubtful', 'questionable', 'warning', 'suspect'].includes(s)) return 'suspicious';
  return 'unknown';
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
      el('span', { text: p.online ? `● ${t('room.online')}` : `○ ${t('room.offline')}` }),
      p.quality && p.quality !== 'unknown' ? ` · ${t('quality.label')}: ${t(`quality.${p.quality}`)}` : ''));
    const loc = p.location;
    const geo = el('div', { class: 'geo' });
    if (loc && loc.lat != null) {
      const d = verdictOf(state, pid).distance_m ?? distanceM(loc, site);
      geo.append(
        el('div', {}, `${t('geo.coords')}: ${Number(loc.lat).toFixed(5)}, ${Number(loc.lon).toFixed(5)}`),
        el('div', {}, t('geo.accuracy', { m: Math.round(loc.accuracy ?? 0) }),
          d != null ? ` · ${t('geo.distance', { d: formatDistance(d) })}` : ''));
    } else if (loc && (loc.no_fix || loc.error)) {
      geo.append(el('div', { text: t((loc.no_fix || loc.error) === 'permission_denied' ? 'geo.denied' : 'geo.no_fix') }));
    }
    if (p.role === 'business' || loc) {
      const v = verdictOf(state, pid);
      const vd = el('div', { class: 'verdict-line' }, verdictChip(v));
      if (v.reasons.length) vd.append(el('ul', { class: 'reasons' }, ...v.reasons.map((r) => el('li', { text: r }))));
      geo.append(vd);
    }
    li.append(geo);
    return li;
  }));
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
      parts.push(`${t('geo.coords')}: ${p.lat != null ? `${Number(p.lat).toFixed(5)}, ${Number(p.lon).toFixed(5)} ±${Math.round(p.accuracy ?? 0)}` : (p.no_fix || p.error || '')}`);
      break;
    case 'request_photo':
      parts.push(`${tr('event', e.kind)} → ${itemLabel(p.item_id)}`);
      break;
    case 'attach_evidence':
      parts.push(`${tr('event', e.kind)}: ${tr('evidence.kind', p.evidence?.kind)} → ${itemLabel(p.item_id)}`);
      if (p.evidence?.sha256) parts.push(` (SHA-256 ${p.evidence.sha256.slice(0, 12)}…)`);
      break;
    case 'presence':
      parts.push(`${t('quality.label')}: ${t(`quality.${p.quality || 'none'}`)}${p.rtt_ms != null ? `, ${p.rtt_ms} ms` : ''}`);
      break;
    default:
      parts.push(tr('event', e.kind), p.role ? ` (${tr('role', p.role)}${p.device ? `, ${tr('device', p.device)}` : ''})` : '', p.reason ? ` (${p.reason})` : '');
  }
  return parts;
}

/** Append an event to a log list element (keeps the newest at the bottom, scrolled). */
export function appendEventLine(ol, e, state, checklist) {
  const li = el('li', { 'data-seq': e.seq, 'data-kind': e.kind },
    el('span', { class: 'seq', text: `#${e.seq}` }),
    el('span', { class: 'ts', text: formatTime(e.server_time || usToIso(e.server_ts), { timeStyle: 'medium' }) }),
    el('span', {}, ...describeEvent(e, state, checklist)));
  ol.append(li);
  ol.scrollTop = ol.scrollHeight;
}
